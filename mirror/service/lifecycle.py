"""How the service's passes end when it is asked to stop, and what a skipped slot leaves behind.

:func:`wind_down` is the bounded stop of every mode (``sync --once``, serve): no new work, moving
blobs may finish within ``grace`` seconds, then what still moves is aborted (multipart uploads
aborted, upload sessions deleted; the images fail with kind ``shutdown``) and each pass gets
:data:`ABORT_WAIT` more seconds to write its report; a pass still running then is cancelled.
:class:`SkippedSlots` makes a scheduled start skipped because the job's previous pass is still
running visible: a log line, a metric, the job's state.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from mirror.jobs.config import Job
from mirror.jobs.progress import Progress
from mirror.jobs.schedule import next_start
from mirror.jobs.syncrun import JobOutcome, SyncResult
from mirror.service.state import ServiceState

if TYPE_CHECKING:
    from mirror.service.metrics import Metrics

log = logging.getLogger("mirror")

ABORT_WAIT = 10.0  # seconds a pass has, once its transfers are aborted, to end and report


class Abortable(Protocol):
    def abort(self) -> None: ...


async def wind_down(
    tasks: Iterable[asyncio.Future[Any]], runs: Callable[[], Iterable[Abortable]], grace: float
) -> None:
    """End ``tasks`` (passes already told to stop): ``grace`` seconds for moving blobs, then an
    abort of ``runs()``, then :data:`ABORT_WAIT` seconds, then cancellation."""
    pending = set(tasks)
    if not pending:
        return
    _done, late = await asyncio.wait(pending, timeout=grace)
    if late:
        log.warning("stopping: %.0fs of grace are over; aborting the transfers still moving", grace)
        for run in list(runs()):
            run.abort()
        _done, late = await asyncio.wait(late, timeout=ABORT_WAIT)
    for task in late:
        log.error("stopping: a pass did not end %.0fs after its abort; cancelled", ABORT_WAIT)
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def mark_interrupted(result: SyncResult, sig: signal.Signals | None) -> None:
    """Every job of a pass that a stop signal cut short says so (its report, its exit code)."""
    why = f"stopped by {sig.name if sig is not None else 'a stop request'} before the pass ended"
    for outcome in result.jobs:
        if not outcome.error:
            outcome.error, outcome.error_kind = why, "shutdown"


def interrupted_result(jobs: Iterable[Job], sig: signal.Signals | None) -> SyncResult:
    """The result of a pass that had to be cancelled: each job failed, saying why."""
    from mirror.copy.results import RunStats
    from mirror.jobs.resultlog import ImageResults

    result = SyncResult([JobOutcome(j.name) for j in jobs], ImageResults(), RunStats())
    mark_interrupted(result, sig)
    for outcome in result.jobs:
        outcome.error += " (cancelled: what it copied is not in this report)"
    return result


class SkippedSlots:
    """The next slot of each job whose pass is still running; a slot that passes is skipped,
    never queued, and never in silence."""

    def __init__(self, state: ServiceState, progress: Progress) -> None:
        self.state = state
        self.progress = progress
        self._next: dict[str, float] = {}

    def job_free(self, job: Job) -> None:
        self._next.pop(job.name, None)

    def job_busy(self, job: Job, started: float | None, now: float, metrics: Metrics | None) -> None:
        slot = self._next.get(job.name)
        if slot is None:
            self._next[job.name] = next_start(job.schedule.spec, job.name, started, now)
            return
        if slot > now:
            return
        self._next[job.name] = next_start(job.schedule.spec, job.name, slot, now)
        self.state.job(job.name).slots_skipped += 1
        if metrics is not None:
            metrics.job_slot_skipped(job)
        running_for = now - started if started is not None else 0.0
        log.warning(
            "job %s: a scheduled start was skipped: its run that started %.0fs ago is still going (%s)",
            job.name,
            running_for,
            self.progress.render() or "no blob moving",
            extra={"fields": {"job": job.name, "running_seconds": round(running_for, 3), "skipped": True}},
        )
