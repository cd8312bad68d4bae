"""The ``/v2/`` ping: which scheme a registry speaks, and the auth challenge it answers with.

Schemes are tried in the order :func:`~mirror.transport.urls.ping_schemes` gives (https; plain
http only on opt-in, or after https for a loopback host). 5xx and 429 answers and connection
failures are retried; a 404 means the host serves no registry API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from yarl import URL

from mirror.transport.challenge import Challenge, pick_challenge
from mirror.transport.errors import MAX_ERROR_BODY, from_exception, read_bounded, registry_error
from mirror.transport.retry import RetryPolicy
from mirror.types.errors import MirrorError, RegistryError


async def ping(
    host: str,
    schemes: tuple[str, ...],
    *,
    get: Callable[[URL], Awaitable[aiohttp.ClientResponse]],
    slots: asyncio.Semaphore,
    retry: RetryPolicy,
    backoff: Callable[[str, int, MirrorError], Awaitable[None]],
    on_response: Callable[[str, str, int], None],
) -> tuple[str, Challenge | None]:
    """The first of ``schemes`` whose ``GET /v2/`` (sent by ``get``, holding one of ``slots``)
    answers, and the challenge of a 401 answer. ``on_response(host, method, status)`` hears of
    every answer; ``backoff`` waits before a retry."""
    last: MirrorError | None = None
    for scheme in schemes:
        url = URL.build(scheme=scheme, authority=host, path="/v2/")
        for attempt in range(1, retry.attempts + 1):
            try:
                async with slots:
                    resp = await get(url)
                    body = await read_bounded(resp.content, MAX_ERROR_BODY)
                    resp.release()
                on_response(host, "GET", resp.status)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = from_exception(exc, "GET", str(url))
                if (
                    len(schemes) > 1
                    and scheme == "https"
                    and not isinstance(exc, aiohttp.ClientConnectorCertificateError)
                ):
                    break  # try plain http on loopback, unless it speaks TLS with a bad certificate
                if retry.should_retry(last, attempt):
                    await backoff(host, attempt, last)
                    continue
                raise last from None
            challenge = None
            if resp.status == 401:
                header = resp.headers.get("WWW-Authenticate", "")
                challenge = pick_challenge(header)
            elif resp.status >= 500 or resp.status == 429:
                last = registry_error("GET", str(url), resp.status, body)
                if retry.should_retry(last, attempt):
                    await backoff(host, attempt, last)
                    continue
                raise last
            elif resp.status == 404:
                raise RegistryError(
                    f"{host} does not serve the registry API (GET /v2/ answered 404)",
                    status=404,
                )
            return scheme, challenge
    assert last is not None
    raise last
