"""A recording, fault-injecting reverse proxy in front of a registry (aiohttp, own thread + loop).

    proxy = RegistryProxy(registry).start()     # or proxy_factory.start(registry, reject_expired=True)
    ... point the client at proxy.host / proxy.url ...
    proxy.records                                # what the client sent, request by request
    proxy.add_fault(ErrorBurst(503, times=2, path=r"/blobs/"))

- Records each request as received: method, path, raw query, headers (names as sent, in order),
  body bytes read, status returned, the fault that acted, whether it was rejected as expired.
- Streams bodies both ways in 64 KiB pieces (no whole-blob buffering). A request with
  Content-Length is forwarded with that Content-Length; a chunked one stays chunked.
- Rewrites absolute `Location`/`Link` URLs that point at the upstream so the client keeps
  talking to the proxy. `WWW-Authenticate` passes through unchanged (the realm is the token
  server, which the client reaches directly).
- `reject_expired=True`: a request whose Bearer JWT `exp` is in the past (no leeway) is answered
  401 with the `WWW-Authenticate` the upstream gives the same request without credentials; its
  body is drained first. Counted in `expired_rejections`.
- Faults (see tests.support.faults) are tried in order; each may answer, reset, or wrap the body.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.support import jwt
from tests.support.faults import ABORT, AbortConnection, Fault, FaultContext
from tests.support.loopserver import LoopServer

CHUNK = 64 * 1024
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
}
BODY_METHODS = {"POST", "PUT", "PATCH"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str  # raw query string, as sent
    headers: list[tuple[str, str]]  # as received, in order
    started: float
    body_bytes: int = 0
    status: int | None = None  # status sent back to the client (None: connection dropped)
    upstream_status: int | None = None
    fault: str | None = None
    rejected_expired: bool = False
    token_exp: int | None = None
    continue_sent: bool = False  # answered `Expect: 100-continue` with 100 Continue
    client_disconnected: bool = False  # the client went away while the response streamed
    finished: float | None = field(default=None, repr=False)
    peer: tuple[str, int] | None = field(default=None, repr=False)  # the client's end: one per connection

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        return int(value) if value is not None else None

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()

    @property
    def auth_scheme(self) -> str | None:
        """ "basic" / "bearer" / other lower-cased scheme of Authorization, None when absent."""
        value = self.header("Authorization")
        return value.split(" ", 1)[0].lower() if value else None

    @property
    def query_params(self) -> list[tuple[str, str]]:
        import urllib.parse

        return urllib.parse.parse_qsl(self.query, keep_blank_values=True)


def _bearer_exp(authorization: str | None) -> int | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    try:
        _, claims = jwt.decode_unverified(authorization.split(" ", 1)[1].strip())
    except ValueError:
        return None
    exp = claims.get("exp")
    return int(exp) if isinstance(exp, int | float) else None


def _reset(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class RegistryProxy(LoopServer):
    thread_name = "registry-proxy"

    def __init__(self, upstream: Any, *, reject_expired: bool = False, clock: Any = time.time) -> None:
        """`upstream`: a RegistryHandle (or anything with `.url`) or a base URL string."""
        super().__init__()
        self.upstream = upstream
        self.upstream_url = (upstream if isinstance(upstream, str) else upstream.url).rstrip("/")
        self.reject_expired = reject_expired
        self.clock = clock
        self.expired_rejections = 0
        self._faults: list[Fault] = []
        self._records: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None

    # handle-like attributes, so seeding helpers and tests can use a proxy like a registry -----
    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth(self) -> str:
        return str(getattr(self.upstream, "auth", "none"))

    @property
    def creds(self) -> tuple[str, str] | None:
        return getattr(self.upstream, "creds", None)

    @property
    def seed_creds(self) -> tuple[str, str] | None:
        return getattr(self.upstream, "seed_creds", None)

    @property
    def token_server(self) -> Any:
        return getattr(self.upstream, "token_server", None)

    # records & faults -----------------------------------------------------------------------------
    @property
    def records(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def select(self, method: str | None = None, path_contains: str | None = None) -> list[RecordedRequest]:
        """Records filtered by method and by a substring of the path."""
        return [
            r
            for r in self.records
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
        ]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.expired_rejections = 0

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults = [*self._faults, fault]
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    # lifecycle ----------------------------------------------------------------------------------
    async def _astart(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
        )
        await self._serve(self._handle, shutdown_timeout=2.0, max_line_size=65536, max_field_size=65536)

    async def _astop(self) -> None:
        await super()._astop()
        if self._session is not None:
            await self._session.close()

    # request handling -----------------------------------------------------------------------------
    def _rewrite(self, value: str) -> str:
        return value.replace(self.upstream_url, self.url)

    async def _upstream_json(self, path: str) -> dict[str, Any] | web.Response:
        """GET ``path`` from the registry behind (an emulator reshaping a listing): its JSON
        document, or its answer as it is when that is not a 200."""
        assert self._session is not None
        async with self._session.get(self.upstream_url + path) as upstream:
            body = await upstream.read()
            if upstream.status != 200:
                return web.Response(status=upstream.status, body=body, content_type="application/json")
        doc: dict[str, Any] = json.loads(body)
        return doc

    @staticmethod
    def _expects_continue(request: web.BaseRequest) -> bool:
        return request.headers.get("Expect", "").lower() == "100-continue"

    async def _send_continue(self, request: web.BaseRequest, record: RecordedRequest) -> None:
        if self._expects_continue(request) and not record.continue_sent:
            record.continue_sent = True
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _drain(
        self, request: web.BaseRequest, record: RecordedRequest, response: web.StreamResponse
    ) -> None:
        """Read and drop the request body before answering early. A client waiting for
        100 Continue is not asked for its body; the connection closes after the answer instead."""
        if self._expects_continue(request) and not record.continue_sent:
            response.force_close()
            return
        while chunk := await request.content.read(CHUNK):
            record.body_bytes += len(chunk)

    async def _request_body(self, request: web.BaseRequest, record: RecordedRequest) -> AsyncIterator[bytes]:
        await self._send_continue(request, record)
        while chunk := await request.content.read(CHUNK):
            record.body_bytes += len(chunk)
            yield chunk

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        record = RecordedRequest(
            request.method,
            request.path,
            request.query_string,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            time.time(),
        )
        peername = request.transport.get_extra_info("peername") if request.transport else None
        record.peer = (str(peername[0]), int(peername[1])) if peername else None
        with self._lock:
            self._records.append(record)
        try:
            response = await self._dispatch(request, record)
        finally:
            record.finished = time.time()
        return response

    async def _dispatch(self, request: web.BaseRequest, record: RecordedRequest) -> web.StreamResponse:
        ctx = FaultContext(request, record)
        active: list[Fault] = []
        for fault in self.faults:
            if not fault.claim(record):
                continue
            outcome = await fault.on_request(ctx)
            if outcome is ABORT:
                record.fault = fault.name
                _reset(request)
                return web.StreamResponse()
            if outcome is not None:
                record.fault = fault.name
                await self._drain(request, record, outcome)
                record.status = outcome.status
                return outcome  # type: ignore[no-any-return]
            active.append(fault)

        record.token_exp = _bearer_exp(request.headers.get("Authorization"))
        if self.reject_expired and record.token_exp is not None and self.clock() > record.token_exp:
            return await self._reject_expired(request, record)
        answer = await self._emulate(request)
        if answer is not None:  # a subclass (an emulator) answers this request itself
            await self._drain(request, record, answer)
            record.status = answer.status
            return answer
        return await self._forward(request, record, ctx, active)

    async def _emulate(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """An answer of the front's own, or None to forward upstream (registry emulators)."""
        return None

    async def _reject_expired(self, request: web.BaseRequest, record: RecordedRequest) -> web.StreamResponse:
        record.rejected_expired = True
        with self._lock:
            self.expired_rejections += 1
        assert self._session is not None
        headers = {"Content-Length": "0"} if request.method in BODY_METHODS else {}
        async with self._session.request(
            request.method,
            self.upstream_url + request.raw_path,
            headers=headers,
            data=b"" if headers else None,
            allow_redirects=False,
        ) as upstream:
            challenge = upstream.headers.get("WWW-Authenticate")
        out_headers = {"WWW-Authenticate": challenge} if challenge else {}
        out_headers["Docker-Distribution-Api-Version"] = "registry/2.0"
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"token expired (test proxy)"}]}'
        response = web.Response(
            status=401,
            body=None if request.method == "HEAD" else body,
            headers=out_headers,
            content_type="application/json",
        )
        await self._drain(request, record, response)
        record.status = 401
        return response

    async def _forward(
        self, request: web.BaseRequest, record: RecordedRequest, ctx: FaultContext, active: list[Fault]
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        for fault in active:
            headers = fault.upstream_headers(ctx, headers)
        skip = {
            h for h in ("Accept", "Accept-Encoding", "User-Agent", "Content-Type") if h not in request.headers
        }
        data: Any = None
        length = request.headers.get("Content-Length")
        if length is not None:
            headers.append(("Content-Length", length))
            data = self._request_body(request, record) if int(length) > 0 else b""
        elif record.chunked:
            data = self._request_body(request, record)
        try:
            upstream_cm = self._session.request(
                request.method,
                self.upstream_url + request.raw_path,
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=skip,
            )
            upstream = await upstream_cm.__aenter__()
        except aiohttp.ClientError as exc:
            record.status = 502
            return web.Response(status=502, text=f"test proxy: upstream failed: {exc}")
        try:
            record.upstream_status = ctx.upstream_status = upstream.status
            ctx.upstream_headers = upstream.headers
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() in HOP_BY_HOP:
                    continue
                response.headers.add(k, self._rewrite(v) if k.lower() in ("location", "link") else v)
            if upstream.headers.get("Content-Length") is not None:
                response.content_length = int(upstream.headers["Content-Length"])
            for fault in active:
                fault.reply_headers(ctx, response.headers)
            body: AsyncIterator[bytes] = upstream.content.iter_chunked(CHUNK)
            for fault in active:
                wrapped = fault.on_body(ctx, body)
                if wrapped is not body:
                    record.fault = fault.name
                body = wrapped
            # Recorded before the headers go out: a client may read the whole answer and inspect
            # the records before this coroutine runs again.
            record.status = upstream.status
            await response.prepare(request)
            try:
                async for chunk in body:
                    await response.write(chunk)
                await response.write_eof()
            except AbortConnection:
                _reset(request)
            except ConnectionError:
                record.client_disconnected = True
            return response
        finally:
            await upstream_cm.__aexit__(None, None, None)
