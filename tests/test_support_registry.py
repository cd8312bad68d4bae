"""The registry fixtures and seeding helpers against Debian's docker-registry, checked with skopeo."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest
import requests

from tests.support import images
from tests.support.content import sha256_digest
from tests.support.images import blob_exists, fetch_blob, fetch_manifest, layer, push_image, push_index
from tests.support.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.support.registry import RegistryFactory, RegistryHandle
from tests.support.skopeo import skopeo_binary, skopeo_copy, skopeo_inspect_raw

pytestmark = pytest.mark.registry
needs_skopeo = pytest.mark.skipif(skopeo_binary() is None, reason="skopeo is not installed")


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def test_plain_registry_answers_and_reports_its_layout(registry: RegistryHandle) -> None:
    assert registry.host.startswith("127.0.0.1:") and registry.url == f"http://{registry.host}"
    assert registry.username is None and registry.password is None and registry.creds is None
    r = _session().get(registry.url + "/v2/", timeout=5)
    assert r.status_code == 200 and r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    digest = images.push_blob(registry, "some/repo", b"hello")
    path = registry.blob_path(digest)
    assert (
        path == registry.storage_dir / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    )
    assert path.read_bytes() == b"hello"
    assert registry.startup_seconds > 0


def test_stop_all_ends_processes_threads_and_ports(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    factory = RegistryFactory(tmp_path)
    handle = factory.start(auth="token")
    process, token_server = handle.process, handle.token_server
    assert process is not None and token_server is not None
    ports = (handle.port, token_server.port)
    keep_alive = _session()  # holds an idle keep-alive connection to the token server
    assert keep_alive.get(token_server.realm, auth=handle.creds, timeout=5).status_code == 200
    factory.stop_all(remove_storage=True)
    assert process.poll() is not None and not handle.running and not handle.storage_dir.exists()
    assert handle.log_path.exists()
    assert set(threading.enumerate()) - before == set()
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    keep_alive.close()


@needs_skopeo
@pytest.mark.skopeo
@pytest.mark.parametrize(
    ("media", "index_type", "child_type"),
    [
        ("oci", OCI_INDEX, OCI_MANIFEST),
        ("docker", DOCKER_LIST, DOCKER_MANIFEST),
    ],
)
def test_pushed_index_reads_back_byte_identical_with_skopeo(
    registry: RegistryHandle, media: images.Media, index_type: str, child_type: str
) -> None:
    idx = push_index(registry, "multi/app", "v1", media=media, seed=f"idx-{media}")
    assert idx.media_type == index_type and len(idx.children) == 3
    assert json.loads(idx.manifest)["mediaType"] == index_type
    assert [c.platform for c in idx.children] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert skopeo_inspect_raw(f"{registry.host}/multi/app:v1") == idx.manifest
    for child in idx.children:
        assert child.media_type == child_type and child.tag is None
        assert skopeo_inspect_raw(f"{registry.host}/multi/app@{child.digest}") == child.manifest
        for digest in child.blob_digests:
            assert blob_exists(registry, "multi/app", digest)
    got = fetch_manifest(registry, "multi/app", "v1")
    assert (got.data, got.media_type, got.digest) == (idx.manifest, index_type, idx.digest)
    assert idx.digest == sha256_digest(idx.manifest)


def test_content_is_deterministic_and_base_layers_are_shared(
    registry_pair: tuple[RegistryHandle, ...],
) -> None:
    a, b = registry_pair
    base = layer(10_000, "shared-base")
    one = push_image(a, "app", "one", [3000], seed="one", base_layers=[base])
    two = push_image(a, "app", "two", [3000], seed="two", base_layers=[base])
    again = push_image(b, "app", "one", [3000], seed="one", base_layers=[base])
    assert one.layers[0] == two.layers[0] == base and one.layers[1].digest != two.layers[1].digest
    assert again.digest == one.digest and again.manifest == one.manifest
    assert one.config_digest != two.config_digest
    assert fetch_blob(a, "app", base.digest) == base.read()
    assert hashlib.sha256(base.read()).hexdigest() == base.digest[7:]


def test_corrupt_blob_flips_bytes_behind_the_registrys_back(registry: RegistryHandle) -> None:
    img = push_image(registry, "app", "v1", [4096], seed="c")
    digest = img.layers[0].digest
    before = fetch_blob(registry, "app", digest)
    images.corrupt_blob(registry, digest, offset=10, count=2)
    after = fetch_blob(registry, "app", digest)
    assert len(after) == len(before) and after != before and sha256_digest(after) != digest
    assert after[10:12] == bytes(b ^ 0xFF for b in before[10:12]) and after[12:] == before[12:]
    assert blob_exists(registry, "app", digest)


def test_htpasswd_accepts_good_and_rejects_bad_credentials(htpasswd_registry: RegistryHandle) -> None:
    reg = htpasswd_registry
    assert reg.username and reg.password and reg.username != reg.seed_username
    s = _session()
    r = s.get(reg.url + "/v2/", timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    assert s.get(reg.url + "/v2/", auth=reg.creds, timeout=5).status_code == 200
    assert s.get(reg.url + "/v2/", auth=(reg.username, "wrong"), timeout=5).status_code == 401
    img = push_image(reg, "private/app", "v1", [100], seed="h")
    assert fetch_manifest(reg, "private/app", "v1", creds=reg.creds).data == img.manifest
    with pytest.raises(AssertionError, match="401"):
        fetch_manifest(reg, "private/app", "v1", creds=(reg.username, "wrong"))


@needs_skopeo
@pytest.mark.skopeo
def test_skopeo_reads_authenticated_registries_and_copies(registry_factory: RegistryFactory) -> None:
    basic = registry_factory.start(auth="htpasswd")
    token = registry_factory.start(auth="token")
    idx = push_index(basic, "app", "v1", platforms=["linux/amd64", "linux/arm64"], seed="sk")
    assert skopeo_inspect_raw(f"{basic.host}/app:v1", creds=basic.creds) == idx.manifest
    with pytest.raises(RuntimeError, match="skopeo"):
        skopeo_inspect_raw(f"{basic.host}/app:v1", creds=(basic.username or "", "wrong"))
    skopeo_copy(
        f"{basic.host}/app:v1", f"{token.host}/copied/app:v1", src_creds=basic.creds, dest_creds=token.creds
    )
    assert skopeo_inspect_raw(f"{token.host}/copied/app:v1", creds=token.creds) == idx.manifest
    assert fetch_manifest(token, "copied/app", "v1").data == idx.manifest
    assert token.token_server is not None and token.token_server.issued_to(token.username)


def test_refs_tags_and_pagination(registry: RegistryHandle) -> None:
    img = push_image(registry, "paged/app", "a", [10], seed="p")
    for tag in ("b", "c"):
        images.push_manifest(registry, "paged/app", tag, img.manifest, img.media_type)
    assert sorted(images.list_tags(registry, "paged/app")) == ["a", "b", "c"]
    assert sorted(images.list_tags(registry, "paged/app", page_size=1)) == ["a", "b", "c"]
    assert images.list_tags(registry, "nothing/here") == []
    assert images.manifest_exists(registry, "paged/app", img.digest)
    assert not images.manifest_exists(registry, "paged/app", "zzz")
    assert registry.ref("paged/app", "a") == f"{registry.host}/paged/app:a"
    assert registry.ref("paged/app", img.digest) == f"{registry.host}/paged/app@{img.digest}"
    push_image(registry, "paged/other", "x", [10], seed="p")
    assert images.list_catalog(registry, page_size=1) == ["paged/app", "paged/other"]
    r = _session().get(registry.url + "/v2/_catalog", params={"n": 1}, timeout=5)
    assert r.json()["repositories"] == ["paged/app"] and 'rel="next"' in r.headers["Link"]
