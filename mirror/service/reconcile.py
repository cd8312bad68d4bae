"""After a pass: measure the drift of its jobs (serve mode) and prune where a job asks for it.

The drift check is ``mirror verify`` for the jobs of the pass: its counts become the
``mirror_drift_images`` gauge and the job's state, and a job with drift gets a log line. It
reads both sides again (one listing per repository, one HEAD per tag on each side), so it runs
in serve mode only, where something reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from mirror.jobs.drift import IN_SYNC
from mirror.jobs.survey import Verification, verify_jobs
from mirror.jobs.syncrun import JobSpec, SyncRun
from mirror.service.replication import ReplicationMetrics
from mirror.service.state import ServiceState

log = logging.getLogger("mirror")


class Reconciler:
    def __init__(self, state: ServiceState, replication: ReplicationMetrics | None = None) -> None:
        self.state = state
        self.replication = replication

    async def check_drift(self, new_run: Callable[[], SyncRun], jobs: Sequence[JobSpec]) -> Verification:
        """Verify ``jobs`` and publish their counts."""
        run = new_run()
        try:
            result = await verify_jobs(run, jobs)
        finally:
            await run.aclose()
        now = time.time()
        for name, found in result.jobs.items():
            job_state = self.state.job(name)
            job_state.drift, job_state.drift_at = dict(found), now
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
