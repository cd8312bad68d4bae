"""Retry policy: exponential backoff with full jitter, honouring Retry-After. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from mirror.types.errors import MirrorError


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries, first included
    base: float = 0.25  # seconds
    cap: float = 15.0
    retry_after_cap: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None, rand: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        ceiling = min(self.cap, self.base * (2.0 ** (attempt - 1)))
        r = random.random() if rand is None else rand
        return float(ceiling * (0.5 + r / 2))  # "equal jitter": never zero, never over the ceiling

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        return attempt < self.attempts and isinstance(error, MirrorError) and error.temporary


NO_RETRY = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)
