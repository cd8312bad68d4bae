"""The shape of what is copied: nested indexes, attestation manifests, layers that stay references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from tests.support.attestations import push_buildkit_index
from tests.support.images import (
    blob_exists,
    fetch_manifest,
    layer,
    manifest_exists,
    push_blob,
    push_image,
    push_index,
    push_manifest,
)
from tests.support.mediatypes import TYPES


def copy(*args: str) -> int:
    return main(["copy", "--quiet", *args])


def push_nested_index(src: Any, repo: str, tag: str, children: int) -> tuple[str, str]:
    """An index whose first entry is itself an index of ``children`` images; (outer, inner) digests."""
    inner = push_index(
        src, repo, None, [f"linux/arch{i}" for i in range(children)], seed=f"{repo}-inner", layer_sizes=(512,)
    )
    single = push_image(src, repo, None, (256,), seed=f"{repo}-single", platform="linux/s390x")
    outer = {
        "schemaVersion": 2,
        "mediaType": TYPES["oci"]["index"],
        "manifests": [
            {"mediaType": inner.media_type, "digest": inner.digest, "size": inner.size},
            {
                "mediaType": single.media_type,
                "digest": single.digest,
                "size": single.size,
                "platform": {"os": "linux", "architecture": "s390x"},
            },
        ],
    }
    digest = push_manifest(src, repo, tag, json.dumps(outer).encode(), TYPES["oci"]["index"])
    return digest, inner.digest


def test_nested_index_copies_every_time(registry_pair: Any) -> None:
    """An inner index is pushed only after its own children: before, one gather pushed every
    child of the top index at once, and the registry refused the inner index
    (MANIFEST_BLOB_UNKNOWN) on most runs with 24 children."""
    src, dst = registry_pair
    outer, inner = push_nested_index(src, "nest/app", "v1", 24)
    for run in range(2):  # 10 destinations in all, each pushing its manifests on its own
        dests = [f"{dst.host}/nest/run{run}-{i}:v1" for i in range(5)]
        assert copy(f"{src.host}/nest/app:v1", *dests) == 0, f"run {run}"
        for i in range(5):
            assert fetch_manifest(dst, f"nest/run{run}-{i}", "v1").digest == outer
            assert manifest_exists(dst, f"nest/run{run}-{i}", inner)


def test_platform_filter_keeps_attestations(registry_pair: Any) -> None:
    """--platform keeps the SBOM and provenance (BuildKit attestation manifests) of the
    platforms it keeps; the attestations of the others go with them."""
    src, dst = registry_pair
    pushed = push_buildkit_index(src, "bk/app", "v1", ["linux/amd64", "linux/arm64", "linux/s390x"])
    assert copy(f"{src.host}/bk/app:v1", f"{dst.host}/bk/app:v1", "--platform", "linux/arm64") == 0
    index = fetch_manifest(dst, "bk/app", "v1").json()
    assert [e["digest"] for e in index["manifests"]] == [pushed.images[1].digest, pushed.attestations[1]]
    assert manifest_exists(dst, "bk/app", pushed.attestations[1])
    assert not manifest_exists(dst, "bk/app", pushed.attestations[0])


# distribution refuses layer URLs unless its configuration allows them
ALLOW_URLS = {"validation": {"manifests": {"urls": {"allow": ["^https://"]}}}}
FOREIGN = {
    "docker": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "oci": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


def push_with_foreign_layer(src: Any, repo: str, tag: str, media: str) -> tuple[str, str]:
    """An image whose base layer is foreign (a Windows base layer): listed with its URLs, never
    uploaded to the registry. (manifest digest, foreign layer digest)."""
    types = TYPES[media]
    config = json.dumps({"architecture": "amd64", "os": "windows", "rootfs": {"type": "layers"}}).encode()
    own = layer(3000, f"{repo}-own")
    foreign = layer(5000, f"{repo}-foreign")  # never pushed: the registry does not have it
    manifest = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {"mediaType": types["config"], "digest": push_blob(src, repo, config), "size": len(config)},
        "layers": [
            {
                "mediaType": FOREIGN[media],
                "digest": foreign.digest,
                "size": foreign.size,
                "urls": [f"https://mcr.microsoft.com.invalid/blobs/{foreign.digest}"],
            },
            {"mediaType": types["layer"], "digest": push_blob(src, repo, own), "size": own.size},
        ],
    }
    return push_manifest(src, repo, tag, json.dumps(manifest).encode(), types["manifest"]), foreign.digest


@pytest.mark.parametrize("media", ["docker", "oci"])
def test_foreign_layers_stay_references(
    registry_factory: Any, proxy_factory: Any, tmp_path: Path, media: str
) -> None:
    """A foreign / non-distributable layer is neither read nor written: the manifest (digest
    unchanged) keeps naming it by its URLs, as skopeo and containerd leave it. Before, mirror
    GET it from the source and failed on the 404."""
    src, dst = (registry_factory.start(extra_config=ALLOW_URLS) for _ in range(2))
    digest, foreign = push_with_foreign_layer(src, "win/app", "v1", media)
    proxy = proxy_factory.start(src)
    assert copy(f"{proxy.host}/win/app:v1", f"{dst.host}/win/app:v1", f"oci:{tmp_path / 'lay'}:v1") == 0
    assert not proxy.select(path_contains=foreign)
    assert fetch_manifest(dst, "win/app", "v1").digest == digest
    assert not blob_exists(dst, "win/app", foreign)
    assert not (tmp_path / "lay" / "blobs" / "sha256" / foreign.split(":")[1]).exists()
    # and back out of the layout into another registry repository
    assert copy(f"oci:{tmp_path / 'lay'}:v1", f"{dst.host}/win/again:v1") == 0
    assert fetch_manifest(dst, "win/again", "v1").digest == digest
