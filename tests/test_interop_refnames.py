"""OCI layouts whose `org.opencontainers.image.ref.name` is not a Docker-style tag, as outside
tools write them: `podman save --format oci-dir` and `skopeo copy ... oci:DIR:HOST/REPO:TAG` name
the image by its full reference, umoci and buildah accept `1.0+build.5`. `oci:DIR:REF` is split
at the first colon after DIR, as skopeo does, so REF may itself hold colons."""

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

REF_NAME = "org.opencontainers.image.ref.name"


def test_podman_saved_layout_copies_by_tag_and_by_digest(
    interop_source: Source,
    interop_destination: RegistryHandle,
    podman: Podman,
    containerd: Containerd,
    tmp_path: Path,
) -> None:
    built = interop_source.images["oci-gzip"]
    ref = interop_source.ref("oci-gzip")
    podman.pull(ref)
    saved = podman.save_oci_dir(ref, tmp_path / "podman")
    podman.remove(ref)
    (entry,) = layout_index(saved)["manifests"]
    assert entry["annotations"][REF_NAME] == ref  # "127.0.0.1:PORT/it/oci-gzip:1"
    manifest = layout_blob(saved, entry["digest"])

    by_tag = mirror_copy(tmp_path, f"oci:{saved}:{ref}", f"{interop_destination.host}/podman/by-tag:{TAG}")
    assert by_tag.code == 0, by_tag.errors()
    by_digest = mirror_copy(
        tmp_path, f"oci:{saved}@{entry['digest']}", f"{interop_destination.host}/podman/by-digest:{TAG}"
    )
    assert by_digest.code == 0, by_digest.errors()
    for repo in ("podman/by-tag", "podman/by-digest"):
        copied = f"{interop_destination.host}/{repo}:{TAG}"
        assert skopeo_inspect_raw(copied) == manifest
        containerd.pull(copied)
        assert containerd.image_digest(copied) == entry["digest"]
        with containerd.mounted(copied, "linux/amd64") as rootfs:
            assert built.files["linux/amd64"].mismatches(rootfs) == []


def test_skopeo_layout_named_by_a_full_reference(
    interop_source: Source, interop_destination: RegistryHandle, tmp_path: Path
) -> None:
    built = interop_source.images["oci-index"]
    ref = interop_source.ref("oci-index")
    layout = tmp_path / "full"
    skopeo_copy(ref, f"oci:{layout}:{ref}")
    assert layout_index(layout)["manifests"][0]["annotations"][REF_NAME] == ref
    run = mirror_copy(tmp_path, f"oci:{layout}:{ref}", f"{interop_destination.host}/lay/full:{TAG}")
    assert run.code == 0, run.errors()
    assert skopeo_inspect_raw(f"{interop_destination.host}/lay/full:{TAG}") == built.data
    # and back into a layout under the same full name, which skopeo reads
    again = tmp_path / "again"
    run = mirror_copy(tmp_path, f"{interop_destination.host}/lay/full:{TAG}", f"oci:{again}:{ref}")
    assert run.code == 0, run.errors()
    assert layout_index(again)["manifests"][0]["annotations"][REF_NAME] == ref
    skopeo_copy(f"oci:{again}:{ref}", f"oci:{tmp_path / 'third'}:{TAG}")
    assert layout_index(tmp_path / "third")["manifests"][0]["digest"] == built.digest


def test_umoci_tag_that_is_no_registry_tag(
    interop_destination: RegistryHandle, podman: Podman, umoci: Umoci, tmp_path: Path
) -> None:
    """`1.0+build.5` is a valid layout name and not a registry tag: copied to a registry under a
    tag the destination names, and to another layout under the same name, which umoci unpacks."""
    layout = tmp_path / "umoci-semver"
    files = Files.for_variant("umoci-semver", "linux/amd64")
    umoci.new_image(layout, "1.0+build.5", files, "linux/amd64")
    (entry,) = layout_index(layout)["manifests"]

    run = mirror_copy(
        tmp_path, f"oci:{layout}:1.0+build.5", f"{interop_destination.host}/lay/semver:1.0_build.5"
    )
    assert run.code == 0, run.errors()
    ref = f"{interop_destination.host}/lay/semver:1.0_build.5"
    assert skopeo_inspect_raw(ref) == layout_blob(layout, entry["digest"])
    with podman.pulled(ref) as rootfs:
        assert files.mismatches(rootfs) == []

    copy = tmp_path / "copy"
    run = mirror_copy(tmp_path, f"oci:{layout}:1.0+build.5", f"oci:{copy}:1.0+build.5")
    assert run.code == 0, run.errors()
    assert layout_index(copy)["manifests"][0]["annotations"][REF_NAME] == "1.0+build.5"
    assert files.mismatches(umoci.unpack(copy, "1.0+build.5", tmp_path / "bundle")) == []


def test_buildah_layout_tag_that_is_no_registry_tag(
    interop_source: Source, interop_destination: RegistryHandle, containerd: Containerd, tmp_path: Path
) -> None:
    built = interop_source.images["oci-index"]
    layout = tmp_path / "buildah-semver"
    interop_source.buildah.manifest_push("localhost/oci-index:list", f"oci:{layout}:1.0+build.5")
    run = mirror_copy(
        tmp_path, f"oci:{layout}:1.0+build.5", f"{interop_destination.host}/lay/buildah-semver:1.0-build.5"
    )
    assert run.code == 0, run.errors()
    ref = f"{interop_destination.host}/lay/buildah-semver:1.0-build.5"
    assert skopeo_inspect_raw(ref) == built.data
    containerd.pull(ref)
    with containerd.mounted(ref, "linux/arm/v7") as rootfs:
        assert built.files["linux/arm/v7"].mismatches(rootfs) == []


def test_sync_of_a_layout_whose_names_a_registry_cannot_take(
    interop_destination: RegistryHandle, podman: Podman, umoci: Umoci, tmp_path: Path
) -> None:
    """A layout repository with `v1` and `1.0+build.5` synced to a registry: `v1` is copied,
    `1.0+build.5` fails alone with a reason that names it."""
    layout = tmp_path / "mixed"
    files = {tag: Files.for_variant(f"mixed-{tag}", "linux/amd64") for tag in ("v1", "1.0+build.5")}
    for tag, content in files.items():
        umoci.new_image(layout, tag, content, "linux/amd64")
    run = mirror_sync(
        tmp_path,
        f"""
version: 1
jobs:
  - name: mixed
    source: oci:{layout}
    destinations: [{interop_destination.host}/lay]
""",
    )
    assert run.code == 1
    by_ref = {src.split(f"{layout}:", 1)[1]: status for src, status in run.statuses().items()}
    assert by_ref == {"v1": "copied", "1.0+build.5": "failed"}, run.statuses()
    assert any("1.0+build.5" in e for e in run.errors()), run.errors()
    with podman.pulled(f"{interop_destination.host}/lay/mixed:v1") as rootfs:
        assert files["v1"].mismatches(rootfs) == []
