"""Session fixtures of the interop suite (tests/test_interop_*.py, marker `interop`).

Content is made by tools nobody here wrote, once per session, into one source registry:

| kind             | made by                                                         |
|------------------|-----------------------------------------------------------------|
| `oci-gzip`       | buildah commit --format oci, push (tar+gzip)                    |
| `oci-zstd`       | buildah push --compression-format zstd (tar+zstd)               |
| `docker-gzip`    | buildah commit --format docker (v2s2, rootfs.diff.tar.gzip)     |
| `oci-big`        | buildah, one 24 MiB file of random bytes (incompressible layer) |
| `oci-index`      | buildah manifest push --all: OCI index, 3 platforms             |
| `oci-index-zstd` | buildah manifest push to a layout, skopeo copy to zstd, skopeo  |
|                  | copy --preserve-digests to the registry: OCI index, 3 platforms |
| `docker-list`    | buildah manifest push --all --format v2s2: Docker list, 2 platforms |

Each kind is the repository `it/<kind>`, tag `1`.

Clients that read copies back (podman, a private containerd, umoci) are session fixtures too.
A tool that cannot run skips the tests that need it, with the reason; under `CI=true` that is a
failure (see tools/base.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import fetch_manifest
from tests.support.registry import RegistryFactory, RegistryHandle, registry_binary
from tests.support.skopeo import run_skopeo
from tests.support.tools.base import require, unavailable
from tests.support.tools.buildah import Buildah
from tests.support.tools.containerd import Containerd
from tests.support.tools.files import Files
from tests.support.tools.podman import Podman
from tests.support.tools.umoci import Umoci

TAG = "1"
INDEX_PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
LIST_PLATFORMS = ("linux/amd64", "linux/arm64/v8")
BIG = 24 * 1024 * 1024


@dataclass(frozen=True)
class Built:
    """One image (or index) made by the outside tools, as the source registry holds it."""

    kind: str
    repo: str
    digest: str
    media_type: str
    data: bytes
    files: dict[str, Files]  # platform -> the files put into that platform's image
    children: dict[str, str] = field(default_factory=dict)  # platform -> child manifest digest

    @property
    def multi(self) -> bool:
        return bool(self.children)

    @property
    def manifest(self) -> Any:
        return json.loads(self.data)

    def platform_digest(self, platform: str) -> str:
        return self.children.get(platform, self.digest)


@dataclass
class Source:
    registry: RegistryHandle
    images: dict[str, Built]
    buildah: Buildah  # its store still holds every image and list built (`localhost/<kind>...`)

    def ref(self, kind: str) -> str:
        return f"{self.registry.host}/{self.images[kind].repo}:{TAG}"


@pytest.fixture(scope="session")
def interop_registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    if registry_binary() is None:
        unavailable("Debian's docker-registry is not installed (apt-get install docker-registry)")
    factory = RegistryFactory(tmp_path_factory.mktemp("interop-registries"))
    try:
        yield factory
    finally:
        factory.stop_all(remove_storage=True)


@pytest.fixture(scope="session")
def interop_destination(interop_registries: RegistryFactory) -> RegistryHandle:
    """One destination registry shared by the interop modules (each writes its own repositories)."""
    return interop_registries.start()


def _children(data: bytes) -> dict[str, str]:
    doc = json.loads(data)
    out = {}
    for m in doc.get("manifests", []):
        p = m["platform"]
        out["/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)] = m["digest"]
    return out


def _record(handle: RegistryHandle, kind: str, digest: str, files: dict[str, Files]) -> Built:
    repo = f"it/{kind}"
    got = fetch_manifest(handle, repo, TAG)
    assert got.digest == digest, f"{kind}: registry has {got.digest}, buildah pushed {digest}"
    media_type = got.media_type.split(";")[0]
    return Built(kind, repo, digest, media_type, got.data, files, _children(got.data))


def _single(
    b: Buildah, src: RegistryHandle, kind: str, fmt: str, compression: str | None, size: int
) -> Built:
    files = Files.for_variant(kind, "linux/amd64", size)
    image = b.build(f"localhost/{kind}", files, "linux/amd64", fmt=fmt)
    digest = b.push(image, f"docker://{src.host}/it/{kind}:{TAG}", compression=compression)
    return _record(src, kind, digest, {"linux/amd64": files})


def _list(b: Buildah, kind: str, platforms: tuple[str, ...], fmt: str) -> tuple[str, dict[str, Files]]:
    name, files = f"localhost/{kind}:list", {}
    b.manifest_create(name)
    for platform in platforms:
        files[platform] = Files.for_variant(kind, platform)
        b.manifest_add(
            name,
            b.build(f"localhost/{kind}-{platform.replace('/', '-')}", files[platform], platform, fmt=fmt),
        )
    return name, files


@pytest.fixture(scope="session")
def interop_source(interop_registries: RegistryFactory, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """The source registry, holding every kind in the table above (built once per session)."""
    require("skopeo")
    work = tmp_path_factory.mktemp("interop-build")
    b = Buildah(work / "buildah")
    src = interop_registries.start()
    images: dict[str, Built] = {}
    for kind, fmt, compression, size in (
        ("oci-gzip", "oci", None, 64 * 1024),
        ("oci-zstd", "oci", "zstd", 64 * 1024),
        ("docker-gzip", "docker", None, 64 * 1024),
        ("oci-big", "oci", None, BIG),
    ):
        images[kind] = _single(b, src, kind, fmt, compression, size)

    name, files = _list(b, "oci-index", INDEX_PLATFORMS, "oci")
    digest = b.manifest_push(name, f"docker://{src.host}/it/oci-index:{TAG}")
    images["oci-index"] = _record(src, "oci-index", digest, files)

    name, files = _list(b, "docker-list", LIST_PLATFORMS, "docker")
    digest = b.manifest_push(name, f"docker://{src.host}/it/docker-list:{TAG}", fmt="v2s2")
    images["docker-list"] = _record(src, "docker-list", digest, files)

    # buildah 1.28's `manifest push` cannot compress with zstd: through two layouts with skopeo
    name, files = _list(b, "oci-index-zstd", INDEX_PLATFORMS, "oci")
    b.manifest_push(name, f"oci:{work}/zst-src:{TAG}")
    run_skopeo(
        [
            "copy",
            "-q",
            "--all",
            "--dest-compress-format",
            "zstd",
            f"oci:{work}/zst-src:{TAG}",
            f"oci:{work}/zst:{TAG}",
        ]
    )
    run_skopeo(
        [
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{work}/zst:{TAG}",
            f"docker://{src.host}/it/oci-index-zstd:{TAG}",
        ]
    )
    got = fetch_manifest(src, "it/oci-index-zstd", TAG)
    images["oci-index-zstd"] = _record(src, "oci-index-zstd", got.digest, files)
    return Source(src, images, b)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return Podman(tmp_path_factory.mktemp("interop-podman"))


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    with Containerd(tmp_path_factory.mktemp("interop-ctd")) as ctd:
        yield ctd


@pytest.fixture(scope="session")
def umoci(tmp_path_factory: pytest.TempPathFactory) -> Umoci:
    return Umoci(tmp_path_factory.mktemp("interop-umoci"))


def layout_index(layout: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((layout / "index.json").read_text())
    return doc


def layout_blob(layout: Path, digest: str) -> bytes:
    alg, hex_ = digest.split(":", 1)
    return (layout / "blobs" / alg / hex_).read_bytes()


@dataclass(frozen=True)
class Run:
    """One `mirror` command: its exit code and JSON report."""

    code: int
    report: dict[str, Any]

    def statuses(self) -> dict[str, str]:
        return {i["source"]: i["status"] for i in self.report.get("images", [])}

    def errors(self) -> list[str]:
        out = []
        for i in self.report.get("images", []):
            out += [i["error"]] if i.get("error") else []
            out += [d["error"] for d in i.get("destinations", []) if d.get("error")]
        return out


def mirror_copy(work: Path, *args: str) -> Run:
    """`mirror copy ARGS` (in process), with its report."""
    from mirror.cli.main import main

    work.mkdir(parents=True, exist_ok=True)
    report = work / f"copy-{len(list(work.glob('copy-*.json')))}.json"
    code = main(["copy", "--quiet", "--report", str(report), *args])
    return Run(code, json.loads(report.read_text()) if report.exists() else {})


def mirror_sync(work: Path, config: str) -> Run:
    """`mirror sync --once` (in process) of the YAML `config`, with its report."""
    from mirror.cli.main import main

    work.mkdir(parents=True, exist_ok=True)
    n = len(list(work.glob("sync-*.yaml")))
    path, report = work / f"sync-{n}.yaml", work / f"sync-{n}.json"
    path.write_text(config)
    code = main(["sync", "--config", str(path), "--once", "--report", str(report)])
    return Run(code, json.loads(report.read_text()) if report.exists() else {})
