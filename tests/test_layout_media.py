"""Docker images into OCI image layouts: written unchanged with a warning, or converted to OCI
media types on request so that skopeo, podman and umoci can read the layout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.types import mediatypes as mt
from mirror.types.convert import has_docker_types, to_oci
from mirror.types.manifest import parse_manifest
from tests.support.images import fetch_manifest, push_index
from tests.support.skopeo import run_skopeo, skopeo_binary

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def docker_manifest(layer_digest: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": "sha256:" + "c" * 64,
                "size": 7,
            },
            "layers": [
                {"mediaType": DOCKER_LAYER, "digest": layer_digest, "size": 9},
                {
                    "mediaType": mt.DOCKER_FOREIGN_LAYER,
                    "digest": "sha256:" + "f" * 64,
                    "size": 3,
                    "urls": ["https://example.com/base"],
                },
            ],
        },
        indent=3,
    ).encode()


def test_conversion_rewrites_media_types_and_children_digests() -> None:
    children = [parse_manifest(docker_manifest("sha256:" + c * 64)) for c in "ab"]
    listing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST_LIST,
            "manifests": [
                {"mediaType": mt.DOCKER_MANIFEST, "digest": str(c.digest), "size": len(c.raw), "platform": p}
                for c, p in zip(
                    children, [{"os": "linux", "architecture": a} for a in ("amd64", "arm64")], strict=True
                )
            ],
        }
    ).encode()
    graph = [*children, parse_manifest(listing)]
    assert has_docker_types(graph)
    converted = to_oci(graph)
    assert not has_docker_types(converted)
    top = converted[-1]
    assert top.media_type == mt.OCI_INDEX
    assert [d.digest for d in top.manifests] == [c.digest for c in converted[:2]]
    assert [d.size for d in top.manifests] == [len(c.raw) for c in converted[:2]]
    for old, new in zip(children, converted[:2], strict=True):
        assert new.media_type == mt.OCI_MANIFEST and new.digest != old.digest
        assert [b.digest for b in new.references] == [b.digest for b in old.references]  # same blobs
        assert new.layers[1].media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        assert new.layers[1].urls == ("https://example.com/base",)
    assert to_oci(converted) == converted  # nothing left to convert: the same manifests


def test_docker_image_into_a_layout_warns_or_converts(registry_pair: Any, tmp_path: Path) -> None:
    """Unchanged, a Docker image in a layout is reported (skopeo cannot read it there); with
    --oci-media-types it is converted, skopeo reads and copies it, and a second run skips it."""
    if not skopeo_binary():
        pytest.skip("skopeo is not installed")
    src, dst = registry_pair
    idx = push_index(src, "apps/web", "v1", ["linux/amd64", "linux/arm64"], media="docker")
    report = tmp_path / "r.json"

    plain = tmp_path / "plain"
    assert (
        main(["copy", "--quiet", f"{src.host}/apps/web:v1", f"oci:{plain}:v1", "--report", str(report)]) == 0
    )
    doc = json.loads(report.read_text())
    assert doc["digest"] == idx.digest
    assert "written with Docker media types" in doc["images"][0]["note"]
    assert "--oci-media-types" in doc["images"][0]["note"]
    refused = subprocess.run(
        [skopeo_binary(), "inspect", "--raw", f"oci:{plain}:v1"], capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0

    oci = tmp_path / "oci"
    args = [f"{src.host}/apps/web:v1", f"oci:{oci}:v1", "--oci-media-types", "--report", str(report)]
    assert main(["copy", "--quiet", *args]) == 0
    doc = json.loads(report.read_text())
    digest = doc["digest"]
    assert digest != idx.digest
    assert f"converted to OCI media types for oci:{oci}:v1: digest {digest}" in doc["images"][0]["note"]
    raw = run_skopeo(["inspect", "--raw", f"oci:{oci}:v1"]).stdout
    assert json.loads(raw)["mediaType"] == mt.OCI_INDEX
    run_skopeo(
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{oci}:v1",
            f"docker://{dst.host}/back/web:v1",
        ]
    )
    assert fetch_manifest(dst, "back/web", "v1").digest == digest
    assert main(["copy", "--quiet", *args]) == 0
    doc = json.loads(report.read_text())
    assert doc["status"] == "skipped" and doc["totals"]["bytes_read"] == 0


def test_a_job_converts_its_layout_destinations_only(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    idx = push_index(src, "apps/web", "v1", ["linux/amd64"], media="docker")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [oci:{tmp_path / "lay"}, {dst.host}/mirror]
    oci_media_types: true
"""
    )
    report = tmp_path / "r.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 0
    [image] = json.loads(report.read_text())["images"]
    by_dest = {d["destination"]: d["digest"] for d in image["destinations"]}
    assert by_dest[f"{dst.host}/mirror/web:v1"] == idx.digest  # a registry keeps the digest
    layout_digest = by_dest[f"oci:{tmp_path / 'lay' / 'web'}:v1"]
    assert layout_digest != idx.digest
    index = json.loads((tmp_path / "lay" / "web" / "index.json").read_text())
    assert [(e["digest"], e["mediaType"]) for e in index["manifests"]] == [(layout_digest, mt.OCI_INDEX)]
