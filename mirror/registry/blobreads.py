"""Blob GETs from a registry: the streamed body, and its resumption from an offset.

:class:`HttpBlobReader` streams one GET's body; :func:`open_resumable` wraps it in a
:class:`~mirror.registry.resume.ResumingReader` whose continuation is a ``Range`` request with
``If-Range`` (the first answer's ETag), used only when it is exactly the rest of this blob.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from mirror.registry.resume import Reopened, ResumingReader, range_mismatch, strong_etag
from mirror.transport.client import Transport
from mirror.transport.errors import redact_url
from mirror.types.errors import TransportError
from mirror.types.manifest import Descriptor


class HttpBlobReader:
    """A blob GET being streamed; close() releases the connection."""

    def __init__(self, stack: contextlib.AsyncExitStack, response: Any) -> None:
        self._stack = stack
        self._response = response
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None

    async def chunks(self) -> AsyncIterator[bytes]:
        # Chunks as the HTTP parser produced them: re-joining them into fixed-size reads would
        # copy every byte once more (and churn large allocations).
        content = self._response.content
        received = 0
        while True:
            try:
                chunk, end_of_http_chunk = await content.readchunk()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                # A body cut short is a temporary transport failure (a fresh read may succeed).
                raise TransportError(
                    f"GET {redact_url(str(self._response.url))}: the connection broke after "
                    f"{received} of {self.size if self.size is not None else 'an unknown number of'} "
                    f"bytes: {type(exc).__name__}: {exc or 'timed out'}"
                ) from None
            if not chunk:
                if end_of_http_chunk:
                    # The end of an HTTP chunk whose data was already read (its CRLF came in a
                    # later TCP segment): not the end of the body.
                    continue
                return
            received += len(chunk)
            yield chunk

    async def close(self) -> None:
        await self._stack.aclose()


async def open_resumable(
    transport: Transport, host: str, path: str, scopes: tuple[str, ...], desc: Descriptor
) -> ResumingReader:
    """GET a blob; if its body breaks off, the reader continues from the offset reached."""
    first, _, headers = await _get(transport, host, path, scopes, desc)
    etag = strong_etag(headers.get("ETag"))

    async def rest(offset: int) -> Reopened:
        """The rest of the blob from ``offset``; the whole blob again when the answer is not
        exactly that range of the same blob (the reader then drops its first ``offset`` bytes)."""
        reader, status, headers = await _get(transport, host, path, scopes, desc, offset, etag)
        if status != 206:
            return Reopened(reader, offset, "the registry answered the whole blob to a range request")
        problem = range_mismatch(headers.get("Content-Range"), offset, desc.size)
        if not problem and etag and strong_etag(headers.get("ETag")) not in (None, etag):
            problem = "a range with another ETag"
        if not problem:
            return Reopened(reader)
        await reader.close()
        whole, _, _ = await _get(transport, host, path, scopes, desc)
        return Reopened(whole, offset, f"the registry answered {problem}")

    return ResumingReader(first, desc.size, rest)


async def _get(
    transport: Transport,
    host: str,
    path: str,
    scopes: tuple[str, ...],
    desc: Descriptor,
    offset: int = 0,
    etag: str | None = None,
) -> tuple[HttpBlobReader, int, Any]:
    """A blob GET (from ``offset`` with a range request): the reader, status and headers."""
    headers: dict[str, str] = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if etag:
            headers["If-Range"] = etag  # a changed blob comes back whole, never spliced
    stack = contextlib.AsyncExitStack()
    try:
        response = await stack.enter_async_context(
            transport.stream(
                "GET",
                host,
                path,
                scopes=scopes,
                headers=headers,
                ok=(200, 206) if offset else (200,),
                transfer_size=desc.size - offset,
            )
        )
    except BaseException:
        await stack.aclose()
        raise
    return HttpBlobReader(stack, response), response.status, response.headers
