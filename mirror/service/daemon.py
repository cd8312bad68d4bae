"""The service: run jobs once, or keep running them on their schedules.

Serve mode reads top to bottom: start-up (transport, metrics server) -> main loop (start each
due job that is not still running) -> shutdown on SIGTERM/SIGINT (stop taking work, let moving
blobs and their manifests finish within ``grace`` seconds, abort the rest, write the report:
:mod:`.lifecycle`). ``--once`` stops the same way on the same signals, and exits 128 + the
signal's number. Signal handlers only set a flag (a second signal aborts at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mirror import __version__
from mirror.auth.chain import default_chain
from mirror.auth.credentials import StaticProvider
from mirror.auth.redact import RedactingProvider, Redactor
from mirror.copy.manifestmemo import ManifestMemo
from mirror.copy.results import ImageResult, RunStats
from mirror.jobs.config import Config, Job
from mirror.jobs.imagelocks import ImageLocks
from mirror.jobs.inflight import InFlight
from mirror.jobs.progress import Progress
from mirror.jobs.pruning import PruneResult
from mirror.jobs.report import build_report, write_report
from mirror.jobs.schedule import next_start
from mirror.jobs.survey import KnownDigests, Verification, known_from, verify_jobs
from mirror.jobs.syncrun import JobSpec, SyncResult, SyncRun, job_spec
from mirror.service.dispatch import Dispatcher
from mirror.service.forward import Forwarder
from mirror.service.lifecycle import SkippedSlots, interrupted_result, mark_interrupted, wind_down
from mirror.service.passes import PassProblems
from mirror.service.passlog import log_failure, log_outcome
from mirror.service.reconcile import Reconciler
from mirror.service.shard import Shard, describe
from mirror.service.signals import install_stop_signals, on_stop_signals
from mirror.service.state import PassInfo, ServiceState, lag_summary
from mirror.service.status import drift_document, shard_summary, status_document
from mirror.transport.client import Transport
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import InputError
from mirror.types.events import EventSink, Fanout, discard

if TYPE_CHECKING:
    from mirror.service.metrics import Metrics
    from mirror.service.replication import ReplicationMetrics

log = logging.getLogger("mirror")


def redactor_for(config: Config) -> Redactor:
    """A redactor that knows every secret of the config, before anything is logged."""
    redactor = Redactor()
    for cred in config.credentials().values():
        redactor.add_credential(cred)
    if config.events is not None:
        redactor.add(config.events.token.get_secret_value())
    return redactor


def new_metrics() -> Metrics:
    from mirror.service.metrics import Metrics  # prometheus_client: only when metrics are served

    return Metrics()


@dataclass
class Daemon:
    config: Config
    jobs: list[Job]
    shard: Shard | None = None
    report_path: str | None = None
    dry_run: bool = False
    grace: float = 30.0
    metrics_address: str | None = None
    clock: Clock = system_clock
    # None when nothing can read them (``--once`` has no /metrics listener): prometheus_client is
    # then never imported and no event is counted twice.
    metrics: Metrics | None = field(default_factory=new_metrics)
    redactor: Redactor = field(default_factory=Redactor)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    owned: dict[str, list[str]] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    inflight: InFlight = field(default_factory=InFlight)
    progress_interval: float = 30.0
    state: ServiceState = field(default_factory=ServiceState)
    replication: ReplicationMetrics | None = None
    check_drift: bool = False  # after each pass, verify its jobs (serve mode: the drift gauge)
    last_prune: list[PruneResult] = field(default_factory=list)
    locks: ImageLocks = field(default_factory=ImageLocks)  # one copy of an image at a time
    dispatcher: Dispatcher | None = None  # event-triggered copies (serve mode, events: configured)
    stopped_by: signal.Signals | None = None  # the stop signal received, if any
    _active: set[SyncRun] = field(default_factory=set)
    # Manifests read by digest, verified, for every pass of this daemon's life (one for --once).
    memo: ManifestMemo = field(default_factory=ManifestMemo)

    def transport(self, events: Fanout) -> Transport:
        static = StaticProvider(self.config.credentials())
        provider = RedactingProvider(default_chain(static), self.redactor)
        return Transport(
            provider, options=self.config.host_options(), events=events, on_secret=self.redactor.add
        )

    def new_run(self, transport: Transport, events: EventSink, *, dry_run: bool) -> SyncRun:
        return SyncRun(
            transport,
            events=events,
            transfers=self.config.concurrency,
            owns=self.owns,
            dry_run=dry_run,
            s3_settings=self.config.s3_settings,
            profiles=self.config.profile,
            locks=None if dry_run else self.locks,
            stall_timeout=self.config.stall_timeout,
            memo=self.memo,
        )

    async def run_jobs(self, transport: Transport, events: Fanout, jobs: list[Job]) -> SyncResult:
        run = self.new_run(transport, events, dry_run=self.dry_run)
        self._active.add(run)
        if self.stop_requested.is_set():  # stopped before it began: it starts nothing
            run.stop()
        for job in jobs:
            if self.metrics is not None:
                self.metrics.job_started(job)
        started, started_at = time.monotonic(), time.time()
        specs = [job_spec(self.config, j) for j in jobs]
        for job in jobs:
            self.state.job(job.name).running_since = started_at
        try:
            result = await run.run(specs)
        finally:
            self._active.discard(run)
            for job in jobs:
                self.state.job(job.name).running_since = None
            await run.aclose()
        elapsed = time.monotonic() - started
        if self.stop_requested.is_set():
            mark_interrupted(result, self.stopped_by)
        for job, outcome in zip(jobs, result.jobs, strict=True):
            if self.metrics is not None:
                self.metrics.job_finished(job, outcome.ok, elapsed)
            self.owned[job.name] = outcome.repositories
            log_outcome(outcome, elapsed)
        found = PassProblems()
        for image in result.images.attention():  # one reading, of the images needing attention
            found.add(image)
            if not image.ok:
                log_failure(image)
        for job, outcome in zip(jobs, result.jobs, strict=True):
            self.state.job(job.name).last_pass = PassInfo(
                "schedule",
                started_at,
                round(elapsed, 3),
                outcome.ok,
                outcome.images,
                outcome.failed,
                outcome.error,
                **found.details(job.name, outcome.statuses, outcome.bytes_written),
            )
        pruned = await self._prune(transport, specs)
        # The report is the one reading of every result; the drift check learns from it.
        known = KnownDigests() if self.check_drift and not self.dry_run else None
        written = self._write_report(
            result.images, result.stats, result, pruned, each=known.add if known else None
        )
        await self._check_drift(transport, specs, result.images, known if written else None)
        return result

    def reconciler(self) -> Reconciler:
        return Reconciler(self.state, self.replication)

    async def _prune(self, transport: Transport, specs: list[JobSpec]) -> list[PruneResult]:
        """Prune the jobs of a pass that ask for it (a dry run lists what would go)."""
        if not any(s.prune for s in specs) or self.stop_requested.is_set():
            return []
        every_job = [job_spec(self.config, j) for j in self.config.jobs]
        try:
            self.last_prune = await self.reconciler().prune(
                lambda: self.new_run(transport, discard, dry_run=True), specs, every_job, dry_run=self.dry_run
            )
        except Exception:
            log.exception("prune after a pass failed")
            return []
        return self.last_prune

    async def _check_drift(
        self,
        transport: Transport,
        specs: list[JobSpec],
        images: Sequence[ImageResult],
        known: KnownDigests | None = None,
    ) -> None:
        """The drift check of a pass's jobs; a failure here is logged, never ends the service.
        What the pass's results already tell is ``known`` (fed every result), or looked up only
        when the check runs."""
        if not self.check_drift or self.dry_run or self.stop_requested.is_set():
            return
        found = known.found if known is not None else known_from(images)
        try:
            await self.reconciler().check_drift(
                lambda: self.new_run(transport, discard, dry_run=True), specs, found
            )
        except Exception:
            log.exception("the drift check after a pass failed")

    def event_report(self, result: SyncResult, lags: list[dict[str, Any]]) -> None:
        """After an event-triggered batch: the job's state and the run report, with lags."""
        for outcome in result.jobs:
            self.state.job(outcome.name).last_event_run = PassInfo(
                "event",
                time.time() - result.stats.duration_seconds,
                round(result.stats.duration_seconds, 3),
                outcome.ok,
                outcome.images,
                outcome.failed,
                outcome.error,
            )
        self._write_report(result.images, result.stats, result, [], trigger="event", lags=lags)

    def _write_report(
        self,
        images: Sequence[ImageResult],
        stats: RunStats,
        result: SyncResult,
        pruned: list[PruneResult],
        *,
        trigger: str = "schedule",
        lags: list[dict[str, Any]] | None = None,
        each: Callable[[ImageResult], None] | None = None,
    ) -> bool:
        """Write the run report, if one is asked for (whether it was); ``each`` is handed every
        image as its entry is written."""
        if not self.report_path:
            return False
        jobs = [
            {
                "name": j.name,
                "ok": j.ok,
                "images": j.images,
                "failed": j.failed,
                "deferred": j.deferred,
                "error": j.error,
                "repositories": len(j.repositories),
            }
            for j in result.jobs
        ]
        doc = build_report(
            "sync",
            images,
            stats,
            ok=all(j.failed == 0 for j in result.jobs),  # as counted when each result was kept
            each=each,
            jobs=jobs,
            dry_run=self.dry_run,
            shard=str(self.shard) if self.shard else None,
            trigger=trigger,
            prune=[p.to_dict() for p in pruned],
            lag=lag_summary(e["lag_seconds"] for e in lags or []),
            lags=lags or [],
        )
        write_report(self.report_path, doc, redact=self.redactor.redact)
        return True

    def owns(self, key: str) -> bool:
        """Whether this replica copies the source repository ``key`` (every one when unsharded)."""
        return self.shard is None or not self.shard.sharded or self.shard.owns(key)

    def shard_info(self) -> dict[str, object]:
        keys = sorted({r for repos in self.owned.values() for r in repos})
        if self.shard is None:
            return {"sharded": False, "repositories": keys}
        return describe(self.shard, keys)

    def status(self) -> dict[str, Any]:
        """The status page's document (``/``, ``/status.json``), secrets redacted."""
        owned = (r for repos in self.owned.values() for r in repos)
        return status_document(
            self.state.snapshot(),
            self.jobs,
            self.inflight.snapshot(),
            shard=shard_summary(self.shard, owned),
            version=__version__,
            now=time.time(),
            redact=self.redactor.redact,
        )

    def drift(self, job: str, state: str = "") -> dict[str, Any] | None:
        """Every drift row kept for ``job`` (``/jobs/NAME/drift``), secrets redacted."""
        snapshot = self.state.snapshot()
        return drift_document(snapshot, job, only=state, now=time.time(), redact=self.redactor.redact)

    def request_stop(self) -> None:
        self.stop_requested.set()
        for run in list(self._active):
            run.stop()

    def on_signal(self, sig: signal.Signals) -> None:
        """SIGTERM or SIGINT: stop (a second one: abort what is still moving, now)."""
        if self.stopped_by is None:
            self.stopped_by = sig
            log.warning("%s: stopping; moving blobs may finish within %.0fs", sig.name, self.grace)
            self.request_stop()
            return
        log.warning("%s again: aborting the transfers still moving", sig.name)
        for run in list(self._active):
            run.abort()

    # -- once --------------------------------------------------------------------------------

    def _events(self) -> Fanout:
        sinks: list[EventSink] = [self.progress, self.inflight]
        if self.metrics is not None:
            sinks.insert(0, self.metrics)
        return Fanout(*sinks)

    async def once(self) -> SyncResult:
        """Every job once; SIGTERM/SIGINT stop it as in serve mode (see :func:`wind_down`)."""
        events = self._events()
        ticker = asyncio.create_task(self._log_progress())
        try:
            with on_stop_signals(self.on_signal):
                async with self.transport(events) as transport:
                    work = asyncio.ensure_future(self.run_jobs(transport, events, self.jobs))
                    stop = asyncio.ensure_future(self.stop_requested.wait())
                    await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
                    stop.cancel()
                    await wind_down([work], lambda: self._active, self.grace)
            if work.cancelled():
                result = interrupted_result(self.jobs, self.stopped_by)
                self._write_report([], result.stats, result, [])
                return result
            return work.result()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def verify(self) -> Verification:
        """The drift of every job's destinations against their sources; copies nothing."""
        async with self.transport(self._events()) as transport:
            run = self.new_run(transport, discard, dry_run=True)
            try:
                return await verify_jobs(run, [job_spec(self.config, j) for j in self.jobs])
            finally:
                await run.aclose()

    async def _log_progress(self) -> None:
        """While blobs move, a log line every ``progress_interval`` seconds: long transfers show."""
        while True:
            await asyncio.sleep(self.progress_interval)
            if self.progress.in_flight:
                log.info(
                    "progress: %s",
                    self.progress.render(),
                    extra={
                        "fields": {
                            "bytes_read": self.progress.bytes_read,
                            "in_flight": self.progress.in_flight,
                        }
                    },
                )

    # -- serve -------------------------------------------------------------------------------

    def _event_triggers(self, address: str | None) -> Dispatcher | None:
        """The event dispatcher when ``events:`` is configured (it needs the listener)."""
        cfg = self.config.events
        if cfg is None:
            return None
        if address is None:
            raise _no_listener()
        sharded = self.shard is not None and self.shard.sharded
        if sharded and cfg.peer_url is None:
            raise InputError(
                "events.peer_url is needed with --shard: events for repositories another replica "
                "owns are handed to it, e.g. peer_url: http://mirror-{index}.mirror-peers:9090"
            )
        forwarder = Forwarder(cfg.peer, cfg.token.get_secret_value(), replication=self.replication)
        return Dispatcher(
            [job_spec(self.config, j) for j in self.jobs],
            [job_spec(self.config, j) for j in self.config.jobs],
            state=self.state,
            replication=self.replication,
            shard=self.shard,
            forwarder=forwarder if sharded else None,
            report=self.event_report,
            concurrency=max(1, min(self.config.concurrency, 8)),
            locks=self.locks,
        )

    async def serve(self) -> int:
        from mirror.service.server import HealthServer  # aiohttp.web: only for a listener

        if self.metrics is None:
            self.metrics = new_metrics()
        if self.replication is None:
            from mirror.service.replication import ReplicationMetrics

            self.replication = ReplicationMetrics(self.metrics.registry)
        for job in self.jobs:
            self.replication.job(job.name)
            self.state.job(job.name)
        self.check_drift = True
        events = self._events()
        ticker = asyncio.create_task(self._log_progress())
        address = self.metrics_address or (self.config.metrics.address if self.config.metrics else None)
        self.dispatcher = self._event_triggers(address)
        routes = None
        if self.dispatcher is not None and self.config.events is not None:
            from mirror.service.events import EventEndpoints

            token = self.config.events.token.get_secret_value()
            routes = EventEndpoints(token, self.dispatcher, self.replication).add_routes
        server = None
        if address:
            server = HealthServer(
                self.metrics, address=address, shard_info=self.shard_info, status=self, routes=routes
            )
        install_stop_signals(self.on_signal)
        if server is not None:
            await server.start()
            log.info("serving metrics on %s", server.url, extra={"fields": {"address": server.url}})
        last_start: dict[str, float | None] = {j.name: None for j in self.jobs}
        due: dict[str, float] = {}  # next start per job, computed once per run of that job
        running: dict[str, asyncio.Task[SyncResult]] = {}
        skipping = SkippedSlots(self.state, self.progress)
        async with self.transport(events) as transport:
            if self.dispatcher is not None:
                self.dispatcher.start(lambda: self.new_run(transport, events, dry_run=False))
            if server is not None:
                server.set_ready()
            while not self.stop_requested.is_set():
                now = self.clock()
                for job in self.jobs:
                    if job.name in running:  # still going: its slots are skipped (never queued), visibly
                        skipping.job_busy(job, last_start[job.name], now, self.metrics)
                        continue
                    skipping.job_free(job)
                    if job.name not in due:
                        due[job.name] = next_start(job.schedule.spec, job.name, last_start[job.name], now)
                        self.state.job(job.name).next_pass = due[job.name]
                    if due[job.name] <= now:
                        last_start[job.name] = now
                        del due[job.name]
                        self.state.job(job.name).next_pass = None  # known when this one ends
                        task = asyncio.create_task(self.run_jobs(transport, events, [job]))
                        running[job.name] = task
                        task.add_done_callback(_forget(running, job.name))
                wait = min([t - now for t in due.values()], default=1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), timeout=max(0.05, min(wait, 1.0)))
            log.info(
                "stopping: letting %d running job(s) finish moving blobs (up to %.0fs)",
                len(running),
                self.grace,
            )
            if server is not None:
                server.set_shutting_down()
            pending: list[asyncio.Task[Any]] = list(running.values())
            if self.dispatcher is not None:
                pending.append(asyncio.create_task(self.dispatcher.stop(self.grace)))
            await wind_down(pending, lambda: self._active, self.grace)
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        if server is not None:
            await server.stop()
        log.info("stopped")
        return 0


def _no_listener() -> InputError:
    return InputError(
        "events: the event endpoints are served on the metrics listener; set metrics.address "
        "(or --metrics-address)"
    )


def _forget(running: dict[str, asyncio.Task[SyncResult]], name: str) -> Any:
    def done(_task: asyncio.Task[SyncResult]) -> None:
        running.pop(name, None)

    return done
