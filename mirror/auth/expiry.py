"""Expiry arithmetic on the injected clock, and a per-key credential cache refreshed by one caller.

Every expiry decision in ``mirror.auth`` is taken on the injected :data:`~mirror.types.clock.Clock`.
Servers state expiries as absolute instants on their own (wall) clock; :func:`anchor_expiry`
turns such an instant into the remaining lifetime at receipt and re-expresses it on the injected
clock. With the system clock this is the identity; with a test clock, tests move time forward
without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from mirror.auth.credentials import Credential
from mirror.types.clock import Clock

K = TypeVar("K", bound=Hashable)

DEFAULT_REFRESH_MARGIN = 60.0
"""Seconds of life a credential must keep beyond what the caller asked for."""


def epoch_of(instant: datetime) -> float:
    """Epoch seconds of a datetime; a naive datetime is taken as UTC (google-auth's convention)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.timestamp()


def anchor_expiry(server_expiry: float, clock: Clock, wall: Clock = time.time) -> float:
    """An absolute expiry (epoch seconds on the wall clock) expressed on ``clock``."""
    return clock() + (server_expiry - wall())


@dataclass(frozen=True)
class _Entry:
    value: Credential | None
    fetched_at: float


class CredentialCache(Generic[K]):
    """Credentials by key, fetched again when their remaining life is too short.

    A credential is fresh enough when it keeps at least ``min_valid + refresh_margin`` seconds of
    life. When it is not, one fetch runs for all concurrent callers of that key (they share its
    result or its error); a failed fetch is not remembered, so a later call tries again. A
    credential fetched less than ``min_refresh_interval`` seconds ago and not yet expired is
    returned as it is even when it cannot satisfy ``min_valid``: the source hands out nothing
    longer-lived, and asking again at once would only hammer it. ``None`` (the source has nothing
    for the key) and credentials without an expiry stay for the life of the cache.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        min_refresh_interval: float = 30.0,
    ) -> None:
        self._clock = clock
        self.refresh_margin = refresh_margin
        self.min_refresh_interval = min_refresh_interval
        self._entries: dict[K, _Entry] = {}
        self._inflight: dict[K, asyncio.Future[Credential | None]] = {}
        self.fetches = 0

    def _fresh(self, entry: _Entry, min_valid: float) -> bool:
        cred = entry.value
        if cred is None or cred.expires_at is None:
            return True
        now = self._clock()
        remaining = cred.remaining(now)
        if remaining >= min_valid + self.refresh_margin:
            return True
        return remaining > 0 and now - entry.fetched_at < self.min_refresh_interval

    def peek(self, key: K) -> Credential | None:
        """The cached credential for ``key``, fresh or not, without fetching."""
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    async def get(
        self, key: K, min_valid: float, fetch: Callable[[], Awaitable[Credential | None]]
    ) -> Credential | None:
        entry = self._entries.get(key)
        if entry is not None and self._fresh(entry, min_valid):
            return entry.value
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._run(key, fetch))
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._finished(key, done))
        # A caller that is cancelled does not cancel the fetch the others are waiting for.
        return await asyncio.shield(future)

    async def _run(self, key: K, fetch: Callable[[], Awaitable[Credential | None]]) -> Credential | None:
        started = self._clock()
        self.fetches += 1
        value = await fetch()
        self._entries[key] = _Entry(value, started)
        return value

    def _finished(self, key: K, future: asyncio.Future[Credential | None]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved here, so an error nobody awaited is not reported twice

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
