"""OCI layouts written by outside tools (skopeo, buildah, umoci) as sources of `mirror copy` and
`mirror sync`, and the copies read back by ctr, podman and umoci."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.interop import TAG, Source, layout_blob, layout_index, mirror_copy, mirror_sync
from tests.support.registry import RegistryHandle
from tests.support.skopeo import skopeo_copy, skopeo_inspect_raw
from tests.support.tools.containerd import Containerd
from tests.support.tools.files import Files
from tests.support.tools.podman import Podman
from tests.support.tools.umoci import Umoci

pytestmark = pytest.mark.interop


def test_skopeo_layout_by_tag(
    interop_source: Source, interop_destination: RegistryHandle, containerd: Containerd, tmp_path: Path
) -> None:
    """skopeo writes an index with every platform into `oci:DIR:1`; mirror copies it by tag,
    digest preserved; containerd unpacks a platform to the files buildah put in."""
    built = interop_source.images["oci-index"]
    layout = tmp_path / "skopeo"
    skopeo_copy(interop_source.ref("oci-index"), f"oci:{layout}:{TAG}")
    assert layout_index(layout)["manifests"][0]["digest"] == built.digest
    run = mirror_copy(tmp_path, f"oci:{layout}:{TAG}", f"{interop_destination.host}/lay/skopeo:{TAG}")
    assert run.code == 0, run.errors()
    assert skopeo_inspect_raw(f"{interop_destination.host}/lay/skopeo:{TAG}") == built.data
    ref = f"{interop_destination.host}/lay/skopeo:{TAG}"
    containerd.pull(ref)
    assert containerd.image_digest(ref) == built.digest
    with containerd.mounted(ref, "linux/arm64/v8") as rootfs:
        assert built.files["linux/arm64/v8"].mismatches(rootfs) == []


def test_skopeo_layout_without_a_name_by_digest(
    interop_source: Source, interop_destination: RegistryHandle, tmp_path: Path
) -> None:
    """`skopeo copy ... oci:DIR` writes no ref.name: mirror copies the entry by its digest."""
    built = interop_source.images["oci-index-zstd"]
    layout = tmp_path / "untagged"
    skopeo_copy(interop_source.ref("oci-index-zstd"), f"oci:{layout}")
    (entry,) = layout_index(layout)["manifests"]
    assert "annotations" not in entry
    run = mirror_copy(
        tmp_path, f"oci:{layout}@{built.digest}", f"{interop_destination.host}/lay/untagged:{TAG}"
    )
    assert run.code == 0, run.errors()
    assert skopeo_inspect_raw(f"{interop_destination.host}/lay/untagged:{TAG}") == built.data
    for child in built.children.values():
        assert skopeo_inspect_raw(f"{interop_destination.host}/lay/untagged@{child}") == layout_blob(
            layout, child
        )


def test_buildah_layout_synced_as_a_repository(
    interop_source: Source, interop_destination: RegistryHandle, podman: Podman, tmp_path: Path
) -> None:
    """buildah pushes its 3-platform list into a layout; `mirror sync` takes the layout as a
    repository source; podman pulls a platform of the copy and finds buildah's files."""
    built = interop_source.images["oci-index"]
    layout = tmp_path / "buildah-app"
    digest = interop_source.buildah.manifest_push("localhost/oci-index:list", f"oci:{layout}:{TAG}")
    assert digest == built.digest  # the same gzip bytes as the push to the registry
    run = mirror_sync(
        tmp_path,
        f"""
version: 1
jobs:
  - name: from-layout
    source: oci:{layout}
    destinations: [{interop_destination.host}/lay]
""",
    )
    assert run.code == 0, run.errors()
    assert list(run.statuses().values()) == ["copied"]
    ref = f"{interop_destination.host}/lay/buildah-app:{TAG}"
    assert skopeo_inspect_raw(ref) == built.data
    with podman.pulled(ref, "linux/arm/v7") as rootfs:
        assert podman.inspect(ref)["Digest"] == built.digest
        assert built.files["linux/arm/v7"].mismatches(rootfs) == []


def test_umoci_layout_synced_copied_and_unpacked(
    interop_destination: RegistryHandle, podman: Podman, umoci: Umoci, tmp_path: Path
) -> None:
    """umoci writes two tags from real files; `mirror sync` copies the layout's tags to a registry
    where podman finds the files, and `mirror copy` into another layout gives umoci the same
    files back."""
    layout = tmp_path / "umoci-app"
    files = {tag: Files.for_variant(f"umoci-{tag}", "linux/amd64") for tag in ("v1", "v2")}
    for tag, content in files.items():
        umoci.new_image(layout, tag, content, "linux/amd64")
    digests = {
        e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"]
        for e in layout_index(layout)["manifests"]
    }
    run = mirror_sync(
        tmp_path,
        f"""
version: 1
jobs:
  - name: umoci
    source: oci:{layout}
    destinations: [{interop_destination.host}/lay]
""",
    )
    assert run.code == 0, run.errors()
    assert sorted(run.statuses().values()) == ["copied", "copied"]
    for tag, content in files.items():
        ref = f"{interop_destination.host}/lay/umoci-app:{tag}"
        assert skopeo_inspect_raw(ref) == layout_blob(layout, digests[tag])
        with podman.pulled(ref) as rootfs:
            assert content.mismatches(rootfs) == []

    copy = tmp_path / "umoci-copy"
    run = mirror_copy(tmp_path, f"oci:{layout}:v2", f"oci:{copy}:v2")
    assert run.code == 0, run.errors()
    assert layout_index(copy)["manifests"][0]["digest"] == digests["v2"]
    assert files["v2"].mismatches(umoci.unpack(copy, "v2", tmp_path / "bundle")) == []
    # umoci's manifests carry no mediaType field: the descriptor in index.json names the type
    assert layout_index(copy)["manifests"][0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
