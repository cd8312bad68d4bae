"""A registry-API-shaped HTTP/1.1 server on loopback: a synthetic source and a discarding sink.

    python -m benchmarks.synthetic_server --seed S --size BYTES --digest sha256:... [--token-ttl SECONDS]

*Source*: the repository ``--source-repo`` (default ``synthetic/blob``) holds one image (any
tag answers) whose single layer is the synthetic blob (seed, size), generated while it is sent,
with its Content-Length: no Range, nothing stored. Its digest is given on the command line (the
harness computes it once and caches it).

*Fleet* (``--fleet REPOSxTAGS``): a generated fleet of tiny images
(:mod:`benchmarks.fleet_content`) under each ``--fleet-prefix``, with ``_catalog`` and tag
listings (``n``/``last`` pagination with ``Link``): the source of a scale benchmark, or, under the
destination's prefix, a destination already holding the same content.

The source layer answers ``Range: bytes=N-`` with ``206`` and ``Content-Range`` (honouring
``If-Range`` against its ``ETag``, the digest); ``--reset-at OFFSET[,OFFSET]`` makes the layer
reads break: a read that reaches the next unused offset is cut there (the connection aborted, as
a reset), once per offset, so a client that resumes meets each reset once.

*Sink*: every other repository accepts monolithic uploads (POST, then one PUT) and discards the
bytes while counting them. A PUT must carry Content-Length and must not be chunked (400
otherwise); with ``--verify`` the sink also hashes what it receives and refuses a wrong digest.
Manifests are kept (small) and listed; blobs are remembered per repository by digest and size only, and a
mount of a known blob answers 201.

With ``--token-ttl`` every request needs a bearer token from ``/token`` (distribution's token
flow); a token presented after it expired is refused with 401 and counted: a client that
refreshes ahead of expiry never sees one after its first challenge.

The server is a small HTTP/1.1 implementation on an asyncio buffered protocol rather than a web
framework, so that measuring a client's ceiling costs the server as little CPU as possible:
upload bodies are received into one reused buffer and never become Python objects, and the
source writes each generated 4 MiB piece once. ``GET /_stats`` answers counters as JSON (requests
by method and by route, such as ``HEAD manifest`` or ``GET tags``). The
first line on stdout is ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from benchmarks.fleet_content import Fleet
from mirror.copy.synthetic_blob import BLOCK, GZIP_HEADER, synthetic_chunks, synthetic_image
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest

SEND_CHUNK = 4 * 1024 * 1024
RECV_BUFFER = 1024 * 1024
MAX_HEADER = 64 * 1024
MAX_SMALL_BODY = 4 * 1024 * 1024  # manifests and other small bodies are read whole

_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/$")
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
LIST_PAGE = 1000  # listing page size when the client asks for none (distribution's default is 100)
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
}


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)  # "HEAD manifest", "GET tags", ...
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
    layer_gets: list[list[int]] = field(default_factory=list)  # [first byte, bytes sent] per read
    resets: int = 0
    put_seconds: float = 0.0  # first to last byte of blob PUT bodies

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "routes": dict(self.routes),
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
            "layer_gets": self.layer_gets[-64:],
            "resets": self.resets,
            "put_seconds": round(self.put_seconds, 3),
        }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Iterator[bytes | object] | None = (
        None  # sent after the headers; Content-Length is set by the handler
    )


@dataclass
class Upload:
    """A blob PUT whose body is being received and discarded."""

    request: Request
    remaining: int
    hasher: Any = None
    received: int = 0
    began: float = field(default_factory=time.monotonic)


def _json(status: int, doc: object, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode())


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"errors": [{"code": code, "message": message}]})


class SyntheticRegistry:
    def __init__(
        self,
        seed: str,
        size: int,
        digest: Digest | None,
        *,
        source_repo: str = "synthetic/blob",
        token_ttl: float | None = None,
        verify: bool = False,
        fleet: Fleet | None = None,
        reset_at: list[int] | None = None,
    ) -> None:
        self.seed = seed
        self.size = size
        self.image = synthetic_image(digest, size, note="synthetic source") if digest else None
        self.fleet = fleet
        self.reset_at = sorted(reset_at or [])  # offsets where a layer read is cut, each once
        self.source_repo = source_repo
        self.token_ttl = token_ttl
        self.verify = verify
        self.stats = Stats()
        self.port = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._blobs: dict[tuple[str, str], int] = {}  # sink: (repository, digest) -> size
        self._manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._tags: dict[str, set[str]] = {}  # sink: repository -> tags pushed
        self._uploads: set[str] = set()

    # -- dispatch ----------------------------------------------------------------------------

    def is_upload(self, req: Request) -> bool:
        return req.method == "PUT" and _UPLOAD.match(req.path) is not None

    def handle(self, req: Request) -> Response:
        if req.path != "/_stats":
            self.stats.requests[req.method] += 1
            self.stats.routes[f"{req.method} {_route(req.path)}"] += 1
        if req.path == "/_stats":
            return _json(200, self.stats.as_dict())
        if req.path == "/token":
            return self._token(req)
        denied = self._auth(req)
        if denied is not None:
            return denied
        if req.path == "/v2/":
            return _json(200, {})
        if req.path == "/v2/_catalog" and req.method == "GET":
            names = set(self._tags) | set(self.fleet.names if self.fleet else ())
            return _page(req, "/v2/_catalog", "repositories", sorted(names))
        m = _TAGS.match(req.path)
        if m and req.method == "GET":
            return self._list_tags(req, m["name"])
        m = _MANIFEST.match(req.path)
        if m:
            return self._manifest(req, m["name"], m["ref"])
        m = _UPLOADS.match(req.path)
        if m and req.method == "POST":
            return self._post_upload(req, m["name"])
        m = _BLOB.match(req.path)
        if m and req.method in ("GET", "HEAD"):
            return self._blob(req, m["name"], m["digest"])
        return _error(405 if m else 404, "UNSUPPORTED", f"{req.method} {req.path}")

    def _auth(self, req: Request) -> Response | None:
        if self.token_ttl is None:
            return None
        header = req.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is not None and expiry > time.monotonic():
            return None
        if expiry is not None:
            self.stats.expired_rejected += 1
        else:
            self.stats.challenges += 1
        m = (
            _MANIFEST.match(req.path)
            or _UPLOAD.match(req.path)
            or _UPLOADS.match(req.path)
            or _BLOB.match(req.path)
        )
        scope = ""
        if m:
            action = "pull" if req.method in ("GET", "HEAD") else "pull,push"
            scope = f',scope="repository:{m["name"]}:{action}"'
        realm = f"http://127.0.0.1:{self.port}/token"
        resp = _error(401, "UNAUTHORIZED", "authentication required")
        resp.headers["WWW-Authenticate"] = f'Bearer realm="{realm}",service="synthetic"{scope}'
        return resp

    def _token(self, req: Request) -> Response:
        ttl = self.token_ttl or 300.0
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + ttl
        self.stats.tokens_issued += 1
        for key, value in req.query.items():
            if key == "scope":
                self.stats.token_scopes[value] += 1
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return _json(200, {"token": token, "expires_in": int(ttl), "issued_at": issued})

    # -- manifests ---------------------------------------------------------------------------

    def _list_tags(self, req: Request, name: str) -> Response:
        tags = set(self._tags.get(name, ()))
        if self.fleet is not None and self.fleet.repository(name) is not None:
            tags.update(self.fleet.tag_names())
        elif not tags:
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry")
        return _page(req, f"/v2/{name}/tags/list", "tags", sorted(tags), name=name)

    def _manifest(self, req: Request, name: str, ref: str) -> Response:
        fleet_repo = self.fleet.repository(name) if self.fleet else None
        if fleet_repo is not None and req.method in ("GET", "HEAD") and self.fleet is not None:
            data = self.fleet.find_manifest(fleet_repo, ref)
            if data is not None:
                return self._bytes(req, data, mt.OCI_MANIFEST, Digest.of(data))
        if self.image is not None and name == self.source_repo:
            if req.method not in ("GET", "HEAD"):
                return _error(405, "UNSUPPORTED", "the synthetic source is read-only")
            if ":" in ref and ref != str(self.image.manifest_digest):
                return _error(404, "MANIFEST_UNKNOWN", "unknown manifest")
            return self._bytes(req, self.image.manifest, mt.OCI_MANIFEST, self.image.manifest_digest)
        key = (name, ref)
        if req.method == "PUT":
            media_type = req.headers.get("content-type", mt.OCI_MANIFEST)
            digest = Digest.of(req.body)
            self._manifests[key] = (req.body, media_type)
            self._manifests[(name, str(digest))] = (req.body, media_type)
            if ":" not in ref:
                self._tags.setdefault(name, set()).add(ref)
            return Response(
                201, {"Docker-Content-Digest": str(digest), "Location": f"/v2/{name}/manifests/{digest}"}
            )
        if req.method == "DELETE":
            found = self._manifests.get(key)
            if found is None:
                return _error(404, "MANIFEST_UNKNOWN", "unknown manifest")
            digest = Digest.of(found[0])
            gone = [k for k, v in self._manifests.items() if k[0] == name and Digest.of(v[0]) == digest]
            for k in gone:
                del self._manifests[k]
            return Response(202)
        found = self._manifests.get(key)
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN", "unknown manifest")
        return self._bytes(req, found[0], found[1], Digest.of(found[0]))

    def _bytes(self, req: Request, data: bytes, media_type: str, digest: Digest) -> Response:
        headers = {"Docker-Content-Digest": str(digest), "Content-Type": media_type}
        if req.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(200, headers)
        self.stats.bytes_served += len(data)
        return Response(200, headers, data)

    # -- blobs -------------------------------------------------------------------------------

    def _blob(self, req: Request, name: str, digest: str) -> Response:
        fleet_repo = self.fleet.repository(name) if self.fleet else None
        if fleet_repo is not None and self.fleet is not None:
            data = self.fleet.find_blob(fleet_repo, digest)
            if data is not None:
                return self._bytes(req, data, "application/octet-stream", Digest.parse(digest))
        if self.image is not None and name == self.source_repo:
            if digest == str(self.image.config_desc.digest):
                return self._bytes(
                    req, self.image.config, "application/octet-stream", self.image.config_desc.digest
                )
            if digest != str(self.image.layer.digest):
                return _error(404, "BLOB_UNKNOWN", "unknown blob")
            headers = {
                "Content-Length": str(self.size),
                "Content-Type": "application/octet-stream",
                "Docker-Content-Digest": digest,
                "ETag": f'"{digest}"',
                "Accept-Ranges": "bytes",
            }
            if req.method == "HEAD":
                return Response(200, headers)
            start = _range_start(req, headers["ETag"], self.size)
            if start:
                headers["Content-Length"] = str(self.size - start)
                headers["Content-Range"] = f"bytes {start}-{self.size - 1}/{self.size}"
                return Response(206, headers, stream=self._layer(start))
            return Response(200, headers, stream=self._layer())
        size = self._blobs.get((name, digest))
        if size is None or req.method != "HEAD":
            return _error(404, "BLOB_UNKNOWN", "unknown blob (the sink keeps no bytes)")
        return Response(200, {"Content-Length": str(size), "Docker-Content-Digest": digest})

    def _layer(self, start: int = 0) -> Iterator[bytes | object]:
        record = [start, 0]
        self.stats.layer_gets.append(record)
        chunks = synthetic_chunks(self.seed, self.size, SEND_CHUNK) if not start else _layer_from(self, start)
        pos = start
        for chunk in chunks:
            cut = next((r for r in self.reset_at if pos <= r < pos + len(chunk)), None)
            if cut is not None:
                self.reset_at.remove(cut)
                self.stats.resets += 1
                part = chunk[: cut - pos]
                self.stats.bytes_served += len(part)
                record[1] += len(part)
                yield part
                yield RESET
                return
            pos += len(chunk)
            self.stats.bytes_served += len(chunk)
            record[1] += len(chunk)
            yield chunk

    def _post_upload(self, req: Request, name: str) -> Response:
        mount, source = req.query.get("mount"), req.query.get("from", "")
        known = self._blobs.get((source, mount or ""))
        if mount and known is None and self.fleet is not None:
            fleet_repo = self.fleet.repository(source)
            data = self.fleet.find_blob(fleet_repo, mount) if fleet_repo is not None else None
            known = None if data is None else len(data)
        if mount and known is not None:
            self._blobs[(name, mount)] = known
            return Response(201, {"Docker-Content-Digest": mount, "Location": f"/v2/{name}/blobs/{mount}"})
        upload = uuid.uuid4().hex
        self._uploads.add(upload)
        return Response(
            202,
            {
                "Location": f"/v2/{name}/blobs/uploads/{upload}?_state={secrets.token_urlsafe(8)}",
                "Docker-Upload-UUID": upload,
                "Range": "0-0",
            },
        )

    def start_upload(self, req: Request) -> Upload | Response:
        """Checks before a blob PUT body is read: a Response refuses it (the connection then closes)."""
        denied = self._auth(req)
        if denied is not None:
            return denied
        m = _UPLOAD.match(req.path)
        assert m is not None
        if m["id"] not in self._uploads:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", "unknown upload")
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            self.stats.chunked_rejected += 1
            return _error(400, "BLOB_UPLOAD_INVALID", "chunked transfer encoding is not accepted")
        length = req.headers.get("content-length", "")
        if not length.isdigit():
            return _error(411, "SIZE_INVALID", "Content-Length required")
        return Upload(req, int(length), hashlib.sha256() if self.verify else None)

    def finish_upload(self, up: Upload) -> Response:
        req = up.request
        m = _UPLOAD.match(req.path)
        assert m is not None
        self.stats.requests[req.method] += 1
        self.stats.routes["PUT blob"] += 1
        self.stats.put_seconds += time.monotonic() - up.began
        self.stats.bytes_received += up.received
        self._uploads.discard(m["id"])
        digest = req.query.get("digest", "")
        if up.hasher is not None and f"sha256:{up.hasher.hexdigest()}" != digest:
            self.stats.digest_rejected += 1
            return _error(400, "DIGEST_INVALID", "digest mismatch")
        self._blobs[(m["name"], digest)] = up.received
        self.stats.blobs_received += 1
        self.stats.received_digests.append(digest)
        return Response(201, {"Docker-Content-Digest": digest, "Location": f"/v2/{m['name']}/blobs/{digest}"})


def _route(path: str) -> str:
    """What a request path addresses, for the per-route counters."""
    if path == "/v2/":
        return "ping"
    if path == "/v2/_catalog":
        return "catalog"
    if path == "/token":
        return "token"
    for pattern, name in ((_TAGS, "tags"), (_MANIFEST, "manifest"), (_UPLOADS, "upload")):
        if pattern.match(path):
            return name
    if _UPLOAD.match(path):
        return "upload"
    return "blob" if _BLOB.match(path) else "other"


def _page(req: Request, path: str, key: str, values: list[str], **extra: str) -> Response:
    """One page of a listing: ``n`` entries after ``last``, with a ``Link`` to the next page."""
    n = req.query.get("n", "")
    size = int(n) if n.isdigit() and int(n) > 0 else LIST_PAGE
    last = req.query.get("last")
    start = 0
    if last is not None:
        import bisect

        start = bisect.bisect_right(values, last)
    page = values[start : start + size]
    headers: dict[str, str] = {}
    if start + size < len(values):
        headers["Link"] = f'<{path}?n={size}&last={page[-1]}>; rel="next"'
    return _json(200, {**extra, key: page}, headers)


RESET = object()  # yielded by a streamed answer: abort the connection here


def _layer_from(server: SyntheticRegistry, start: int) -> Iterator[bytes]:
    """The synthetic layer from byte ``start`` on: its 1 MiB blocks regenerated from their index."""
    tail = random.Random(server.seed).randbytes(BLOCK)[8:]
    header = GZIP_HEADER[: server.size]
    pos = start
    if pos < len(header):
        yield header[pos:]
        pos = len(header)
    while pos < server.size:
        block, skip = divmod(pos - len(header), BLOCK)
        count = min(SEND_CHUNK // BLOCK, -(-(server.size - pos + skip) // BLOCK))
        data = b"".join(i.to_bytes(8, "big") + tail for i in range(block, block + count))
        data = data[skip : skip + server.size - pos]
        pos += len(data)
        yield data


def _range_start(req: Request, etag: str, size: int) -> int:
    """The first byte a ``Range: bytes=N-`` request asks for (0: the whole blob, as when its
    ``If-Range`` names another ETag or the range is not one this server answers)."""
    value = req.headers.get("range", "")
    m = re.fullmatch(r"bytes=(\d+)-", value.strip())
    if not m or int(m[1]) >= size:
        return 0
    if_range = req.headers.get("if-range")
    if if_range is not None and if_range != etag:
        return 0
    return int(m[1])


class HttpProtocol(asyncio.BufferedProtocol):
    """One connection: requests in turn (keep-alive), upload bodies discarded as they arrive."""

    def __init__(self, server: SyntheticRegistry) -> None:
        self.server = server
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.head = bytearray()
        self.request: Request | None = None  # waiting for a small body
        self.need = 0
        self.upload: Upload | None = None
        self.transport: asyncio.Transport | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.sending: asyncio.Task[None] | None = None
        self.backlog: list[bytes] = []  # bytes that arrived while a streamed answer was being sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=2 * SEND_CHUNK)

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if self.sending is not None:
            self.sending.cancel()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.feed(self.view[:nbytes])

    def feed(self, data: memoryview) -> None:
        while len(data):
            if self.sending is not None:
                self.backlog.append(bytes(data))  # requests are not pipelined by clients; keep order anyway
                return
            if self.upload is not None:
                up = self.upload
                take = min(up.remaining, len(data))
                if up.hasher is not None:
                    up.hasher.update(data[:take])
                up.received += take
                up.remaining -= take
                data = data[take:]
                if up.remaining == 0:
                    self.upload = None
                    self.respond(self.server.finish_upload(up))
                continue
            if self.request is not None:
                take = min(self.need, len(data))
                self.head += data[:take]
                self.need -= take
                data = data[take:]
                if self.need == 0:
                    req, self.request = self.request, None
                    req.body = bytes(self.head)
                    self.head.clear()
                    self.respond(self.server.handle(req), head_only=req.method == "HEAD")
                continue
            self.head += data
            data = data[len(data) :]
            if self.head[:1] == b"\x16":  # a TLS ClientHello (clients try https first on loopback)
                assert self.transport is not None
                self.transport.close()
                return
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HEADER:
                    self.close_with(_error(400, "HEADER_TOO_LARGE", "request header too large"))
                return
            raw, rest = bytes(self.head[:end]), bytes(self.head[end + 4 :])
            self.head.clear()
            self.start(raw)
            data = memoryview(rest)

    def start(self, raw: bytes) -> None:
        lines = raw.decode("latin-1").split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            self.close_with(_error(400, "BAD_REQUEST", "bad request line"))
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        req = Request(method, url.path, dict(parse_qsl(url.query)), headers)
        if self.server.is_upload(req):
            started = self.server.start_upload(req)
            if isinstance(started, Response):
                self.close_with(started)
                return
            self.upload = started
            if started.remaining == 0:
                self.upload = None
                self.respond(self.server.finish_upload(started))
            return
        length = headers.get("content-length", "0")
        need = int(length) if length.isdigit() else 0
        if need > MAX_SMALL_BODY:
            self.close_with(_error(400, "BODY_TOO_LARGE", "body too large"))
            return
        if need:
            self.request, self.need = req, need
            return
        self.respond(self.server.handle(req), head_only=method == "HEAD")

    def respond(self, resp: Response, *, close: bool = False, head_only: bool = False) -> None:
        assert self.transport is not None
        headers = dict(resp.headers)
        if "Content-Length" not in headers:
            if resp.stream is not None:
                raise RuntimeError("a streamed response needs a Content-Length")
            headers["Content-Length"] = str(len(resp.body))
        if close:
            headers["Connection"] = "close"
        head = f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        # A HEAD answer carries the headers of the GET but no body.
        body = resp.body if resp.stream is None and not head_only else b""
        self.transport.write(head.encode("latin-1") + body)
        if resp.stream is not None and not head_only:
            self.sending = asyncio.get_running_loop().create_task(self._send(resp.stream))
        elif close:
            self.transport.close()

    async def _send(self, stream: Iterator[bytes | object]) -> None:
        assert self.transport is not None
        try:
            for chunk in stream:
                if self.transport.is_closing():
                    return
                if chunk is RESET:
                    self.transport.abort()
                    return
                assert isinstance(chunk, bytes)
                self.transport.write(chunk)
                if not self.writable.is_set():
                    await self.writable.wait()
        finally:
            self.sending = None
        backlog, self.backlog = self.backlog, []
        for data in backlog:
            self.feed(memoryview(data))

    def close_with(self, resp: Response) -> None:
        self.upload = None
        self.request = None
        self.respond(resp, close=True)


async def serve(server: SyntheticRegistry, port: int, stop_after: float) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: HttpProtocol(server), "127.0.0.1", port, backlog=128)
    server.port = int(srv.sockets[0].getsockname()[1])
    print(f"READY {server.port}", flush=True)
    try:
        await asyncio.sleep(stop_after)  # bounded: the server stops by itself
    finally:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.synthetic_server")
    p.add_argument("--seed", default="synthetic")
    p.add_argument("--size", type=int, default=0, help="the synthetic source blob's size (0: none)")
    p.add_argument("--digest", default="", help="its digest (needed with --size)")
    p.add_argument("--fleet", default="", metavar="REPOSxTAGS", help="serve a generated fleet of tiny images")
    p.add_argument(
        "--fleet-prefix", action="append", default=[], help="repository prefix of the fleet (repeatable)"
    )
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--source-repo", default="synthetic/blob")
    p.add_argument("--token-ttl", type=float, default=None)
    p.add_argument(
        "--reset-at",
        default="",
        metavar="OFFSET[,OFFSET]",
        help="cut layer reads at these byte offsets, once each",
    )
    p.add_argument("--verify", action="store_true", help="hash received blobs and refuse a wrong digest")
    p.add_argument("--stop-after", type=float, default=6 * 3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    if args.size and not args.digest:
        p.error("--size needs --digest")
    fleet = None
    if args.fleet:
        repos, _, tags = args.fleet.partition("x")
        fleet = Fleet(int(repos), int(tags), prefixes=tuple(args.fleet_prefix or ["fleet"]))
    server = SyntheticRegistry(
        args.seed,
        args.size,
        Digest.parse(args.digest) if args.size else None,
        source_repo=args.source_repo,
        token_ttl=args.token_ttl,
        verify=args.verify,
        fleet=fleet,
        reset_at=[int(x) for x in args.reset_at.split(",") if x],
    )
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
