"""The blob transfers moving right now, one row each, counted from events.

A transfer is one read of a blob from its source (fanned out to every destination that lacks
it): it begins with ``transfer_started`` (the source repository, the digest, the blob's size and
the first image that wants it), grows with ``blob_progress`` (bytes so far) and ends with
``transfer_finished``. A retried transfer is a new row. Rows are matched by (source repository,
digest); two runs moving the same blob from the same source at once (two jobs) each have a row,
and progress goes to the most recent one.

:meth:`InFlight.snapshot` gives each row's bytes done of total, its rate (bytes over the time
since it started) and the expected end at that rate, as a JSON-ready list.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mirror.types import events as ev
from mirror.types.events import Event

MAX_ROWS = 10_000  # a listener that missed finishes (attached mid-run) never grows without bound


@dataclass
class Transfer:
    image: str
    repository: str
    digest: str
    size: int
    started: float  # monotonic
    started_at: float  # unix time
    done: int = 0
    last_progress: float = 0.0  # monotonic time of the last byte (the start before any)


class InFlight:
    """An event sink keeping a :class:`Transfer` per blob read in flight."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monotonic = monotonic
        self.wall = wall
        self._rows: dict[int, Transfer] = {}
        self._by_key: dict[tuple[str, str], list[int]] = {}
        self._ids = itertools.count()

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == ev.BLOB_PROGRESS:
            row = self._current(event)
            if row is not None:
                row.done += max(0, event.size)
                row.last_progress = self.monotonic()
        elif kind == ev.TRANSFER_STARTED:
            self._start(event)
        elif kind == ev.TRANSFER_FINISHED:
            self._finish(event)

    def _start(self, event: Event) -> None:
        if len(self._rows) >= MAX_ROWS:
            return
        now = self.monotonic()
        key = (event.repository, event.digest)
        row_id = next(self._ids)
        self._rows[row_id] = Transfer(
            image=event.detail or event.repository,
            repository=event.repository,
            digest=event.digest,
            size=max(0, event.size),
            started=now,
            started_at=self.wall(),
            last_progress=now,
        )
        self._by_key.setdefault(key, []).append(row_id)

    def _current(self, event: Event) -> Transfer | None:
        ids = self._by_key.get((event.repository, event.digest))
        return self._rows[ids[-1]] if ids else None

    def _finish(self, event: Event) -> None:
        key = (event.repository, event.digest)
        ids = self._by_key.get(key)
        if not ids:
            return
        self._rows.pop(ids.pop(0), None)
        if not ids:
            del self._by_key[key]

    def __len__(self) -> int:
        return len(self._rows)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every transfer in flight, the oldest first."""
        now, wall = self.monotonic(), self.wall()
        rows = []
        for row in self._rows.values():
            elapsed = max(now - row.started, 0.0)
            rate = row.done / elapsed if elapsed > 0 and row.done else 0.0
            left = max(row.size - row.done, 0)
            rows.append(
                {
                    "image": row.image,
                    "repository": row.repository,
                    "digest": row.digest,
                    "size": row.size,
                    "done": min(row.done, row.size) if row.size else row.done,
                    "started_at": round(row.started_at, 3),
                    "seconds": round(elapsed, 3),
                    "rate_bytes_per_second": round(rate, 1),
                    "expected_end_at": round(wall + left / rate, 3) if rate > 0 else None,
                    "idle_seconds": round(max(now - row.last_progress, 0.0), 3),
                }
            )
        return rows
