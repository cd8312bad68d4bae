"""The shape of what is copied: nested indexes, attestation manifests, layers that stay references."""

from __future__ import annotations

import json
from typing import Any

from mirror.cli.main import main
from tests.support.attestations import push_buildkit_index
from tests.support.images import fetch_manifest, manifest_exists, push_image, push_index, push_manifest
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
