"""google-auth's HTTP calls made with aiohttp on the event loop.

google-auth refreshes credentials synchronously, through a ``Request`` callable it is handed
(``request(url, method, body, headers, timeout) -> response``). mirror runs that blocking refresh
in a worker thread and hands it an :class:`AiohttpRequest`: each call schedules the HTTP exchange
as a coroutine on the event loop the provider lives on and waits for its answer in the worker.
google-auth keeps doing what it is good at (key parsing, JWT assertions, the metadata server,
impersonation, external accounts, universe domains) while every byte on the wire goes through
aiohttp: the same proxy settings (``trust_env``), bounded response bodies, and one HTTP stack to
test (aioresponses intercepts these calls).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Mapping
from typing import Any

import aiohttp
from google.auth import exceptions as gexc
from google.auth import transport
from multidict import CIMultiDict
from yarl import URL

MAX_BODY = 64 * 1024


class Response(transport.Response):
    """What google-auth reads from an answer: ``status``, case-insensitive ``headers``, ``data``."""

    def __init__(self, status: int, headers: CIMultiDict[str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> CIMultiDict[str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


def transport_error(message: str) -> Exception:
    """google-auth's TransportError, which its retry logic understands."""
    return gexc.TransportError(message)  # type: ignore[no-untyped-call]


def _seconds(timeout: Any, default: float) -> float:
    if isinstance(timeout, int | float) and timeout > 0:
        return float(timeout)
    if isinstance(timeout, tuple) and timeout:
        return float(sum(t for t in timeout if isinstance(t, int | float)))
    return default


def _where(url: str) -> str:
    """The URL without its query (kept out of messages)."""
    try:
        return str(URL(url).with_query(None).with_fragment(None))
    except ValueError:
        return "<unparsable URL>"


class AiohttpRequest(transport.Request):
    """A google-auth ``Request`` that runs on ``loop`` and is called from another thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float = 30.0,
        max_body: int = MAX_BODY,
        trust_env: bool = True,
    ) -> None:
        self.loop = loop
        self.timeout = timeout
        self.max_body = max_body
        self.trust_env = trust_env
        self._loop_thread = threading.get_ident() if _running_loop() is loop else None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Response:
        if _running_loop() is self.loop or threading.get_ident() == self._loop_thread:
            raise RuntimeError("AiohttpRequest is called from a worker thread, never from its loop")
        seconds = _seconds(timeout, self.timeout)
        try:
            future = asyncio.run_coroutine_threadsafe(
                self.fetch(url, method, body, headers, seconds), self.loop
            )
        except RuntimeError as exc:  # the loop is closed
            raise transport_error(f"{method} {_where(url)}: {exc}") from None
        try:
            return future.result(seconds + 5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise transport_error(f"{method} {_where(url)}: no answer within {seconds:g} s") from None
        except concurrent.futures.CancelledError:
            raise transport_error(f"{method} {_where(url)}: cancelled") from None

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        seconds: float | None = None,
    ) -> Response:
        """The HTTP exchange itself, on the loop; failures raise google-auth's TransportError."""
        limit = aiohttp.ClientTimeout(total=seconds or self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=limit, trust_env=self.trust_env) as session,
                session.request(
                    method, url, data=body, headers=dict(headers or {}), allow_redirects=False
                ) as resp,
            ):
                data = b""
                while len(data) <= self.max_body:  # read() may return a part: read to the end
                    chunk = await resp.content.read(self.max_body + 1 - len(data))
                    if not chunk:
                        break
                    data += chunk
                if len(data) > self.max_body:
                    raise transport_error(f"{method} {_where(url)}: answer larger than {self.max_body} bytes")
                return Response(resp.status, CIMultiDict(resp.headers), data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise transport_error(f"{method} {_where(url)}: {detail}") from None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
