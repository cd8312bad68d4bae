"""A registry-API-shaped HTTP server on loopback: a synthetic source and a discarding sink.

    python -m benchmarks.synthetic_server --seed S --size BYTES --digest sha256:... [--token-ttl SECONDS]

*Source*: the repository ``--source-repo`` (default ``synthetic/blob``) holds one image, tag
``latest`` (any tag answers), whose single layer is the synthetic blob (seed, size) streamed
from the generator as it is sent, with its Content-Length: no Range, nothing stored. Its digest
is given on the command line (the harness computes it once and caches it).

*Sink*: every other repository accepts monolithic uploads (POST, then one PUT) and discards the
bytes while counting them. A PUT must carry Content-Length and must not be chunked (400
otherwise); with ``--verify`` the sink also hashes what it receives and refuses a wrong digest.
Manifests are kept (small), blobs are only remembered by digest and size, mounts of a known
blob answer 201.

With ``--token-ttl`` every request needs a bearer token from ``/token`` (distribution's token
flow); a token presented after it expired is refused with 401 and counted: a client that
refreshes ahead of expiry never sees one after its first challenge.

``GET /_stats`` answers counters as JSON. The first line on stdout is ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mirror.daemon.benchcmd import synthetic_chunks, synthetic_image
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest

SEND_CHUNK = 4 * 1024 * 1024
READ_BUFSIZE = 4 * 1024 * 1024
MAX_MANIFEST = 4 * 1024 * 1024


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    bytes_served: int = 0
    bytes_received: int = 0
    blobs_received: int = 0
    tokens_issued: int = 0
    token_scopes: Counter[str] = field(default_factory=Counter)
    challenges: int = 0  # 401 to a request without a token
    expired_rejected: int = 0  # 401 to a request whose token had expired
    chunked_rejected: int = 0
    digest_rejected: int = 0
    received_digests: list[str] = field(default_factory=list)
    put_seconds: float = 0.0  # first to last byte of blob PUT bodies

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "bytes_served": self.bytes_served,
            "bytes_received": self.bytes_received,
            "blobs_received": self.blobs_received,
            "tokens_issued": self.tokens_issued,
            "token_scopes": dict(self.token_scopes),
            "challenges": self.challenges,
            "expired_rejected": self.expired_rejected,
            "chunked_rejected": self.chunked_rejected,
            "digest_rejected": self.digest_rejected,
            "received_digests": self.received_digests[-16:],
            "put_seconds": round(self.put_seconds, 3),
        }


class SyntheticRegistry:
    def __init__(self, seed: str, size: int, digest: Digest, *, source_repo: str = "synthetic/blob",
                 token_ttl: float | None = None, verify: bool = False) -> None:
        self.seed = seed
        self.size = size
        self.image = synthetic_image(digest, size, note="synthetic source")
        self.source_repo = source_repo
        self.token_ttl = token_ttl
        self.verify = verify
        self.stats = Stats()
        self.port = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._blobs: dict[tuple[str, str], int] = {}  # sink: (repository, digest) -> size
        self._manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._uploads: set[str] = set()

    # -- app ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count, self._auth], client_max_size=MAX_MANIFEST,
                              handler_args={"read_bufsize": READ_BUFSIZE})
        app.router.add_get("/_stats", self._stats)
        app.router.add_get("/token", self._token)
        app.router.add_get("/v2/", self._ping)
        app.router.add_route("*", r"/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("POST", r"/v2/{name:.+}/blobs/uploads/", self._post_upload)
        app.router.add_route("PUT", r"/v2/{name:.+}/blobs/uploads/{id}", self._put_upload)
        app.router.add_route("*", r"/v2/{name:.+}/blobs/{digest}", self._blob)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/_stats":
            self.stats.requests[request.method] += 1
        return await handler(request)  # type: ignore[no-any-return]

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.token_ttl is None or request.path in ("/token", "/_stats"):
            return await handler(request)  # type: ignore[no-any-return]
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is not None and expiry > time.monotonic():
            return await handler(request)  # type: ignore[no-any-return]
        if expiry is not None:
            self.stats.expired_rejected += 1
        else:
            self.stats.challenges += 1
        name = request.match_info.get("name", "")
        scope = ""
        if name:
            action = "pull" if request.method in ("GET", "HEAD") else "pull,push"
            scope = f',scope="repository:{name}:{action}"'
        realm = f"http://127.0.0.1:{self.port}/token"
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, status=401,
            headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="synthetic"{scope}'},
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _token(self, request: web.Request) -> web.Response:
        ttl = self.token_ttl or 300.0
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + ttl
        self.stats.tokens_issued += 1
        for scope in request.query.getall("scope", []):
            self.stats.token_scopes[scope] += 1
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return web.json_response({"token": token, "expires_in": int(ttl), "issued_at": issued})

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    # -- manifests ---------------------------------------------------------------------------

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        name, ref = request.match_info["name"], request.match_info["ref"]
        if name == self.source_repo:
            if request.method not in ("GET", "HEAD"):
                return _error(405, "UNSUPPORTED", "the synthetic source is read-only")
            if ":" in ref and ref != str(self.image.manifest_digest):
                return _error(404, "MANIFEST_UNKNOWN", "unknown manifest")
            return self._bytes(request, self.image.manifest, mt.OCI_MANIFEST, self.image.manifest_digest)
        key = (name, ref)
        if request.method == "PUT":
            raw = await request.read()
            media_type = request.headers.get("Content-Type", mt.OCI_MANIFEST)
            digest = Digest.of(raw)
            self._manifests[key] = (raw, media_type)
            self._manifests[(name, str(digest))] = (raw, media_type)
            return web.Response(status=201, headers={"Docker-Content-Digest": str(digest),
                                                     "Location": f"/v2/{name}/manifests/{digest}"})
        if request.method == "DELETE":
            found = self._manifests.get(key)
            if found is None:
                return _error(404, "MANIFEST_UNKNOWN", "unknown manifest")
            digest = Digest.of(found[0])
            gone = [k for k, v in self._manifests.items() if k[0] == name and Digest.of(v[0]) == digest]
            for k in gone:
                del self._manifests[k]
            return web.Response(status=202)
        found = self._manifests.get(key)
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN", "unknown manifest")
        return self._bytes(request, found[0], found[1], Digest.of(found[0]))

    def _bytes(self, request: web.Request, data: bytes, media_type: str, digest: Digest) -> web.Response:
        headers = {"Docker-Content-Digest": str(digest), "Content-Type": media_type}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return web.Response(status=200, headers=headers)
        self.stats.bytes_served += len(data)
        return web.Response(body=data, headers=headers)

    # -- blobs -------------------------------------------------------------------------------

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        name, digest = request.match_info["name"], request.match_info["digest"]
        if request.method not in ("GET", "HEAD"):
            return _error(405, "UNSUPPORTED", "use POST + PUT to upload")
        if name == self.source_repo:
            if digest == str(self.image.config_desc.digest):
                return self._bytes(request, self.image.config, "application/octet-stream",
                                   self.image.config_desc.digest)
            if digest == str(self.image.layer.digest):
                return await self._stream_layer(request)
            return _error(404, "BLOB_UNKNOWN", "unknown blob")
        size = self._blobs.get((name, digest))
        if size is None or request.method != "HEAD":
            return _error(404, "BLOB_UNKNOWN", "unknown blob (the sink keeps no bytes)")
        headers = {"Content-Length": str(size), "Docker-Content-Digest": digest}
        return web.Response(status=200, headers=headers)

    async def _stream_layer(self, request: web.Request) -> web.StreamResponse:
        headers = {"Content-Length": str(self.size), "Content-Type": "application/octet-stream",
                   "Docker-Content-Digest": str(self.image.layer.digest)}
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers)
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        for chunk in synthetic_chunks(self.seed, self.size, SEND_CHUNK):
            await resp.write(chunk)
            self.stats.bytes_served += len(chunk)
        await resp.write_eof()
        return resp

    async def _post_upload(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        mount = request.query.get("mount")
        if mount and (request.query.get("from", ""), mount) in self._blobs:
            self._blobs[(name, mount)] = self._blobs[(request.query.get("from", ""), mount)]
            return web.Response(status=201, headers={"Docker-Content-Digest": mount,
                                                     "Location": f"/v2/{name}/blobs/{mount}"})
        upload = uuid.uuid4().hex
        self._uploads.add(upload)
        return web.Response(status=202, headers={
            "Location": f"/v2/{name}/blobs/uploads/{upload}?_state={secrets.token_urlsafe(8)}",
            "Docker-Upload-UUID": upload, "Range": "0-0", "Content-Length": "0",
        })

    async def _put_upload(self, request: web.Request) -> web.Response:
        upload = request.match_info["id"]
        if upload not in self._uploads:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", "unknown upload")
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            self.stats.chunked_rejected += 1
            return _error(400, "BLOB_UPLOAD_INVALID", "chunked transfer encoding is not accepted")
        length = request.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return _error(411, "SIZE_INVALID", "Content-Length required")
        digest = request.query.get("digest", "")
        hasher = hashlib.sha256() if self.verify else None
        received = 0
        began = time.monotonic()
        content = request.content
        while True:
            data, _ = await content.readchunk()  # as parsed: no joining copy
            if not data:
                break
            received += len(data)
            if hasher is not None:
                hasher.update(data)
        self.stats.put_seconds += time.monotonic() - began
        self.stats.bytes_received += received
        self._uploads.discard(upload)
        if received != int(length):
            return _error(400, "SIZE_INVALID", f"received {received} of {length} bytes")
        if hasher is not None and f"sha256:{hasher.hexdigest()}" != digest:
            self.stats.digest_rejected += 1
            return _error(400, "DIGEST_INVALID", "digest mismatch")
        self._blobs[(request.match_info["name"], digest)] = received
        self.stats.blobs_received += 1
        self.stats.received_digests.append(digest)
        location = f"/v2/{request.match_info['name']}/blobs/{digest}"
        return web.Response(status=201, headers={"Docker-Content-Digest": digest, "Location": location})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": message}]}, status=status)


async def serve(server: SyntheticRegistry, port: int, stop_after: float) -> None:
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=128)
    await site.start()
    sockets = runner.addresses
    server.port = int(sockets[0][1])
    print(f"READY {server.port}", flush=True)
    try:
        await asyncio.sleep(stop_after)  # bounded: the server stops by itself
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.synthetic_server")
    p.add_argument("--seed", default="synthetic")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--digest", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--source-repo", default="synthetic/blob")
    p.add_argument("--token-ttl", type=float, default=None)
    p.add_argument("--verify", action="store_true", help="hash received blobs and refuse a wrong digest")
    p.add_argument("--stop-after", type=float, default=6 * 3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    server = SyntheticRegistry(args.seed, args.size, Digest.parse(args.digest), source_repo=args.source_repo,
                               token_ttl=args.token_ttl, verify=args.verify)
    try:
        import uvloop

        uvloop.run(serve(server, args.port, args.stop_after))
    except ImportError:
        asyncio.run(serve(server, args.port, args.stop_after))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

