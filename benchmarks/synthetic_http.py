"""The HTTP/1.1 side of the synthetic registry: requests and answers, one connection's protocol,
and the listening server.

A small HTTP/1.1 implementation on an asyncio buffered protocol rather than a web framework, so
that measuring a client's ceiling costs the server as little CPU as possible: upload bodies are
received into one reused buffer and never become Python objects (only counted, and hashed when
asked), and a streamed answer writes each generated piece once. What the requests mean is the
handler's business (:mod:`benchmarks.synthetic_registry`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

SEND_CHUNK = 4 * 1024 * 1024
RECV_BUFFER = 1024 * 1024
MAX_HEADER = 64 * 1024
MAX_SMALL_BODY = 4 * 1024 * 1024  # manifests and other small bodies are read whole
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


def json_response(status: int, doc: object, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode())


def error_response(status: int, code: str, message: str) -> Response:
    return json_response(status, {"errors": [{"code": code, "message": message}]})


RESET = object()  # yielded by a streamed answer: abort the connection here


class Handler(Protocol):
    """What answers the requests (the registry API)."""

    port: int

    def handle(self, req: Request) -> Response: ...

    def is_upload(self, req: Request) -> bool: ...

    def start_upload(self, req: Request) -> Upload | Response: ...

    def finish_upload(self, up: Upload) -> Response: ...


class HttpProtocol(asyncio.BufferedProtocol):
    """One connection: requests in turn (keep-alive), upload bodies discarded as they arrive."""

    def __init__(self, server: Handler) -> None:
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
                    self.close_with(error_response(400, "HEADER_TOO_LARGE", "request header too large"))
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
            self.close_with(error_response(400, "BAD_REQUEST", "bad request line"))
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
            self.close_with(error_response(400, "BODY_TOO_LARGE", "body too large"))
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


async def serve(server: Handler, port: int, stop_after: float) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: HttpProtocol(server), "127.0.0.1", port, backlog=128)
    server.port = int(srv.sockets[0].getsockname()[1])
    print(f"READY {server.port}", flush=True)
    try:
        await asyncio.sleep(stop_after)  # bounded: the server stops by itself
    finally:
        srv.close()
