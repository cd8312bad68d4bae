"""The recording / fault-injecting proxy in front of real registries."""

from __future__ import annotations

import time
import tracemalloc

import aiohttp
import pytest
import requests

from tests.support import images
from tests.support.content import BlobSpec
from tests.support.faults import Delay, ErrorBurst, FlipBytes, Reset, TooManyRequests, Truncate
from tests.support.fixtures import ProxyFactory
from tests.support.images import fetch_manifest, layer, push_image
from tests.support.mediatypes import ACCEPT_ALL
from tests.support.registry import RegistryFactory, RegistryHandle
from tests.support.seedclient import SeedClient, parse_challenge

pytestmark = pytest.mark.registry


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def test_records_a_content_length_upload_without_transfer_encoding(
    registry: RegistryHandle, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory.start(registry)
    digest = images.push_blob(proxy, "wire/app", b"x" * 5000)
    post, put = proxy.select("POST")[0], proxy.select("PUT")[0]
    assert post.content_length == 0 and post.body_bytes == 0
    assert put.content_length == 5000 and put.body_bytes == 5000 and not put.chunked
    assert (
        not put.has_header("Transfer-Encoding") and put.header("content-type") == "application/octet-stream"
    )
    assert ("digest", digest) in put.query_params and put.status == 201
    assert put.path.startswith("/v2/wire/app/blobs/uploads/") and put.auth_scheme is None
    assert images.blob_exists(registry, "wire/app", digest)


def test_rewrites_location_to_the_proxy(
    registry_factory: RegistryFactory, proxy_factory: ProxyFactory
) -> None:
    for relative in (False, True):
        reg = registry_factory.start(relative_urls=relative)
        proxy = proxy_factory.start(reg)
        r = _session().post(proxy.url + "/v2/loc/blobs/uploads/", headers={"Content-Length": "0"}, timeout=5)
        assert r.status_code == 202
        location = r.headers["Location"]
        if relative:
            assert location.startswith("/v2/loc/blobs/uploads/")
        else:
            assert location.startswith(proxy.url + "/v2/loc/blobs/uploads/") and reg.host not in location


def test_head_keeps_content_length_and_digest(registry: RegistryHandle, proxy_factory: ProxyFactory) -> None:
    img = push_image(registry, "app", "v1", [1234], seed="head")
    proxy = proxy_factory.start(registry)
    s = _session()
    r = s.head(f"{proxy.url}/v2/app/blobs/{img.layers[0].digest}", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Length"] == "1234"
    r = s.head(f"{proxy.url}/v2/app/manifests/v1", headers={"Accept": ACCEPT_ALL}, timeout=5)
    assert r.headers["Docker-Content-Digest"] == img.digest and int(r.headers["Content-Length"]) == img.size


def test_streams_a_64_mib_layer_both_ways_without_buffering(
    registry: RegistryHandle, proxy_factory: ProxyFactory
) -> None:
    big = layer(64 << 20, "big")
    _ = big.digest
    proxy = proxy_factory.start(registry)
    tracemalloc.start()
    try:
        img = push_image(proxy, "big/app", "v1", [], seed="big", base_layers=[big])
        got = 0
        with SeedClient(proxy) as client:
            r = client.request("GET", f"/v2/big/app/blobs/{big.digest}", "big/app", stream=True)
            for chunk in r.iter_content(1 << 20):
                got += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == big.size and img.layers == (big,)
    assert peak < 16 << 20, f"peak traced memory {peak} suggests a blob was buffered whole"
    put = next(r for r in proxy.select("PUT") if "/blobs/uploads/" in r.path and r.body_bytes == big.size)
    assert put.content_length == big.size and not put.chunked
    assert registry.blob_path(big.digest).stat().st_size == big.size


async def test_async_client_chunked_and_sized_uploads_are_told_apart(
    registry: RegistryHandle, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory.start(registry)
    data = b"y" * 100_000
    blob = BlobSpec("unused", 0)
    digest = "sha256:" + __import__("hashlib").sha256(data).hexdigest()
    assert blob.size == 0

    async def body():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 30_000):
            yield data[i : i + 30_000]

    async with aiohttp.ClientSession() as s:
        for explicit_length in (False, True):
            async with s.post(f"{proxy.url}/v2/async/blobs/uploads/", data=b"") as r:
                assert r.status == 202
                location = r.headers["Location"]
            headers = {"Content-Type": "application/octet-stream"}
            if explicit_length:
                headers["Content-Length"] = str(len(data))
            async with s.put(location, params={"digest": digest}, data=body(), headers=headers) as r:
                assert r.status == 201, await r.text()
    chunked, sized = proxy.select("PUT")
    assert chunked.chunked and chunked.content_length is None and chunked.body_bytes == len(data)
    assert not sized.chunked and sized.content_length == len(data) and sized.body_bytes == len(data)


def test_rejects_expired_bearer_tokens_with_upstream_challenge(
    registry_factory: RegistryFactory, proxy_factory: ProxyFactory
) -> None:
    reg = registry_factory.start(auth="token", token_ttl=30)
    ts = reg.token_server
    assert ts is not None
    push_image(reg, "exp/app", "v1", [10], seed="exp")
    proxy = proxy_factory.start(reg, reject_expired=True)
    params = {"service": ts.service, "scope": "repository:exp/app:pull"}
    token = _session().get(ts.realm, params=params, auth=reg.creds, timeout=5).json()["token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT_ALL}
    url = proxy.url + "/v2/exp/app/manifests/v1"
    assert _session().get(url, headers=headers, timeout=5).status_code == 200
    proxy.clock = lambda: time.time() + 31  # the token is now past `exp`; no leeway at the proxy
    r = _session().get(url, headers=headers, timeout=5)
    assert r.status_code == 401 and proxy.expired_rejections == 1
    scheme, challenge = parse_challenge(r.headers["WWW-Authenticate"])
    assert (
        scheme == "bearer"
        and challenge["realm"] == ts.realm
        and challenge["scope"] == "repository:exp/app:pull"
    )
    # uploads are drained before the 401, and the challenge asks for push
    r = _session().put(
        proxy.url + "/v2/exp/app/manifests/v2",
        data=b"{}" * 1000,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 401 and "push" in parse_challenge(r.headers["WWW-Authenticate"])[1]["scope"]
    rejected = [rec for rec in proxy.records if rec.rejected_expired]
    assert len(rejected) == 2 == proxy.expired_rejections and rejected[1].body_bytes == 2000
    assert all(rec.token_exp is not None for rec in rejected)
    # seeding through the proxy fetches fresh tokens, which pass
    proxy.clock = time.time
    assert fetch_manifest(proxy, "exp/app", "v1").status == 200


def test_error_burst_and_too_many_requests(registry: RegistryHandle, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory.start(registry)
    burst = proxy.add_fault(ErrorBurst(503, times=2, path=r"^/v2/$"))
    throttle = proxy.add_fault(TooManyRequests(retry_after=3, times=1, method="GET", path=r"/tags/"))
    s = _session()
    assert [s.get(proxy.url + "/v2/", timeout=5).status_code for _ in range(3)] == [503, 503, 200]
    r = s.get(proxy.url + "/v2/app/tags/list", timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3" and r.json()["errors"][0]["code"]
    assert s.get(proxy.url + "/v2/app/tags/list", timeout=5).status_code == 404  # forwarded: unknown repo
    assert burst.fired == 2 and throttle.fired == 1 and burst.exhausted
    assert [rec.fault for rec in proxy.records] == [
        "error-burst",
        "error-burst",
        None,
        "too-many-requests",
        None,
    ]
    # a burst in the middle of an upload answers after draining the body
    proxy.add_fault(ErrorBurst(500, method="PUT"))
    with pytest.raises(AssertionError, match="500"):
        images.push_blob(proxy, "app", b"z" * 70_000)
    assert proxy.select("PUT")[-1].body_bytes == 70_000


def test_body_faults_truncate_flip_reset_delay(registry: RegistryHandle, proxy_factory: ProxyFactory) -> None:
    img = push_image(registry, "app", "v1", [200_000], seed="faults")
    digest = img.layers[0].digest
    original = img.layers[0].read()
    proxy = proxy_factory.start(registry)
    url = f"{proxy.url}/v2/app/blobs/{digest}"
    s = _session()

    proxy.add_fault(Truncate(after_bytes=100_000, path="/blobs/"))
    with pytest.raises(requests.exceptions.RequestException):
        s.get(url, timeout=5).raise_for_status()
    assert proxy.records[-1].fault == "truncate"

    proxy.add_fault(FlipBytes(offset=150_000, count=3, path="/blobs/"))
    flipped = s.get(url, timeout=5).content
    assert len(flipped) == len(original) and flipped != original
    assert flipped[150_000:150_003] == bytes(b ^ 0xFF for b in original[150_000:150_003])

    proxy.add_fault(Reset(path="/blobs/"))
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(url, timeout=5)
    assert proxy.records[-1].fault == "reset"

    proxy.add_fault(Delay(0.05, path="/blobs/"))
    assert s.get(url, timeout=5).content == original  # faults spent: clean again
    assert [f.fired for f in proxy.faults] == [1, 1, 1, 1]


async def test_expect_100_continue_is_answered_and_recorded(
    registry: RegistryHandle, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory.start(registry)
    data = b"e" * 10_000
    digest = "sha256:" + __import__("hashlib").sha256(data).hexdigest()
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{proxy.url}/v2/expect/blobs/uploads/", data=b"") as r:
            location = r.headers["Location"]
        async with s.put(location, params={"digest": digest}, data=data, expect100=True) as r:
            assert r.status == 201
    (put,) = proxy.select("PUT")
    assert put.header("Expect") == "100-continue" and put.continue_sent and put.body_bytes == len(data)


def test_client_going_away_mid_download_is_recorded_and_proxy_keeps_serving(
    registry: RegistryHandle, proxy_factory: ProxyFactory
) -> None:
    img = push_image(registry, "app", "v1", [8 << 20], seed="gone")
    proxy = proxy_factory.start(registry)
    with _session() as s:
        r = s.get(f"{proxy.url}/v2/app/blobs/{img.layers[0].digest}", stream=True, timeout=5)
        next(r.iter_content(1024))
        r.raw._fp.fp.raw._sock.shutdown(2)  # drop the connection without reading on
        r.close()
    assert _session().get(proxy.url + "/v2/", timeout=5).status_code == 200

    def disconnected() -> bool:
        return proxy.select("GET", "/blobs/")[0].client_disconnected

    from tests.support.net import wait_until

    wait_until(disconnected, timeout=10, what="the proxy to notice the disconnect")


def test_stop_joins_the_proxy_thread(registry: RegistryHandle) -> None:
    from tests.support.proxy import RegistryProxy

    with RegistryProxy(registry) as proxy:
        thread = proxy._thread
        assert thread is not None and thread.is_alive()
        assert _session().get(proxy.url + "/v2/", timeout=5).status_code == 200
    assert not thread.is_alive()
    with pytest.raises(requests.exceptions.ConnectionError):
        _session().get(proxy.url + "/v2/", timeout=2)
