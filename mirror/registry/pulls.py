"""The pull budget of a registry that limits manifest GETs (Docker Hub), for one pass.

Docker Hub counts a manifest GET as a pull; HEAD is free. Its answers say how many pulls remain
(``RateLimit-Remaining: 76;w=21600``); past the limit it answers ``429 TOOMANYREQUESTS``. A
:class:`PullBudget` admits a manifest GET only when the registry's last count, less the GETs
still in flight, leaves one: the last pulls are never spent blindly. Until a count is known (no
answer yet, or headers that came empty), GETs go one at a time. Answers without the headers
mean the account is not limited (Docker's documentation: no ``RateLimit`` headers, no limit), and
GETs go freely. Once the count reaches 0, or a 429 arrives, no more manifest GET goes to that
host in this pass: each one raises :class:`Deferred`, and the image waits for a later pass. One
log line says when the window refills; a ``rate_limit`` event carries the count for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping

from mirror.types import events as ev
from mirror.types.errors import Deferred, RegistryError
from mirror.types.events import Event, EventSink

log = logging.getLogger("mirror")

_VALUE = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


def parse_rate_limit(value: str | None) -> tuple[int | None, int | None]:
    """``"76;w=21600"`` -> ``(76, 21600)``; ``(None, None)`` for an empty or unreadable value."""
    match = _VALUE.match(value or "")
    if match is None:
        return None, None
    return int(match[1]), int(match[2]) if match[2] else None


class PullBudget:
    """Manifest GETs one host still allows in this pass (see the module's description)."""

    def __init__(
        self, host: str, *, clock: Callable[[], float] = time.time, events: EventSink = ev.discard
    ) -> None:
        self.host = host
        self.clock = clock
        self.events = events
        self.remaining: int | None = None  # the lowest count seen in this pass
        self.limit: int | None = None
        self.window: int | None = None  # seconds
        self.metered: bool | None = None  # None: no answer yet; False: no headers, no limit
        self.in_flight = 0
        self.spent_at: float | None = None
        self.refills_at: float | None = None
        self.deferred = 0  # GETs refused in this pass
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    @property
    def spent(self) -> bool:
        return self.spent_at is not None

    def _admits(self) -> bool:
        if self.metered is False:
            return True
        if self.remaining is not None:
            return self.remaining - self.in_flight > 0
        return self.in_flight == 0  # unknown: one at a time until a count is known

    @contextlib.asynccontextmanager
    async def pull(self) -> AsyncIterator[None]:
        """Hold one pull for a manifest GET; raises :class:`Deferred` when none is left."""
        changed = self._condition()
        async with changed:
            while not self.spent and not self._admits():
                await changed.wait()
            if self.spent:
                self.deferred += 1
                raise self.deferral()
            self.in_flight += 1
        try:
            yield
        finally:
            async with changed:
                self.in_flight -= 1
                changed.notify_all()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the count from an answer's ``RateLimit-*`` headers (a HEAD's too)."""
        if "RateLimit-Remaining" not in headers:
            if self.metered is None:
                self.metered = False
            return
        self.metered = True
        remaining, window = parse_rate_limit(headers.get("RateLimit-Remaining"))
        limit, _ = parse_rate_limit(headers.get("RateLimit-Limit"))
        self.window = window or self.window
        self.limit = limit if limit is not None else self.limit
        if remaining is not None:
            # Answers may arrive out of order: within a pass the count only goes down.
            self.remaining = remaining if self.remaining is None else min(self.remaining, remaining)
            self.events(
                Event(ev.RATE_LIMIT, host=self.host, size=self.remaining, detail=str(self.limit or ""))
            )
            if self.remaining <= 0:
                self._spend(None)

    def refused(self, error: RegistryError) -> Deferred:
        """A manifest GET was answered 429: no more in this pass. The deferral to raise (the GETs
        waiting are woken when this one releases its pull)."""
        self._spend(error.retry_after)
        self.deferred += 1
        return self.deferral()

    def _spend(self, retry_after: float | None) -> None:
        if self.spent:
            return
        now = self.clock()
        self.spent_at = now
        wait = retry_after if retry_after is not None else self.window
        self.refills_at = now + wait if wait is not None else None
        log.warning(
            "%s: the pull limit is reached (%s); images not read yet are deferred to a later pass; %s",
            self.host,
            self._describe_limit(),
            self._describe_refill(),
            extra={"fields": {"host": self.host, "refills_at": _iso(self.refills_at), "limit": self.limit}},
        )

    def _describe_limit(self) -> str:
        if self.limit is None:
            return "the registry answered 429"
        window = f" per {self.window}s" if self.window else ""
        return f"{max(0, self.remaining or 0)} of {self.limit}{window} left"

    def _describe_refill(self) -> str:
        if self.refills_at is None:
            return "the window's length is unknown"
        return f"pulls are allowed again by {_iso(self.refills_at)} at the latest"

    def deferral(self) -> Deferred:
        return Deferred(
            f"not read in this pass: the pull limit of {self.host} is reached "
            f"({self._describe_limit()}); {self._describe_refill()}, and a later pass copies it",
            host=self.host,
            until=self.refills_at,
        )


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PullBudgets:
    """One :class:`PullBudget` per host for a pass, shared by every repository of that host."""

    def __init__(self, *, clock: Callable[[], float] = time.time, events: EventSink = ev.discard) -> None:
        self.clock = clock
        self.events = events
        self._budgets: dict[str, PullBudget] = {}

    def for_host(self, host: str) -> PullBudget:
        budget = self._budgets.get(host)
        if budget is None:
            budget = self._budgets[host] = PullBudget(host, clock=self.clock, events=self.events)
        return budget
