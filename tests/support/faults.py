"""Fault injection for the recording proxy.

A fault decides per request whether it fires (`method`, `path` regex, `skip` the first matches,
fire at most `times`; `times=None` means forever), then acts at one of two hooks:

- `on_request(ctx)`: before the request goes upstream. Return a response to answer with it
  instead (the client's request body is drained first), `ABORT` to drop the connection with a
  TCP reset, or None to forward as usual.
- `on_body(ctx, chunks)`: wraps the upstream response body (an async iterator of bytes). Raise
  `AbortConnection` from it to cut the connection mid-body.
- `upstream_headers(ctx, headers)`: the request headers sent upstream (a list of pairs); return
  a changed list to rewrite them.

Faults run on the proxy's event loop thread; tests read `fired` from their own thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.proxy import RecordedRequest

ABORT: Any = object()  # returned by on_request: reset the client connection


class AbortConnection(Exception):
    """Raised inside a body wrapper: the proxy resets the client connection at that point."""


@dataclass
class FaultContext:
    request: web.BaseRequest
    record: RecordedRequest
    upstream_status: int | None = None
    upstream_headers: Any = None


class Fault:
    name = "fault"

    def __init__(
        self,
        *,
        times: int | None = 1,
        method: str | Iterable[str] | None = None,
        path: str | None = None,
        skip: int = 0,
    ) -> None:
        self.times = times
        self.methods = (
            {method.upper()}
            if isinstance(method, str)
            else ({m.upper() for m in method} if method is not None else None)
        )
        self.path = re.compile(path) if path is not None else None
        self.skip = skip
        self.matched = 0
        self.fired = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fired={self.fired} times={self.times}>"

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def claim(self, record: RecordedRequest) -> bool:
        """Whether this fault fires for `record`; counts it when it does."""
        if self.exhausted:
            return False
        if self.methods is not None and record.method not in self.methods:
            return False
        if self.path is not None and not self.path.search(record.path):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        self.fired += 1
        return True

    async def on_request(self, ctx: FaultContext) -> Any:
        return None

    def on_body(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return chunks

    def upstream_headers(self, ctx: FaultContext, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return headers

    def reply_headers(self, ctx: FaultContext, headers: Any) -> None:
        """May add to or change the headers of the upstream's answer (a CIMultiDict)."""


def _error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


class ErrorBurst(Fault):
    """Answer the next `times` matching requests with `status` (default 503) without forwarding."""

    name = "error-burst"

    def __init__(self, status: int = 503, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.status = status

    async def on_request(self, ctx: FaultContext) -> Any:
        return _error_response(self.status, "UNAVAILABLE", "injected by test proxy")


class TooManyRequests(Fault):
    """Answer 429 with `Retry-After: <retry_after>` (seconds, or an HTTP date string)."""

    name = "too-many-requests"

    def __init__(self, retry_after: float | str = 1, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.retry_after = retry_after

    async def on_request(self, ctx: FaultContext) -> Any:
        value = self.retry_after
        text = (
            value
            if isinstance(value, str)
            else (str(int(value)) if float(value).is_integer() else str(value))
        )
        return _error_response(429, "TOOMANYREQUESTS", "injected by test proxy", {"Retry-After": text})


class Reset(Fault):
    """Reset the client connection before anything is forwarded."""

    name = "reset"

    async def on_request(self, ctx: FaultContext) -> Any:
        return ABORT


class Delay(Fault):
    """Hold the request `seconds` before forwarding it (bounded; the proxy stays responsive)."""

    name = "delay"

    def __init__(self, seconds: float, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.seconds = seconds

    async def on_request(self, ctx: FaultContext) -> Any:
        await asyncio.sleep(self.seconds)
        return None


class Truncate(Fault):
    """Send only the first `after_bytes` of a 2xx response body, then reset the connection
    (the advertised Content-Length stays, so the client sees a short read)."""

    name = "truncate"

    def __init__(self, after_bytes: int = 0, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.after_bytes = after_bytes

    async def _wrap(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in chunks:
            if sent + len(chunk) >= self.after_bytes:
                if self.after_bytes > sent:
                    yield chunk[: self.after_bytes - sent]
                raise AbortConnection
            sent += len(chunk)
            yield chunk
        raise AbortConnection

    def on_body(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return (
            self._wrap(ctx, chunks)
            if ctx.upstream_status is not None and ctx.upstream_status < 300
            else chunks
        )


class FlipBytes(Fault):
    """XOR 0xFF into `count` bytes of a 2xx response body starting at `offset` (same length)."""

    name = "flip-bytes"

    def __init__(self, offset: int = 0, count: int = 1, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.offset = offset
        self.count = count

    async def _wrap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        start, end, pos = self.offset, self.offset + self.count, 0
        async for chunk in chunks:
            lo, hi = max(start, pos), min(end, pos + len(chunk))
            if lo < hi:
                buf = bytearray(chunk)
                for i in range(lo - pos, hi - pos):
                    buf[i] ^= 0xFF
                chunk = bytes(buf)
            pos += len(chunk)
            yield chunk

    def on_body(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return self._wrap(chunks) if ctx.upstream_status is not None and ctx.upstream_status < 300 else chunks


class IgnoreRange(Fault):
    """Drop `Range` and `If-Range` from requests that carry them, as a server without range
    support would ignore them: the upstream answers the whole body with 200."""

    name = "ignore-range"

    def claim(self, record: RecordedRequest) -> bool:
        return record.header("Range") is not None and super().claim(record)

    def upstream_headers(self, ctx: FaultContext, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, v) for k, v in headers if k.lower() not in ("range", "if-range")]


class RequestReset(Fault):
    """Read the first `after_bytes` of the client's request body, then reset the connection
    (client->server direction: the upload is cut mid-body, nothing reaches the upstream).
    Requests with a Content-Length of at most `after_bytes` are let through."""

    name = "request-reset"

    def __init__(self, after_bytes: int = 0, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.after_bytes = after_bytes

    def claim(self, record: RecordedRequest) -> bool:
        """Only requests whose Content-Length is larger than `after_bytes` (a cut mid-body)."""
        length = record.content_length
        if length is not None and length <= self.after_bytes:
            return False
        return super().claim(record)

    async def on_request(self, ctx: FaultContext) -> Any:
        remaining = self.after_bytes
        while remaining > 0:
            chunk = await ctx.request.content.read(min(remaining, 64 * 1024))
            if not chunk:
                break
            ctx.record.body_bytes += len(chunk)
            remaining -= len(chunk)
        return ABORT


class SlowBody(Fault):
    """Throttle a 2xx response body to about `bytes_per_second`, sent in `piece`-byte writes
    (a slow link: every byte arrives, late)."""

    name = "slow-body"

    def __init__(
        self, bytes_per_second: int, *, piece: int = 16 * 1024, times: int | None = 1, **match: Any
    ) -> None:
        super().__init__(times=times, **match)
        self.bytes_per_second = max(1, bytes_per_second)
        self.piece = max(1, piece)

    async def _wrap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            for start in range(0, len(chunk), self.piece):
                part = chunk[start : start + self.piece]
                await asyncio.sleep(len(part) / self.bytes_per_second)
                yield part

    def on_body(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return self._wrap(chunks) if ctx.upstream_status is not None and ctx.upstream_status < 300 else chunks


class ErrorReply(Fault):
    """Answer with `status` and an OCI error body carrying `code` and `message` as given (a
    registry whose error text is hostile, or quotes what it should not)."""

    name = "error-reply"

    def __init__(self, status: int, code: str, message: str, *, times: int | None = 1, **match: Any) -> None:
        super().__init__(times=times, **match)
        self.status, self.code, self.message = status, code, message

    async def on_request(self, ctx: FaultContext) -> Any:
        return _error_response(self.status, self.code, self.message)


class Hold(Fault):
    """Send the first `after_bytes` of a 2xx response body, then hold the rest until the test
    calls `release()` (or `deadline` seconds pass): a transfer that stays in flight, part done,
    for as long as the test looks at it. `reached` is set once the held point is reached."""

    name = "hold"

    def __init__(
        self, after_bytes: int, *, deadline: float = 120.0, times: int | None = 1, **match: Any
    ) -> None:
        super().__init__(times=times, **match)
        self.after_bytes = after_bytes
        self.deadline = deadline
        self.reached = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def _wrap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        sent = 0
        held = False
        async for chunk in chunks:
            if not held and sent + len(chunk) > self.after_bytes:
                head = self.after_bytes - sent
                if head > 0:
                    yield chunk[:head]
                    chunk, sent = chunk[head:], sent + head
                held = True
                self.reached.set()
                waited = 0.0
                while not self._released.is_set() and waited < self.deadline:
                    await asyncio.sleep(0.05)
                    waited += 0.05
            sent += len(chunk)
            yield chunk

    def on_body(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return self._wrap(chunks) if ctx.upstream_status is not None and ctx.upstream_status < 300 else chunks


class SubjectHeader(Fault):
    """Answers manifest PUTs as a registry with the OCI referrers API does: with the header
    `OCI-Subject: <subject digest>` (OCI distribution spec 1.1, "Pushing Manifests with Subject":
    a registry that supports the referrers API MUST send it for a manifest with a `subject`).
    The upstream (distribution 2.8) stores the manifest; the header is what the client sees."""

    name = "subject-header"

    def __init__(self, subject: str, *, times: int | None = None, **match: Any) -> None:
        match.setdefault("method", "PUT")
        match.setdefault("path", r"/manifests/")
        super().__init__(times=times, **match)
        self.subject = subject

    def reply_headers(self, ctx: FaultContext, headers: Any) -> None:
        if ctx.upstream_status in (200, 201):
            headers["OCI-Subject"] = self.subject


class LostWrite(Fault):
    """Answers a PUT 201 without forwarding it: the write another writer overwrote at once, as a
    registry without conditional writes lets happen (distribution spec 1.1, "Referrers Tag
    Schema": simultaneous updates of the tag may lose data)."""

    name = "lost-write"

    async def on_request(self, ctx: FaultContext) -> Any:
        return web.Response(status=201)  # the proxy reads (drains) the body it did not forward
