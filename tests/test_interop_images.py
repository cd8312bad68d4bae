"""Images built by buildah from real files, mirrored three ways, pulled back by outside clients.

Routes (one source read per blob in each): `mirror sync` of the prefix `it/*` into `sync/`;
`mirror copy` of each image to `copy/<kind>` and to an OCI layout in the same command; `mirror
copy` from that layout to `oci/<kind>`. Clients: skopeo (bytes of every manifest, the layout),
podman with vfs storage (digest, image ID, files), a private containerd's `ctr` (every platform
unpacked and mounted, files), umoci (layouts unpacked, files). Content kinds: see
tests/support/interop.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.content import sha256_digest
from tests.support.interop import TAG, Built, Run, Source, layout_blob, layout_index, mirror_copy, mirror_sync
from tests.support.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.support.registry import RegistryFactory, RegistryHandle
from tests.support.skopeo import run_skopeo, skopeo_inspect_raw
from tests.support.tools.base import require
from tests.support.tools.containerd import Containerd
from tests.support.tools.podman import Podman
from tests.support.tools.umoci import Umoci

pytestmark = pytest.mark.interop

KINDS = ("oci-gzip", "oci-zstd", "docker-gzip", "oci-big", "oci-index", "oci-index-zstd", "docker-list")
OCI_KINDS = tuple(k for k in KINDS if not k.startswith("docker"))
ROUTES = ("sync", "copy", "oci")


@dataclass
class Mirrored:
    dst: RegistryHandle
    layouts: Path
    sync: Run
    resync: Run
    copies: dict[str, Run]
    from_layouts: dict[str, Run]

    def ref(self, route: str, kind: str) -> str:
        return f"{self.dst.host}/{route}/{kind}:{TAG}"

    def in_layout(self, kind: str) -> bytes:
        """The top manifest of `kind` as `mirror copy` wrote it into its OCI layout."""
        layout = self.layouts / kind
        return layout_blob(layout, layout_index(layout)["manifests"][0]["digest"])

    def expected(self, route: str, built: Built) -> bytes:
        """What the route's copy must hold: what buildah pushed, or for the route through the
        layout, what the layout holds (the same bytes for OCI content: see the layout tests)."""
        return self.in_layout(built.kind) if route == "oci" else built.data


@pytest.fixture(scope="module")
def mirrored(
    interop_source: Source, interop_registries: RegistryFactory, tmp_path_factory: pytest.TempPathFactory
) -> Mirrored:
    src = interop_source
    dst = interop_registries.start()
    work = tmp_path_factory.mktemp("interop-images")
    layouts = work / "layouts"
    config = f"""
version: 1
jobs:
  - name: tools
    source: {src.registry.host}/it/*
    destinations: [{dst.host}/sync]
"""
    first = mirror_sync(work, config)
    second = mirror_sync(work, config)
    copies, from_layouts = {}, {}
    for kind in KINDS:
        copies[kind] = mirror_copy(
            work, src.ref(kind), f"{dst.host}/copy/{kind}:{TAG}", f"oci:{layouts}/{kind}:{TAG}"
        )
    for kind in KINDS:
        from_layouts[kind] = mirror_copy(work, f"oci:{layouts}/{kind}:{TAG}", f"{dst.host}/oci/{kind}:{TAG}")
    return Mirrored(dst, layouts, first, second, copies, from_layouts)


def layer_types(built: Built) -> set[str]:
    return {layer["mediaType"] for layer in built.manifest.get("layers", [])}


def test_the_tools_made_what_was_asked(interop_source: Source) -> None:
    """The content really is what its kind says (the blob-info cache can silently swap a zstd
    layer for a gzip one): manifest types, layer compression, platforms."""
    images = interop_source.images
    assert set(images) == set(KINDS)
    expect = {
        "oci-gzip": OCI_MANIFEST,
        "oci-zstd": OCI_MANIFEST,
        "oci-big": OCI_MANIFEST,
        "docker-gzip": DOCKER_MANIFEST,
        "oci-index": OCI_INDEX,
        "oci-index-zstd": OCI_INDEX,
        "docker-list": DOCKER_LIST,
    }
    assert {k: b.media_type for k, b in images.items()} == expect
    assert layer_types(images["oci-gzip"]) == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    assert layer_types(images["oci-zstd"]) == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert layer_types(images["docker-gzip"]) == {"application/vnd.docker.image.rootfs.diff.tar.gzip"}
    assert sum(x["size"] for x in images["oci-big"].manifest["layers"]) > 24 * 1024 * 1024
    assert set(images["oci-index"].children) == {"linux/amd64", "linux/arm64/v8", "linux/arm/v7"}
    assert set(images["docker-list"].children) == {"linux/amd64", "linux/arm64/v8"}
    zstd, gzip = images["oci-index-zstd"], images["oci-index"]
    assert set(zstd.children) == set(gzip.children)
    host = interop_source.registry.host
    for kind, want in (
        ("oci-index-zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("oci-index", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("docker-list", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    ):
        for child in images[kind].children.values():
            manifest = json.loads(skopeo_inspect_raw(f"{host}/{images[kind].repo}@{child}"))
            assert {x["mediaType"] for x in manifest["layers"]} == {want}, kind


def test_every_route_reports_every_image(mirrored: Mirrored, interop_source: Source) -> None:
    """Each route ends every image as copied; a second sync pass finds everything in place."""
    assert mirrored.sync.code == 0, mirrored.sync.errors()
    assert sorted(mirrored.sync.statuses().values()) == ["copied"] * len(KINDS)
    assert mirrored.resync.code == 0, mirrored.resync.errors()
    assert sorted(mirrored.resync.statuses().values()) == ["skipped"] * len(KINDS)
    assert mirrored.resync.report["totals"]["blobs_read"] == 0
    for kind in KINDS:
        for run in (mirrored.copies[kind], mirrored.from_layouts[kind]):
            assert run.code == 0, (kind, run.errors())
            assert run.report["images"][0]["status"] == "copied", kind
    # the copy route read each blob once for both destinations
    big = mirrored.copies["oci-big"].report["totals"]
    assert big["blobs_read"] == len(interop_source.images["oci-big"].manifest["layers"]) + 1


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", KINDS)
def test_skopeo_sees_the_same_bytes(
    mirrored: Mirrored, interop_source: Source, route: str, kind: str
) -> None:
    """skopeo reads every copied manifest byte for byte as built (through a layout: as the layout
    holds it), and every platform's manifest hashes to the digest its index names."""
    want = mirrored.expected(route, interop_source.images[kind])
    assert skopeo_inspect_raw(mirrored.ref(route, kind)) == want
    for child in json.loads(want).get("manifests", []):
        ref = f"{mirrored.dst.host}/{route}/{kind}@{child['digest']}"
        assert sha256_digest(skopeo_inspect_raw(ref)) == child["digest"]


def _config_digest(source: Source, built: Built, platform: str) -> str:
    host = source.registry.host
    manifest = json.loads(skopeo_inspect_raw(f"{host}/{built.repo}@{built.platform_digest(platform)}"))
    return str(manifest["config"]["digest"])


@pytest.mark.parametrize("kind", KINDS)
def test_podman_pulls_the_synced_copy(
    mirrored: Mirrored, interop_source: Source, podman: Podman, kind: str
) -> None:
    """podman pulls what `mirror sync` wrote: the digest it records is the one buildah pushed,
    the image ID is the config's, and the files are the ones put in."""
    built = interop_source.images[kind]
    ref = mirrored.ref("sync", kind)
    platforms = list(built.files)[:2] if built.multi else ["linux/amd64"]
    for platform in platforms:
        with podman.pulled(ref, platform if built.multi else None) as rootfs:
            info = podman.inspect(ref)
            assert info["Digest"] == built.digest, (kind, platform)
            assert "sha256:" + info["Id"] == _config_digest(interop_source, built, platform), (kind, platform)
            assert built.files[platform].mismatches(rootfs) == []


@pytest.mark.parametrize("kind", KINDS)
def test_ctr_pulls_every_platform_of_the_layout_copy(
    mirrored: Mirrored, interop_source: Source, containerd: Containerd, kind: str
) -> None:
    """containerd pulls what went registry -> OCI layout -> registry: the digest it lists is the
    layout's, and every platform unpacks to the files put in."""
    built = interop_source.images[kind]
    ref = mirrored.ref("oci", kind)
    want = mirrored.expected("oci", built)
    containerd.pull(ref)
    assert containerd.image_digest(ref) == sha256_digest(want)
    assert containerd.content(sha256_digest(want)) == want
    for platform, files in built.files.items():
        with containerd.mounted(ref, platform) as rootfs:
            assert files.mismatches(rootfs) == [], platform


@pytest.mark.parametrize("kind", OCI_KINDS)
def test_skopeo_reads_the_layout_mirror_wrote(
    mirrored: Mirrored, interop_source: Source, kind: str, tmp_path: Path
) -> None:
    """The layout `mirror copy` wrote holds OCI content unchanged: skopeo reads it by tag, byte for
    byte as buildah pushed it, and copies it whole (every platform) into a layout of its own."""
    built = interop_source.images[kind]
    layout = f"oci:{mirrored.layouts / kind}:{TAG}"
    assert run_skopeo(["inspect", "--raw", layout]).stdout == built.data
    run_skopeo(["copy", "-q", "--all", "--preserve-digests", layout, f"oci:{tmp_path / 'again'}:{TAG}"])
    entry = layout_index(tmp_path / "again")["manifests"][0]
    assert entry["digest"] == built.digest


@pytest.mark.parametrize("kind", ["oci-gzip", "oci-big"])
def test_umoci_unpacks_the_layout_mirror_wrote(
    mirrored: Mirrored, interop_source: Source, umoci: Umoci, kind: str, tmp_path: Path
) -> None:
    built = interop_source.images[kind]
    rootfs = umoci.unpack(mirrored.layouts / kind, TAG, tmp_path / "bundle")
    assert built.files["linux/amd64"].mismatches(rootfs) == []


def test_umoci_unpacks_one_platform_mirror_selected(
    interop_source: Source, umoci: Umoci, tmp_path: Path
) -> None:
    """`mirror copy --platform` writes a one-child index umoci unpacks (it cannot pick from an
    index of several); the child keeps the digest buildah gave it."""
    built = interop_source.images["oci-index"]
    layout = tmp_path / "arm"
    run = mirror_copy(
        tmp_path, "--platform", "linux/arm/v7", interop_source.ref("oci-index"), f"oci:{layout}:arm"
    )
    assert run.code == 0, run.errors()
    index = json.loads(layout_blob(layout, layout_index(layout)["manifests"][0]["digest"]))
    assert [m["digest"] for m in index["manifests"]] == [built.children["linux/arm/v7"]]
    rootfs = umoci.unpack(layout, "arm", tmp_path / "bundle")
    assert built.files["linux/arm/v7"].mismatches(rootfs) == []


def test_zstd_layers_in_the_layout_hold_the_files(mirrored: Mirrored, interop_source: Source) -> None:
    """umoci 0.4.7 cannot unpack zstd: the zstd layers mirror wrote are read with zstd and tar."""
    require("zstd")
    built = interop_source.images["oci-zstd"]
    layout = mirrored.layouts / "oci-zstd"
    manifest = json.loads(layout_blob(layout, layout_index(layout)["manifests"][0]["digest"]))
    (layer,) = manifest["layers"]
    assert layer["mediaType"].endswith("+zstd")
    assert (
        built.files["linux/amd64"].mismatches_in_layer(
            layout_blob(layout, layer["digest"]), layer["mediaType"]
        )
        == []
    )


@pytest.mark.parametrize("kind", ["docker-gzip", "docker-list"])
def test_docker_images_into_a_layout_warn_or_convert_for_outside_readers(
    interop_source: Source, podman: Podman, umoci: Umoci, kind: str, tmp_path: Path
) -> None:
    """A Docker image or list copied into `oci:` keeps its bytes and the report warns that skopeo,
    podman and umoci cannot read Docker media types there; with `--oci-media-types` the layout is
    one they read: new manifest digests (reported), the same config and layers, the files buildah
    put in."""
    built = interop_source.images[kind]
    unchanged = tmp_path / "unchanged"
    run = mirror_copy(tmp_path, interop_source.ref(kind), f"oci:{unchanged}:{TAG}")
    assert run.code == 0, run.errors()
    assert layout_index(unchanged)["manifests"][0]["digest"] == built.digest
    assert "written with Docker media types" in run.report["images"][0]["note"]

    layout = tmp_path / "layout"
    run = mirror_copy(tmp_path, "--oci-media-types", interop_source.ref(kind), f"oci:{layout}:{TAG}")
    assert run.code == 0, run.errors()
    (entry,) = layout_index(layout)["manifests"]
    assert entry["digest"] != built.digest
    assert f"digest {entry['digest']}" in run.report["images"][0]["note"]
    for platform, files in built.files.items():
        os_, arch, *variant = platform.split("/")
        pick = ["--override-os", os_, "--override-arch", arch] + (
            ["--override-variant", variant[0]] if variant else []
        )
        source_manifest = json.loads(
            skopeo_inspect_raw(
                f"{interop_source.registry.host}/{built.repo}@{built.platform_digest(platform)}"
            )
        )
        manifest = json.loads(run_skopeo([*pick, "inspect", "--raw", f"oci:{layout}:{TAG}"]).stdout)
        if "manifests" in manifest:  # skopeo inspect --raw shows the index; take the platform's manifest
            (desc,) = [m for m in manifest["manifests"] if m.get("platform", {}).get("architecture") == arch]
            manifest = json.loads(layout_blob(layout, desc["digest"]))
        assert manifest["config"]["digest"] == source_manifest["config"]["digest"], platform
        assert [x["digest"] for x in manifest["layers"]] == [x["digest"] for x in source_manifest["layers"]]
        one = tmp_path / f"one-{arch}"
        run_skopeo([*pick, "copy", "-q", f"oci:{layout}:{TAG}", f"oci:{one}:x"])
        assert files.mismatches(umoci.unpack(one, "x", tmp_path / f"bundle-{arch}")) == [], platform
    if not built.multi:
        assert built.files["linux/amd64"].mismatches(umoci.unpack(layout, TAG, tmp_path / "bundle")) == []
    with podman.pulled(f"oci:{layout}:{TAG}") as rootfs:
        assert built.files["linux/amd64"].mismatches(rootfs) == []
