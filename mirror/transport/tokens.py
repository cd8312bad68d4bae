"""Registry bearer tokens: what a realm returns, how long it lasts, and the per-key cache."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from mirror.types.errors import AuthError

DEFAULT_EXPIRES_IN = 60.0  # distribution spec: tokens without expires_in last 60 s
MAX_TOKEN_BODY = 64 * 1024


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    issued_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    def remaining(self, now: float) -> float:
        return self.expires_at - now


def parse_token_response(body: bytes, now: float) -> Token:
    """A Token from a realm's JSON answer (``token`` or ``access_token``)."""
    if len(body) > MAX_TOKEN_BODY:
        raise AuthError("token response is larger than 64 KiB")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AuthError("token response is not JSON") from None
    if not isinstance(doc, dict):
        raise AuthError("token response is not a JSON object")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise AuthError("token response carries no token")
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        expires_in = DEFAULT_EXPIRES_IN
    issued = now
    issued_text = doc.get("issued_at")
    if isinstance(issued_text, str) and issued_text:
        try:
            stamp = datetime.fromisoformat(issued_text.replace("Z", "+00:00")).timestamp()
            # Trust the server's clock only where it does not claim a future issue time.
            issued = min(stamp, now)
        except ValueError:
            pass
    return Token(value, issued, issued + float(expires_in))


TokenKey = tuple[str, frozenset[str]]


class TokenCache:
    """Tokens per (host, scope set); concurrent callers share one fetch (no stampede).

    The fetch runs as its own task: a caller that is cancelled stops waiting for it, and the
    fetch goes on for the others (and fills the cache).
    """

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, Token] = {}
        self._inflight: dict[TokenKey, asyncio.Task[Token]] = {}

    def peek(self, key: TokenKey) -> Token | None:
        return self._tokens.get(key)

    def invalidate(self, key: TokenKey) -> None:
        self._tokens.pop(key, None)

    async def get(
        self,
        key: TokenKey,
        fresh_enough: Callable[[Token], bool],
        fetch: Callable[[], Awaitable[Token]],
    ) -> tuple[Token, bool]:
        """A cached token that is ``fresh_enough``, else one fetch shared by all waiters.

        Returns the token and whether this call started the fetch.
        """
        while True:
            token = self._tokens.get(key)
            if token is not None and fresh_enough(token):
                return token, False
            pending = self._inflight.get(key)
            if pending is None or pending.done():
                break
            try:
                await asyncio.shield(pending)
            except Exception:  # the caller that started it reports it; we try ourselves
                if self._inflight.get(key) is pending:
                    break
        task = asyncio.ensure_future(self._fetch(key, fetch))
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task), True

    async def _fetch(self, key: TokenKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        token = await fetch()
        self._tokens[key] = token
        return token

    def _settled(self, key: TokenKey, task: asyncio.Task[Token]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone
