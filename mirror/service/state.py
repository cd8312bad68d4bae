"""What the service knows of each job right now, in memory: the source of status endpoints.

Per job: the last pass (when, how long, images, failures, its error; images by status, bytes
written, and the images that did not end copied or skipped, with their errors), the replication
lag of recent event-triggered copies (a bounded window, with p50/p99), the drift counts measured
after the last pass and its rows that are not in sync, the last prune, event copies waiting or
running, and when the next scheduled pass is due. :meth:`ServiceState.snapshot` returns it all as
a JSON-ready document. Error texts come from registries: whoever shows them redacts and escapes.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

LAG_WINDOW = 1024  # lags kept per job for percentiles
DRIFT_ROWS_KEPT = 10_000  # drift rows (not in sync) kept per job; the counts are always whole


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by the nearest-rank method; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def lag_summary(lags: Iterable[float]) -> dict[str, Any]:
    values = list(lags)
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return {
        "count": len(values),
        "p50_seconds": None if p50 is None else round(p50, 3),
        "p99_seconds": None if p99 is None else round(p99, 3),
        "max_seconds": round(max(values), 3) if values else None,
    }


@dataclass
class PassInfo:
    trigger: str  # "schedule" or "event"
    started: float  # unix time
    seconds: float
    ok: bool
    images: int
    failed: int
    error: str = ""
    statuses: dict[str, int] = field(default_factory=dict)  # images by status
    bytes_written: int = 0  # to the job's destinations
    problems: list[dict[str, str]] = field(default_factory=list)  # the first images not copied/skipped
    problems_total: int = 0


@dataclass
class JobState:
    name: str
    last_pass: PassInfo | None = None
    last_event_run: PassInfo | None = None
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    drift: dict[str, int] | None = None
    drift_at: float | None = None
    last_prune: dict[str, Any] | None = None
    events_pending: int = 0
    drift_rows: list[dict[str, str]] = field(default_factory=list)  # not in sync, the first kept
    drift_rows_total: int = 0
    next_pass: float | None = None  # unix time the schedule next starts this job
    running_since: float | None = None  # unix time the running pass started
    slots_skipped: int = 0  # scheduled starts skipped because a pass was still running

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "last_pass": None if self.last_pass is None else vars(self.last_pass).copy(),
            "last_event_run": None if self.last_event_run is None else vars(self.last_event_run).copy(),
            "lag": lag_summary(self.lags),
            "drift": None if self.drift is None else dict(self.drift),
            "drift_at": self.drift_at,
            "last_prune": self.last_prune,
            "events_pending": self.events_pending,
            "drift_rows": list(self.drift_rows),
            "drift_rows_total": self.drift_rows_total,
            "next_pass": self.next_pass,
            "running_since": self.running_since,
            "slots_skipped": self.slots_skipped,
        }


class ServiceState:
    """Every job's :class:`JobState`, created on first use."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.jobs: dict[str, JobState] = {name: JobState(name) for name in names}
        self.started = time.time()

    def job(self, name: str) -> JobState:
        found = self.jobs.get(name)
        if found is None:
            found = self.jobs[name] = JobState(name)
        return found

    def snapshot(self) -> dict[str, Any]:
        return {"started": self.started, "jobs": [j.snapshot() for j in self.jobs.values()]}
