"""Redirects, followed by hand so that credentials never leak: GET and HEAD only, at most
:data:`MAX_REDIRECTS`, and ``Authorization`` dropped once the host or the scheme changes."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from mirror.transport.errors import redact_url
from mirror.transport.urls import host_of, resolve_location
from mirror.types.errors import UnsafeRequest

MAX_REDIRECTS = 5


async def follow(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    data: Any,
    *,
    ssl: ssl.SSLContext | bool,
    on_response: Callable[[str, str, int], None],
) -> aiohttp.ClientResponse:
    """The response to ``method url`` at the end of its redirects; ``on_response(host, method,
    status)`` hears of every answer on the way."""
    for _ in range(MAX_REDIRECTS + 1):
        resp = await session.request(method, url, headers=headers, data=data, allow_redirects=False, ssl=ssl)
        on_response(host_of(url), method, resp.status)
        if resp.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
            return resp
        location = resp.headers.get("Location")
        if not location:
            return resp
        resp.release()
        target = resolve_location(url, location)
        if host_of(target) != host_of(url) or target.scheme != url.scheme:
            headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() != "authorization")
        url = target
    raise UnsafeRequest(f"{method} {redact_url(str(url))}: more than {MAX_REDIRECTS} redirects")
