"""Event-triggered copies: queue what events ask for, coalesce bursts, copy, measure the lag.

:meth:`Dispatcher.submit` routes each notice to the jobs it concerns (:mod:`mirror.jobs.routing`)
and queues it per (job, source repository). One worker per such pair takes everything queued
for it as one batch and copies it through one engine; notices arriving meanwhile form the next
batch, so a burst of pushes to one repository costs a few batches, not one run per push. At most
``concurrency`` batches run at once. Batches and scheduled passes hold per-image locks
(:mod:`mirror.jobs.imagelocks`): an image is never copied by two of them at once.

With ``--shard``, a notice for a repository another replica owns is handed to that replica
(:class:`~mirror.service.forward.Forwarder`) and not copied here; a handed-over notice is always
handled where it arrives, so it is copied once even while replicas disagree on the shard count.

For every image an event made this service copy, the lag is the time from the event (its push
time when it says, else when it arrived) to the moment the image's tag was written at every
destination: a histogram metric, the job's state (p50/p99 of recent copies) and the run report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mirror.copy.results import COPIED, ImageResult
from mirror.jobs.eventrun import Wanted, plan_images
from mirror.jobs.imagelocks import ImageLocks
from mirror.jobs.prune import Deletion
from mirror.jobs.routing import PRUNE, REFRESH, Route, route
from mirror.jobs.syncrun import JobOutcome, JobSpec, SyncResult, SyncRun
from mirror.jobs.triggers import Notice, Parsed
from mirror.service.forward import Forwarder
from mirror.service.reconcile import Reconciler
from mirror.service.shard import Shard, owner
from mirror.service.state import ServiceState

if TYPE_CHECKING:  # prometheus_client: only when metrics are served
    from mirror.service.replication import ReplicationMetrics

log = logging.getLogger("mirror")

MAX_PENDING = 100_000  # images waiting for an event copy; past it, events are left to the next pass
FUTURE_SLACK = 5.0  # seconds an event's own time may lead this clock (skew) before it is ignored

Reporter = Callable[[SyncResult, list[dict[str, Any]]], None]
"""Writes the run report of an event batch: its result and the lag of each image it copied."""


@dataclass
class _Pending:
    copies: dict[str, tuple[str, float]] = field(default_factory=dict)  # write -> (read, event time)
    refresh: dict[str, float] = field(default_factory=dict)  # tags named by events -> time
    prune: bool = False

    def size(self) -> int:
        return len(self.copies) + len(self.refresh) + int(self.prune)

    def add(self, item: Route, when: float) -> None:
        if item.mode == PRUNE:
            self.prune = True
        elif item.mode == REFRESH:
            self.refresh[item.write] = min(when, self.refresh.get(item.write, when))
        else:
            _read, first = self.copies.get(item.write, (item.read, when))
            self.copies[item.write] = (item.read, min(first, when))  # the latest read, the first time


class Dispatcher:
    def __init__(
        self,
        jobs: Sequence[JobSpec],
        every_job: Sequence[JobSpec],
        *,
        state: ServiceState,
        replication: ReplicationMetrics | None = None,
        shard: Shard | None = None,
        forwarder: Forwarder | None = None,
        report: Reporter | None = None,
        concurrency: int = 4,
        locks: ImageLocks | None = None,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.every_job = list(every_job)
        self.state = state
        self.replication = replication
        self.shard = shard
        self.forwarder = forwarder
        self.report = report
        self.clock = clock
        self.locks = locks if locks is not None else ImageLocks()
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._active: set[SyncRun] = set()
        self._new_run: Callable[[], SyncRun] | None = None
        self._ready = asyncio.Event()
        self.stopping = False
        self.max_pending = max_pending
        self._queued = 0  # images and checks waiting, over every (job, repository)
        self._keys_per_job: dict[str, int] = {}

    # -- intake -------------------------------------------------------------------------------

    def submit(self, parsed: Parsed, *, forwarded: bool = False) -> dict[str, int]:
        """Route and queue ``parsed``'s notices; returns how many were accepted here, handed to
        their owner, or ignored (no job covers them)."""
        counts = {"accepted": 0, "forwarded": 0, "ignored": parsed.ignored}
        now = self.clock()
        for notice in parsed.notices:
            routes = route(notice, list(self.jobs.values()))
            if not routes:
                counts["ignored"] += 1
                log.debug(
                    "event for %s: no job covers it", notice.image, extra={"fields": {"image": notice.image}}
                )
                continue
            target = self._owner(routes[0].key)
            if target is not None and not forwarded and self.forwarder is not None:
                self.forwarder.send(target, notice)
                counts["forwarded"] += 1
                continue
            if self._queued >= self.max_pending:
                counts["overflow"] = counts.get("overflow", 0) + 1
                continue
            when = _event_time(notice, now)
            for item in routes:
                self._queue(item, when)
            counts["accepted"] += 1
        if counts.get("overflow"):
            log.warning(
                "%d event(s) not queued: %d images already wait for a copy; the next pass copies them",
                counts["overflow"],
                self._queued,
                extra={"fields": {"overflow": counts["overflow"], "queued": self._queued}},
            )
        return counts

    def _owner(self, key: str) -> int | None:
        """The replica that owns ``key`` when it is not this one; None when it is this one."""
        if self.shard is None or not self.shard.sharded:
            return None
        index = owner(key, self.shard.count)
        return None if index == self.shard.index else index

    def _queue(self, item: Route, when: float) -> None:
        key = (item.job, item.repository)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
            self._count_key(item.job, 1)
        before = pending.size()
        pending.add(item, when)
        self._queued += pending.size() - before
        if key not in self._workers and not self.stopping:
            self._workers[key] = asyncio.create_task(self._work(key))

    def _count_key(self, job: str, delta: int) -> None:
        """Repositories of ``job`` with events waiting (the job's ``events_pending``)."""
        self._keys_per_job[job] = max(0, self._keys_per_job.get(job, 0) + delta)
        self.state.job(job).events_pending = self._keys_per_job[job]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, new_run: Callable[[], SyncRun]) -> None:
        """Start copying (events queued before this wait for it)."""
        self._new_run = new_run
        self._ready.set()

    async def stop(self, grace: float) -> None:
        """Take no new batch; let running ones finish moving blobs within ``grace`` seconds."""
        self.stopping = True
        for run in list(self._active):
            run.stop()
        workers = list(self._workers.values())
        if workers:
            _done, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        left = sum(p.size() for p in self._pending.values())
        if left:
            log.warning("stopping: %d queued event(s) not handled; the next pass catches them", left)
        if self.forwarder is not None:
            await self.forwarder.aclose(grace)

    # -- batches ------------------------------------------------------------------------------

    async def _work(self, key: tuple[str, str]) -> None:
        try:
            while True:
                await self._ready.wait()
                pending = None if self.stopping else self._pending.pop(key, None)
                if pending is None:
                    self._workers.pop(key, None)
                    return
                self._queued -= pending.size()
                self._count_key(key[0], -1)
                async with self._slots:
                    try:
                        await self._batch(self.jobs[key[0]], key[1], pending)
                    except Exception:
                        log.exception("event copy for job %s, %s failed", key[0], key[1])
        finally:
            if self._workers.get(key) is asyncio.current_task():
                self._workers.pop(key, None)

    async def _batch(self, job: JobSpec, repo_path: str, pending: _Pending) -> None:
        assert self._new_run is not None
        lags: list[dict[str, Any]] = []
        times = {write: when for write, (_read, when) in pending.copies.items()} | pending.refresh

        def done(write: str, result: ImageResult) -> None:
            self._image_done(job.name, times.get(write), result, lags)

        if pending.copies or pending.refresh:
            run = self._new_run()
            run.locks = self.locks
            self._active.add(run)
            try:
                result = await run.run([job], self._planner(run, repo_path, pending, done))
            finally:
                self._active.discard(run)
                await run.aclose()
            self._log_batch(job.name, repo_path, result, lags)
            if self.report is not None:
                self.report(result, lags)
        if pending.prune and job.prune:
            await self._prune(job, repo_path)

    def _planner(
        self, run: SyncRun, repo_path: str, pending: _Pending, done: Callable[[str, ImageResult], None]
    ) -> Any:
        async def plan(job: JobSpec, _outcome: JobOutcome) -> list[Any]:
            if pending.refresh:
                tasks = await run.plan_repository(job, repo_path)
                for task in tasks:
                    write = task.destinations[0].reference if task.destinations else ""
                    if write in pending.refresh or write in pending.copies:
                        task.on_done = lambda result, write=write: done(write, result)
                return tasks
            wanted = [Wanted(read, write) for write, (read, _when) in pending.copies.items()]
            return await plan_images(run, job, repo_path, wanted, lambda w, result: done(w.write, result))

        return plan

    def _image_done(
        self, job: str, when: float | None, result: ImageResult, lags: list[dict[str, Any]]
    ) -> None:
        outcome = result.status if result.status in ("copied", "skipped", "conflict") else "failed"
        if self.replication is not None:
            self.replication.event_images.labels(job_name=job, outcome=outcome).inc()
        if result.status != COPIED or when is None:
            return
        written = self.clock()
        lag = max(0.0, written - when)
        self.state.job(job).lags.append(lag)
        if self.replication is not None:
            self.replication.lag.labels(job_name=job).observe(lag)
        lags.append(
            {
                "image": result.source,
                "digest": result.digest,
                "event_time": when,
                "written_at": written,
                "lag_seconds": round(lag, 3),
            }
        )

    async def _prune(self, job: JobSpec, repo_path: str) -> None:
        assert self._new_run is not None
        if self.replication is not None:
            self.replication.event_images.labels(job_name=job.name, outcome="pruned_check").inc()

        def lock(deletion: Deletion) -> contextlib.AbstractAsyncContextManager[Any]:
            return self.locks.hold([(deletion.job, deletion.source, deletion.tag)])

        await Reconciler(self.state, self.replication).prune(
            self._new_run, [job], self.every_job, repositories=[repo_path], lock=lock
        )

    def _log_batch(self, job: str, repo_path: str, result: SyncResult, lags: list[dict[str, Any]]) -> None:
        copied = sum(o.statuses.get(COPIED, 0) for o in result.jobs)  # counted as results were kept
        failed = sum(o.failed for o in result.jobs)
        worst = max((entry["lag_seconds"] for entry in lags), default=None)
        fields = {
            "job": job,
            "repository": repo_path,
            "images": len(result.images),
            "copied": copied,
            "failed": failed,
        }
        if worst is not None:
            fields["max_lag_seconds"] = worst
        log.info(
            "event copy for job %s, %s: %d image(s), %d copied, %d failed",
            job,
            repo_path,
            len(result.images),
            copied,
            failed,
            extra={"fields": fields},
        )


def _event_time(notice: Notice, arrived: float) -> float:
    """When the event happened: its own time unless that is in the future (clock skew)."""
    if notice.time is not None and notice.time <= arrived + FUTURE_SLACK:
        return min(notice.time, arrived)
    return arrived
