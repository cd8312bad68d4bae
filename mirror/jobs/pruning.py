"""Carrying out a prune plan: confirm each deletion against the source, delete, report.

Before a tag is deleted its source tag is looked up once more (HEAD): a tag that is back, or
that was pushed after the listing (a registry may notify a push before its tag lists), is kept.
Every deletion is logged; every tag considered ends as ``deleted``, ``kept`` (with the reason)
``failed`` (with the error), or ``planned`` on a dry run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

from mirror.jobs.prune import SOURCE_FAILED, Deletion, PrunePlan, Refusal, plan_prune, writers
from mirror.jobs.survey import JobSurvey
from mirror.jobs.syncrun import JobSpec
from mirror.registry.untag import DeleteRefused, Untagger
from mirror.types.errors import MirrorError

log = logging.getLogger("mirror")

DELETED, KEPT, FAILED, PLANNED = "deleted", "kept", "failed", "planned"

Lock = Callable[[Deletion], AbstractAsyncContextManager[Any]]
"""Held while one tag is confirmed and deleted (the service's per-image lock)."""


@dataclass
class PruneOutcome:
    destination: str
    tag: str
    outcome: str
    how: str = ""  # tag, digest, api (ECR), gone
    reason: str = ""


@dataclass
class PruneResult:
    job: str
    plan: PrunePlan
    outcomes: list[PruneOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "cap": self.plan.cap,
            "covered_tags": self.plan.covered,
            "candidates": self.plan.candidates,
            "refusals": [r.to_dict() for r in self.plan.refusals],
            "tags": [asdict(o) for o in self.outcomes],
        }


def _no_lock(_deletion: Deletion) -> AbstractAsyncContextManager[Any]:
    return contextlib.nullcontext()


async def prune_job(
    survey: JobSurvey,
    jobs: Sequence[JobSpec],
    *,
    dry_run: bool = False,
    untagger: Untagger | None = None,
    lock: Lock | None = None,
) -> PruneResult:
    """Plan and carry out the prune of ``survey.job`` (``jobs``: every job of the config, to
    find destinations another job also writes into)."""
    job = survey.job
    plan = plan_prune(
        job,
        survey.states,
        survey.covers,
        shared_with=lambda name: writers(jobs, survey.targets[name], besides=job.name),
    )
    if survey.error:
        message = f"the job's repositories could not be listed ({survey.error}); nothing pruned"
        plan.refusals.append(Refusal(job.name, SOURCE_FAILED, str(job.source), message))
    result = PruneResult(job.name, plan)
    for refusal in plan.refusals:
        log.warning(
            "prune of job %s: %s: %s",
            job.name,
            refusal.where,
            refusal.message,
            extra={"fields": {"job": job.name, "reason": refusal.reason}},
        )
    untagger = untagger or Untagger()
    doomed: dict[str, set[str]] = {}
    for deletion in plan.deletions:
        doomed.setdefault(deletion.destination, set()).add(deletion.tag)
    listings = {s.destination: s.dest_listing.tags or frozenset() for s in survey.states}
    for deletion in plan.deletions:
        async with (lock or _no_lock)(deletion):
            kept = sorted(listings.get(deletion.destination, frozenset()) - doomed[deletion.destination])
            outcome = await _delete(survey, deletion, kept, untagger, dry_run)
        result.outcomes.append(outcome)
        _log(job.name, deletion, outcome)
    return result


async def _delete(
    survey: JobSurvey, deletion: Deletion, kept: list[str], untagger: Untagger, dry_run: bool
) -> PruneOutcome:
    outcome = PruneOutcome(deletion.destination, deletion.tag, KEPT)
    source, dest = survey.repos[deletion.source], survey.repos[deletion.destination]
    try:
        back = await source.head_manifest(deletion.tag)
    except MirrorError as exc:
        outcome.reason = f"the source could not confirm the tag is gone: {exc.message}"
        return outcome
    if back is not None:
        outcome.reason = f"the source has {deletion.tag} again ({back.digest})"
        return outcome
    if dry_run:
        outcome.outcome, outcome.reason = PLANNED, "its source tag is gone"
        return outcome
    try:
        outcome.how = await untagger.delete(dest, deletion.tag, kept=kept)
        outcome.outcome, outcome.reason = DELETED, "its source tag is gone"
    except DeleteRefused as exc:
        outcome.reason = exc.message
    except MirrorError as exc:
        outcome.outcome, outcome.reason = FAILED, exc.message
    return outcome


def _log(job: str, deletion: Deletion, outcome: PruneOutcome) -> None:
    fields = {
        "job": job,
        "destination": deletion.destination,
        "tag": deletion.tag,
        "outcome": outcome.outcome,
    }
    where = f"{deletion.destination}:{deletion.tag}"
    if outcome.outcome == DELETED:
        log.info("pruned %s: its source tag is gone", where, extra={"fields": {**fields, "how": outcome.how}})
    elif outcome.outcome == PLANNED:
        log.info("would prune %s: its source tag is gone", where, extra={"fields": fields})
    elif outcome.outcome == FAILED:
        log.error("prune of %s failed: %s", where, outcome.reason, extra={"fields": fields})
    else:
        log.warning("kept %s: %s", where, outcome.reason, extra={"fields": fields})
