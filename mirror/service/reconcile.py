"""After a pass: prune where a job asks for it, and measure the drift of its jobs (serve mode).

Prune (``prune: true``) reads both sides of the job again (listings only), decides with
:func:`mirror.jobs.prune.plan_prune` and deletes with :func:`mirror.jobs.pruning.prune_job`; the
results go to the run report, the job's state and the ``mirror_pruned_tags`` counters.

The drift check is ``mirror verify`` for the jobs of the pass: its counts become the
``mirror_drift_images`` gauge and the job's state (with the rows not in sync, for the status
page), and a job with drift gets a log line. It takes what the pass learnt of each image
(:func:`mirror.jobs.survey.known_from`) and adds one tag listing per repository on each side (and
a HEAD for what the pass could not settle); it runs in serve mode only, where something reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mirror.jobs.drift import IN_SYNC, DriftEntry
from mirror.jobs.pruning import DELETED, FAILED, KEPT, Lock, PruneResult, prune_job
from mirror.jobs.survey import Known, Verification, survey_job, verify_jobs
from mirror.jobs.syncrun import JobSpec, SyncRun
from mirror.service.state import DRIFT_ROWS_KEPT, ServiceState

if TYPE_CHECKING:  # prometheus_client: only when metrics are served
    from mirror.service.replication import ReplicationMetrics

log = logging.getLogger("mirror")


class Reconciler:
    def __init__(self, state: ServiceState, replication: ReplicationMetrics | None = None) -> None:
        self.state = state
        self.replication = replication

    async def prune(
        self,
        new_run: Callable[[], SyncRun],
        jobs: Sequence[JobSpec],
        every_job: Sequence[JobSpec],
        *,
        dry_run: bool = False,
        repositories: Sequence[str] | None = None,
        lock: Lock | None = None,
    ) -> list[PruneResult]:
        """Prune each job of ``jobs`` that asks for it (``repositories``: only these source
        repositories, as a deletion event asks); ``every_job``: the config's, to find shared
        destinations."""
        results: list[PruneResult] = []
        wanted = [job for job in jobs if job.prune]
        if not wanted:
            return results
        run = new_run()
        try:
            for job in wanted:
                survey = await survey_job(run, job, repositories=repositories, digests=False)
                result = await prune_job(survey, every_job, dry_run=dry_run, lock=lock)
                results.append(result)
                self._record(result, dry_run)
        finally:
            await run.aclose()
        return results

    def _record(self, result: PruneResult, dry_run: bool) -> None:
        self.state.job(result.job).last_prune = {"at": time.time(), "dry_run": dry_run, **result.to_dict()}
        if self.replication is None or dry_run:
            return
        for outcome in (DELETED, KEPT, FAILED):
            if n := result.count(outcome):
                self.replication.pruned.labels(job_name=result.job, outcome=outcome).inc(n)
        for refusal in result.plan.refusals:
            self.replication.prune_refusals.labels(job_name=result.job, reason=refusal.reason).inc()

    async def check_drift(
        self, new_run: Callable[[], SyncRun], jobs: Sequence[JobSpec], known: Known | None = None
    ) -> Verification:
        """Verify ``jobs`` and publish their counts (``known``: what the pass learnt)."""
        run = new_run()
        try:
            result = await verify_jobs(run, jobs, known, whole=False)  # a pass writes whole tags
        finally:
            await run.aclose()
        now = time.time()
        off: dict[str, list[DriftEntry]] = {}
        for row in result.rows:
            if row.state != IN_SYNC:
                off.setdefault(row.job, []).append(row)
        for name, found in result.jobs.items():
            job_state = self.state.job(name)
            job_state.drift, job_state.drift_at = dict(found), now
            rows = off.get(name, [])
            job_state.drift_rows = [row.to_dict() for row in rows[:DRIFT_ROWS_KEPT]]
            job_state.drift_rows_total = len(rows)
            if self.replication is not None:
                self.replication.set_drift(name, found, now)
            drifted = {state: n for state, n in found.items() if n and state != IN_SYNC}
            if drifted:
                log.warning(
                    "job %s drifts: %s",
                    name,
                    ", ".join(f"{n} {state}" for state, n in drifted.items()),
                    extra={"fields": {"job": name, **drifted}},
                )
        return result
