"""Content at the edges of the image spec, assembled from what buildah and skopeo made: an index
whose entries are themselves indexes. The copies are read back by skopeo and ctr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.content import sha256_digest
from tests.support.images import push_manifest
from tests.support.interop import TAG, Source, mirror_copy
from tests.support.mediatypes import OCI_INDEX
from tests.support.registry import RegistryHandle
from tests.support.skopeo import skopeo_copy, skopeo_inspect_raw
from tests.support.tools.containerd import Containerd

pytestmark = pytest.mark.interop

def test_index_of_indexes(
    interop_source: Source, interop_destination: RegistryHandle, containerd: Containerd, tmp_path: Path
) -> None:
    """buildah's two indexes under one more index: mirror pushes every level, children first;
    skopeo reads each level byte for byte and containerd walks the whole tree."""
    src, dst = interop_source.registry, interop_destination
    inner = [interop_source.images["oci-index"], interop_source.images["oci-index-zstd"]]
    for i, built in enumerate(inner):
        skopeo_copy(interop_source.ref(built.kind), f"{src.host}/edge/nested:part-{i}")
    outer = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": b.media_type,
                "digest": b.digest,
                "size": len(b.data),
                "annotations": {"org.example.part": b.kind},
            }
            for b in inner
        ],
    }
    data = json.dumps(outer, separators=(",", ":")).encode()
    digest = push_manifest(src, "edge/nested", TAG, data, OCI_INDEX)

    run = mirror_copy(tmp_path, f"{src.host}/edge/nested:{TAG}", f"{dst.host}/edge/nested:{TAG}")
    assert run.code == 0, run.errors()
    assert skopeo_inspect_raw(f"{dst.host}/edge/nested:{TAG}") == data
    for b in inner:
        assert skopeo_inspect_raw(f"{dst.host}/edge/nested@{b.digest}") == b.data
        for child in b.children.values():
            assert skopeo_inspect_raw(f"{dst.host}/edge/nested@{child}") == skopeo_inspect_raw(
                f"{src.host}/edge/nested@{child}"
            )
    # containerd walks the whole tree from the mirror
    ref = f"{dst.host}/edge/nested:{TAG}"
    containerd.fetch(ref)
    assert containerd.content(digest) == data
    for b in inner:
        assert containerd.content(b.digest) == b.data
        for child in b.children.values():
            manifest = json.loads(containerd.content(child))
            for layer in manifest["layers"]:
                assert sha256_digest(containerd.content(layer["digest"])) == layer["digest"]
