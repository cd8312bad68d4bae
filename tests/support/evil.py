"""An "evil registry": a small aiohttp server on loopback that answers exactly what a test tells it
to, including what no honest registry would send (lying digests, wrong media types, endless
bodies, Location/Link/realm headers pointing elsewhere). Own thread and event loop, like the
proxy, so blocking tests and the `mirror` CLI can both talk to it.

    evil = EvilRegistry().start()
    digest = evil.manifest("app", "v1", body, OCI_MANIFEST)           # GET + HEAD by tag and digest
    evil.blob("app", data)                                             # GET + HEAD of a blob
    evil.answer("GET", "/v2/app/tags/list", Answer(200, {"Link": ...}, b'{"tags": []}'))
    evil.requests                                                      # what was asked, in order

Anything not configured is answered 404 with an OCI error body. `Answer.endless` streams a body
with no Content-Length until the client goes away (bounded by ENDLESS_LIMIT; `endless_sent`
records how many bytes each such answer got out). `Answer.split_chunks=N` sends the body with
chunked transfer encoding in N-byte chunks whose closing CRLF arrives in a later TCP segment, as
Go's chunk writer and unbuffered proxies do. A handler may answer with `await evil.respond(request,
answer)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.loopserver import LoopServer
from tests.support.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
)

ENDLESS_LIMIT = 64 * 1024 * 1024
ENDLESS_CHUNK = 64 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    endless: bool = False  # stream b"{" * ... with no Content-Length until the client leaves
    split_chunks: int = 0  # > 0: chunked, N-byte chunks, each CRLF in a later TCP segment


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str  # with the query
    headers: dict[str, str]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


@dataclass(frozen=True)
class EvilImage:
    digest: str
    manifest: bytes
    blobs: tuple[tuple[str, bytes], ...]


class EvilRegistry(LoopServer):
    thread_name = "evil-registry"

    def __init__(
        self,
        *,
        challenge: str | None = None,
        accept: Callable[[str | None], bool] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        """`challenge`: a WWW-Authenticate value; every request whose Authorization `accept`
        refuses is answered 401 with it (no challenge: everything is open). `ssl_context`:
        serve HTTPS with it."""
        super().__init__()
        self.ssl_context = ssl_context
        self.challenge = challenge
        self.accept = accept or (lambda _auth: True)
        self.routes: dict[tuple[str, str], Answer | Handler] = {}
        self.requests: list[Seen] = []
        self.endless_sent: list[int] = []  # bytes each endless answer wrote before the client left
        self._lock = threading.Lock()
        self.answer("GET", "/v2/", Answer(200, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"{}"))

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}"

    # -- configuration ---------------------------------------------------------------------------
    def answer(self, method: str, path: str, answer: Answer | Handler) -> None:
        """Answer `method path` (the path without its query) with `answer`."""
        with self._lock:
            self.routes[(method.upper(), path)] = answer

    def manifest(
        self,
        repo: str,
        ref: str | None,
        body: bytes,
        media_type: str,
        *,
        digest_header: str | None = None,
        get: Answer | None = None,
    ) -> str:
        """Serve `body` under the tag `ref` (when given) and under its digest, GET and HEAD.
        `digest_header` overrides Docker-Content-Digest; `get` replaces the GET answer."""
        digest = sha256(body)
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest_header or digest}
        for name in {digest, *([ref] if ref else [])}:
            path = f"/v2/{repo}/manifests/{name}"
            self.answer("GET", path, get or Answer(200, headers, body))
            self.answer("HEAD", path, Answer(200, {**headers, "Content-Length": str(len(body))}))
        return digest

    def blob(self, repo: str, data: bytes, *, get: Answer | None = None) -> str:
        digest = sha256(data)
        path = f"/v2/{repo}/blobs/{digest}"
        self.answer("GET", path, get or Answer(200, {"Content-Type": "application/octet-stream"}, data))
        self.answer("HEAD", path, Answer(200, {"Content-Length": str(len(data))}))
        return digest

    def image(
        self,
        repo: str,
        tag: str | None,
        *,
        seed: str,
        layers: Sequence[bytes] | None = None,
        media_type: str = OCI_MANIFEST,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> EvilImage:
        """A small valid image (config + layers served as blobs); `edit` may change the manifest
        document before it is serialised (to make it hostile)."""
        docker = "docker" in media_type
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
        layer_data = list(layers) if layers is not None else [f"{seed}-layer".encode() * 100]
        blobs = [(self.blob(repo, config), config), *((self.blob(repo, d), d) for d in layer_data)]
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": blobs[0][0],
                "size": len(config),
            },
            "layers": [
                {"mediaType": DOCKER_LAYER if docker else OCI_LAYER, "digest": d, "size": len(b)}
                for d, b in blobs[1:]
            ],
        }
        if edit is not None:
            edit(doc)
        body = json.dumps(doc, indent=2).encode()
        return EvilImage(self.manifest(repo, tag, body, media_type), body, tuple(blobs))

    def tags(self, repo: str, tags: list[str], link: str | None = None) -> None:
        headers = {"Content-Type": "application/json", **({"Link": link} if link else {})}
        body = json.dumps({"name": repo, "tags": tags}).encode()
        self.answer("GET", f"/v2/{repo}/tags/list", Answer(200, headers, body))

    def referrers(
        self, repo: str, subject: str, descriptors: Sequence[dict[str, Any]], *, page_size: int = 0
    ) -> None:
        """Serve the referrers API for `subject`: an OCI index of `descriptors`, `page_size` per
        page (0: one page), each page but the last with a `Link` to the next."""
        size = page_size or max(1, len(descriptors))
        pages = [list(descriptors[i : i + size]) for i in range(0, len(descriptors), size)] or [[]]
        path = f"/v2/{repo}/referrers/{subject}"

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            number = int(request.query.get("page", "0"))
            doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": pages[number]}
            headers = {"Content-Type": OCI_INDEX}
            if number + 1 < len(pages):
                headers["Link"] = f'<{path}?page={number + 1}>; rel="next"'
            return web.Response(status=200, headers=headers, body=json.dumps(doc).encode())

        self.answer("GET", path, handler)

    def seen(self, method: str | None = None, part: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if (method is None or s.method == method) and part in s.path]

    # -- lifecycle -------------------------------------------------------------------------------
    async def _astart(self) -> None:
        await self._serve(self._handle, ssl_context=self.ssl_context)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        with self._lock:
            self.requests.append(Seen(request.method, request.path_qs, dict(request.headers)))
            route = self.routes.get((request.method, request.path))
        if request.can_read_body:
            while await request.content.read(ENDLESS_CHUNK):
                pass
        if self.challenge is not None and not self.accept(request.headers.get("Authorization")):
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": self.challenge},
                body=b'{"errors":[{"code":"UNAUTHORIZED","message":"evil"}]}',
            )
        if route is None:
            return web.Response(
                status=404,
                content_type="application/json",
                body=b'{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}',
            )
        if not isinstance(route, Answer):
            return await route(request)
        return await self.respond(request, route)

    async def respond(self, request: web.BaseRequest, answer: Answer) -> web.StreamResponse:
        """Send `answer` (for handlers that decide per request)."""
        if answer.split_chunks and request.method != "HEAD":
            return await self._split_chunks(request, answer)
        if not answer.endless:
            return web.Response(
                status=answer.status,
                headers=answer.headers,
                body=None if request.method == "HEAD" else answer.body,
            )
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while sent < ENDLESS_LIMIT:
                await response.write(answer.body or b"{" * ENDLESS_CHUNK)
                sent += len(answer.body) or ENDLESS_CHUNK
        except (ConnectionError, RuntimeError):
            return response
        finally:
            with self._lock:
                self.endless_sent.append(sent)
        await response.write_eof()
        return response

    async def _split_chunks(self, request: web.BaseRequest, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        writer = request.writer
        writer.chunked = False  # type: ignore[attr-defined]  # the chunks are framed here, by hand
        body, size = answer.body, answer.split_chunks
        try:
            for start in range(0, len(body), size):
                piece = body[start : start + size]
                await writer.write(b"%x\r\n" % len(piece) + piece)
                await writer.drain()
                await asyncio.sleep(0.02)  # the client reads the data before the CRLF arrives
                await writer.write(b"\r\n")
                await writer.drain()
            await writer.write(b"0\r\n\r\n")
        except (ConnectionError, RuntimeError):
            return response
        await response.write_eof()
        return response
