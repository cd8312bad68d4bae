"""Translate HTTP answers and aiohttp failures into mirror's error tree."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import aiohttp

from mirror.types.errors import (
    MirrorError,
    NotFound,
    RegistryError,
    TransportError,
)

MAX_ERROR_BODY = 64 * 1024


def oci_error(body: bytes) -> tuple[str, str]:
    """The first (code, message) of an OCI error body, or empty strings."""
    try:
        doc = json.loads(body[:MAX_ERROR_BODY])
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("code", ""))[:64], str(first.get("message", ""))[:500]
    return "", ""


def registry_error(
    method: str,
    url: str,
    status: int,
    body: bytes,
    retry_after: float | None = None,
) -> RegistryError:
    code, message = oci_error(body)
    if not message:
        message = body[:200].decode("utf-8", "replace").strip()
    text = f"{method} {url}: HTTP {status}"
    if code:
        text += f" {code}"
    if message:
        text += f": {message}"
    cls = NotFound if status == 404 else RegistryError
    return cls(text, status=status, code=code, retry_after=retry_after)


def from_exception(exc: BaseException, method: str, url: str) -> MirrorError:
    """A connection-level failure as a temporary TransportError."""
    if isinstance(exc, MirrorError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TransportError(f"{method} {url}: timed out")
    if isinstance(exc, aiohttp.ClientSSLError):
        hint = ""
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            hint = " (a registry with a certificate from a private CA needs ca_file set for its host)"
        err = TransportError(f"{method} {url}: TLS error: {exc}{hint}")
        err.temporary = False
        return err
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportError(f"{method} {url}: {type(exc).__name__}: {exc}")
    raise exc


async def read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first ``limit + 1`` bytes when it is longer (callers check).

    ``StreamReader.read(n)`` returns whatever has arrived, so a single call may give a prefix.
    """
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def redact_url(url: str) -> str:
    """A URL safe for logs: query parameters (upload state, signed URLs) dropped."""
    return url.split("?", 1)[0]


def header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name)
