"""Content at the edges of the image spec, assembled from what buildah and skopeo made: an index
whose entries are themselves indexes, and a Docker image whose base layer is foreign
(non-distributable: `urls` point at another server, the registry never holds it). The copies are
read back by skopeo, ctr and podman."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.content import sha256_digest
from tests.support.images import blob_exists, fetch_blob, push_blob, push_manifest
from tests.support.interop import TAG, Source, mirror_copy
from tests.support.mediatypes import DOCKER_MANIFEST, OCI_INDEX
from tests.support.registry import RegistryFactory, RegistryHandle
from tests.support.skopeo import skopeo_copy, skopeo_inspect_raw
from tests.support.tools.containerd import Containerd
from tests.support.tools.files import Files
from tests.support.tools.podman import Podman

pytestmark = pytest.mark.interop

FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


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


class BlobServer:
    """Serves blobs by digest on loopback (where a foreign layer's `urls` point), counting GETs."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.gets: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.gets.append(self.path)
                body = server.blobs.get(self.path.rsplit("/", 1)[-1])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="blob-server", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def blob_server() -> Iterator[BlobServer]:
    server = BlobServer()
    try:
        yield server
    finally:
        server.close()


def _targz(files: Files) -> tuple[bytes, str]:
    """A gzip layer of `files` and its diff_id (the digest of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for rel, data in files.entries.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), sha256_digest(raw.getvalue())


# distribution refuses a manifest with `urls` unless they match validation.manifests.urls.allow
ALLOW_LOOPBACK_URLS = {"validation": {"manifests": {"urls": {"allow": [r"^http://127\.0\.0\.1:[0-9]+/"]}}}}


def test_foreign_layer_stays_a_reference(
    interop_source: Source,
    interop_registries: RegistryFactory,
    blob_server: BlobServer,
    containerd: Containerd,
    podman: Podman,
    tmp_path: Path,
) -> None:
    """mirror copies the manifest and the distributable blobs, never fetches the foreign layer and
    never pushes it; containerd and podman pulling the copy fetch it from its URL, and the image
    has the foreign layer's files and buildah's."""
    built = interop_source.images["docker-gzip"]
    src = interop_registries.start(extra_config=ALLOW_LOOPBACK_URLS)
    dst = interop_registries.start(extra_config=ALLOW_LOOPBACK_URLS)
    base = Files({"foreign/base.txt": b"a base layer served from elsewhere\n"})
    foreign, foreign_diff = _targz(base)
    foreign_digest = sha256_digest(foreign)
    blob_server.blobs[foreign_digest] = foreign
    manifest = built.manifest
    config = json.loads(fetch_blob(interop_source.registry, built.repo, manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"].insert(0, foreign_diff)
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    repo = "edge/foreign"
    manifest["config"].update(digest=push_blob(src, repo, config_bytes), size=len(config_bytes))
    for layer in manifest["layers"]:
        push_blob(src, repo, fetch_blob(interop_source.registry, built.repo, layer["digest"]))
    url = f"{blob_server.url}/blobs/{foreign_digest}"
    manifest["layers"].insert(
        0, {"mediaType": FOREIGN, "digest": foreign_digest, "size": len(foreign), "urls": [url]}
    )
    data = json.dumps(manifest, indent=3).encode()
    digest = push_manifest(src, repo, TAG, data, DOCKER_MANIFEST)

    run = mirror_copy(tmp_path, f"{src.host}/{repo}:{TAG}", f"{dst.host}/{repo}:{TAG}")
    assert run.code == 0, run.errors()
    assert skopeo_inspect_raw(f"{dst.host}/{repo}:{TAG}") == data
    assert not blob_exists(dst, repo, foreign_digest)
    assert blob_server.gets == []

    ref = f"{dst.host}/{repo}:{TAG}"
    containerd.pull(ref)
    assert containerd.image_digest(ref) == digest
    with containerd.mounted(ref, "linux/amd64") as rootfs:
        assert base.mismatches(rootfs) == [] and built.files["linux/amd64"].mismatches(rootfs) == []
    with podman.pulled(ref) as rootfs:
        assert base.mismatches(rootfs) == [] and built.files["linux/amd64"].mismatches(rootfs) == []
    assert len(blob_server.gets) >= 2  # each client took the foreign layer from its URL
