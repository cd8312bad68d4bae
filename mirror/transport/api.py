"""JSON calls to a cloud API that stands next to a registry (the Artifact Registry API).

They share the run's transport: its session, retry policy (429 and 5xx answers and connection
failures are retried with backoff, ``Retry-After`` honoured), request count and events (a 429 is
counted as throttled). They skip what only registries do: the ``/v2/`` ping and the token
exchange; the caller gives the ``Authorization`` header, which is never sent over plain HTTP to a
host that is not loopback. Google's error bodies (``{"error": {"code", "message", "status"}}``)
become :class:`RegistryError` with the ``status`` name as the code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from mirror.transport.errors import from_exception, read_bounded, redact_url
from mirror.transport.retry import parse_retry_after
from mirror.transport.urls import credentials_allowed, host_of
from mirror.types import events as ev
from mirror.types.errors import MirrorError, RegistryError, UnsafeRequest
from mirror.types.events import Event

if TYPE_CHECKING:
    from mirror.transport.client import Transport

MAX_API_BODY = 16 * 1024 * 1024


def api_error(method: str, url: URL, status: int, body: bytes, retry_after: float | None) -> RegistryError:
    """An API answer that is not a success, with Google's error status and message when given."""
    code, message = "", ""
    try:
        doc = json.loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        code = str(doc["error"].get("status") or "")[:64]
        message = " ".join(str(doc["error"].get("message") or "").split())[:500]
    if not message:
        message = body[:200].decode("utf-8", "replace").strip()
    text = f"{method} {redact_url(str(url))}: HTTP {status}" + (f" {code}" if code else "")
    if message:
        text += f": {message}"
    temporary = status in (408, 429, 500, 502, 503, 504)
    return RegistryError(text, status=status, code=code, temporary=temporary, retry_after=retry_after)


async def call_json(
    transport: Transport,
    method: str,
    url: URL,
    *,
    authorization: str | None = None,
    body: Any = None,
    ok: tuple[int, ...] = (200,),
) -> tuple[int, Any]:
    """Send ``method url`` (with ``body`` as JSON) and return ``(status, parsed JSON body)``.

    Raises :class:`RegistryError` for an answer outside ``ok`` once retries are spent, and
    :class:`UnsafeRequest` when ``authorization`` would go over plain HTTP to a remote host.
    """
    if authorization and not credentials_allowed(url):
        raise UnsafeRequest(
            f"refusing to send credentials over plain HTTP to {url.host}: use https for the API "
            "(plain HTTP with credentials is allowed on loopback only)"
        )
    headers = {"Accept": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    data: bytes | None = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    host = host_of(url)
    attempt = 0
    while True:
        attempt += 1
        try:
            async with transport._get_session().request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as resp:
                raw = await read_bounded(resp.content, MAX_API_BODY)
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), transport.clock())
            _count(transport, host, method, status)
            if len(raw) > MAX_API_BODY:
                raise RegistryError(
                    f"{method} {redact_url(str(url))}: answer larger than {MAX_API_BODY} bytes"
                )
            if status not in ok:
                raise api_error(method, url, status, raw, retry_after)
            try:
                return status, json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise RegistryError(f"{method} {redact_url(str(url))}: the answer is not JSON") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            failure: MirrorError = from_exception(exc, method, redact_url(str(url)))
        except RegistryError as exc:
            failure = exc
        if not transport.retry.should_retry(failure, attempt):
            raise failure
        await transport.backoff(host, attempt, failure)


def _count(transport: Transport, host: str, method: str, status: int) -> None:
    transport.request_count += 1
    transport.events(Event(ev.REQUEST, host=host, status=status, detail=method))
    if status == 429:
        transport.events(Event(ev.THROTTLED, host=host, status=status))
