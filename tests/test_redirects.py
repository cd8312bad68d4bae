"""Blob redirects to object storage (ECR, GCR/AR and Docker Hub send blob GETs to S3/GCS/CDN):
followed, without the registry's ``Authorization`` leaving the registry's host.

Two aiohttp servers on loopback: a registry that demands Basic auth and answers a blob GET with
307 to a "storage" server (another host:port), which records the headers it received.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from mirror.auth.credentials import Credential, StaticProvider
from mirror.registry.distribution import RegistryRepository
from mirror.transport.client import HostOptions, Transport
from mirror.types.digest import Digest
from mirror.types.errors import UnsafeRequest
from mirror.types.manifest import Descriptor

USER, PASSWORD = "robot", "s3cret-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BLOB = b"layer bytes kept in object storage " * 1000
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@dataclass
class Seen:
    registry: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, auth
    storage: list[tuple[str, str, str | None]] = field(default_factory=list)


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Seen, str, int, dict[str, Any]]]:
    seen = Seen()
    config: dict[str, Any] = {"location": None}

    async def storage(request: web.Request) -> web.Response:
        seen.storage.append((request.method, request.path_qs, request.headers.get("Authorization")))
        if request.query.get("X-Amz-Signature") != "presigned":
            return web.Response(status=403)
        return web.Response(
            body=BLOB if request.method == "GET" else None, headers={"Content-Length": str(len(BLOB))}
        )

    storage_app = web.Application()
    storage_app.router.add_route("*", "/{tail:.*}", storage)
    storage_runner, storage_port = await serve(storage_app)

    async def registry(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        seen.registry.append((request.method, request.path_qs, auth))
        if auth != BASIC:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="registry"'})
        if request.path == "/v2/":
            return web.Response()
        if request.path == "/same-host/blob":
            return web.Response(body=BLOB)
        location = config["location"] or (
            f"http://127.0.0.1:{storage_port}/bucket/blobs/{DIGEST}?X-Amz-Signature=presigned"
        )
        return web.Response(status=307, headers={"Location": location})

    registry_app = web.Application()
    registry_app.router.add_route("*", "/{tail:.*}", registry)
    registry_runner, registry_port = await serve(registry_app)
    try:
        yield seen, f"127.0.0.1:{registry_port}", storage_port, config
    finally:
        await registry_runner.cleanup()
        await storage_runner.cleanup()


def transport_for(host: str) -> Transport:
    creds = StaticProvider({host: Credential(username=USER, password=PASSWORD)})
    return Transport(creds, options={host: HostOptions(plain_http=True)})


async def read_blob(repo: RegistryRepository) -> bytes:
    reader = await repo.open_blob(Descriptor("application/octet-stream", Digest.parse(DIGEST), len(BLOB)))
    try:
        return b"".join([chunk async for chunk in reader.chunks()])
    finally:
        await reader.close()


async def test_redirect_to_storage_drops_authorization(servers: Any) -> None:
    seen, host, _, _ = servers
    async with transport_for(host) as transport:
        repo = RegistryRepository(transport, host, "team/app")
        assert await read_blob(repo) == BLOB
    # the registry got the credentials; the storage host got the request without them
    blob_requests = [r for r in seen.registry if "/blobs/" in r[1]]
    assert blob_requests and all(auth == BASIC for _, _, auth in blob_requests)
    assert [(m, auth) for m, _, auth in seen.storage] == [("GET", None)]
    assert "X-Amz-Signature=presigned" in seen.storage[0][1]  # the presigned query kept intact


async def test_same_host_redirect_keeps_authorization(servers: Any) -> None:
    seen, host, _, config = servers
    config["location"] = "/same-host/blob"  # relative: stays on the registry's host
    async with transport_for(host) as transport:
        assert await read_blob(RegistryRepository(transport, host, "team/app")) == BLOB
    assert seen.storage == []
    assert ("GET", "/same-host/blob", BASIC) in seen.registry


async def test_localhost_alias_is_another_host(servers: Any) -> None:
    """``localhost`` and ``127.0.0.1`` reach the same server but are different hosts: no credentials."""
    seen, host, storage_port, config = servers
    config["location"] = f"http://localhost:{storage_port}/bucket/x?X-Amz-Signature=presigned"
    async with transport_for(host) as transport:
        assert await read_blob(RegistryRepository(transport, host, "team/app")) == BLOB
    assert [auth for _, _, auth in seen.storage] == [None]


async def test_redirect_to_another_scheme_is_refused(servers: Any) -> None:
    seen, host, _, config = servers
    config["location"] = "file:///etc/passwd"
    async with transport_for(host) as transport:
        with pytest.raises(UnsafeRequest):
            await read_blob(RegistryRepository(transport, host, "team/app"))
    assert seen.storage == []
