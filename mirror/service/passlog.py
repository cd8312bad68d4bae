"""What the service logs of a pass: a line per job, then a warning per image that is not ok
(the lines :func:`~mirror.jobs.report.summary_lines` gives it)."""

from __future__ import annotations

import logging
from typing import Any

from mirror.copy.results import ImageResult, RunStats
from mirror.jobs.report import summary_lines
from mirror.jobs.syncrun import JobOutcome

log = logging.getLogger("mirror")


def log_outcome(outcome: JobOutcome, elapsed: float) -> None:
    """The line of one job's pass: its images, failures and deferrals, or its error."""
    fields: dict[str, Any] = {
        "job": outcome.name,
        "ok": outcome.ok,
        "images": outcome.images,
        "failed": outcome.failed,
        "deferred": outcome.deferred,
        "seconds": round(elapsed, 3),
    }
    if outcome.error:
        fields["error"] = outcome.error
        log.error("job %s failed: %s", outcome.name, outcome.error, extra={"fields": fields})
        return
    log.info(
        "job %s: %d images, %d failed%s",
        outcome.name,
        outcome.images,
        outcome.failed,
        f", {outcome.deferred} deferred to a later pass" if outcome.deferred else "",
        extra={"fields": fields},
    )


def log_failure(image: ImageResult) -> None:
    """The warnings of an image that is not ok: what failed, where, and why."""
    for line in summary_lines([image], RunStats())[:-1]:
        log.warning(line, extra={"fields": {"job": image.job, "status": image.status}})
