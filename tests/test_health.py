"""Health server: /metrics, /healthz, /readyz and /shard over loopback HTTP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from mirror.service.metrics import Metrics
from mirror.service.server import HealthServer, parse_address
from mirror.service.shard import Shard, describe
from mirror.types import events as ev
from mirror.types.errors import InputError
from mirror.types.events import Event


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **kw: str) -> tuple[int, str, str]:
    async with http.get(url, headers=kw or None) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_endpoints(http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    server = HealthServer(metrics, address="127.0.0.1:0")
    port = await server.start()
    try:
        assert port > 0 and server.port == port
        assert server.url == f"http://127.0.0.1:{port}"
        base = server.url

        assert (await get(http, base + "/healthz"))[0] == 200

        status, _, text = await get(http, base + "/readyz")
        assert (status, text.strip()) == (503, "not ready")
        server.set_ready()
        status, _, text = await get(http, base + "/readyz")
        assert (status, text.strip()) == (200, "ready")

        metrics(Event(ev.BLOB_PUSHED, host="gcr.io", size=42))
        status, content_type, text = await get(http, base + "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        assert 'mirror_destination_bytes_total{registry="gcr.io"} 42.0' in text
        status, content_type, text = await get(
            http, base + "/metrics", Accept="application/openmetrics-text; version=1.0.0"
        )
        assert content_type.startswith("application/openmetrics-text")
        assert text.rstrip().endswith("# EOF")

        status, _, text = await get(http, base + "/shard")
        assert status == 200 and '"count": 1' in text

        assert (await get(http, base + "/nope"))[0] == 404
        async with http.head(base + "/healthz") as response:
            assert response.status == 200

        server.set_shutting_down()
        status, _, text = await get(http, base + "/readyz")
        assert (status, text.strip()) == (503, "shutting down")
        assert (await get(http, base + "/healthz"))[0] == 200
    finally:
        await server.stop()
    await server.stop()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(http, f"http://127.0.0.1:{port}/healthz")


async def test_shard_callbacks(http: aiohttp.ClientSession) -> None:
    repos = ["gcr.io/p/a", "gcr.io/p/b", "docker.io/library/nginx", "quay.io/x/y"]
    shard = Shard(1, 2)

    async def async_info() -> Mapping[str, object]:
        return describe(shard, repos)

    async with HealthServer(Metrics(), address="127.0.0.1:0", shard_info=lambda: describe(shard, repos)) as s:
        async with http.get(s.url + "/shard") as response:
            assert response.status == 200
            doc = await response.json()
        assert doc == describe(shard, repos)
        s.shard_info = async_info
        async with http.get(s.url + "/shard") as response:
            assert await response.json() == describe(shard, repos)

        def broken() -> Mapping[str, object]:
            raise RuntimeError("secret detail")

        s.shard_info = broken
        async with http.get(s.url + "/shard") as response:
            assert response.status == 500
            assert "secret" not in await response.text()


async def test_several_servers_and_port_in_use() -> None:
    async with HealthServer(Metrics(), address="127.0.0.1:0") as a:
        async with HealthServer(Metrics(), address="127.0.0.1:0") as b:
            assert a.port != b.port
        # A port another socket holds exclusively cannot be bound: a clear InputError.
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            busy = holder.getsockname()[1]
            with pytest.raises(InputError, match="cannot listen"):
                await HealthServer(Metrics(), address=f"127.0.0.1:{busy}").start()
        with pytest.raises(RuntimeError):
            await a.start()


def test_port_before_start() -> None:
    with pytest.raises(RuntimeError):
        _ = HealthServer(Metrics()).port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        ("0.0.0.0:9090", ("0.0.0.0", 9090)),
        (":9090", (None, 9090)),
        ("9090", (None, 9090)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:8080", ("localhost", 8080)),
    ],
)
def test_parse_address(text: str, expected: tuple[str | None, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["", "host:", "host:x", "1.2.3.4:70000", "::1:9090", "[zz]:1", "[::1]", "h:١٢"]
)
def test_parse_address_errors(text: str) -> None:
    with pytest.raises(InputError, match="listen address"):
        parse_address(text)
