"""Prune: which destination tags a pass deletes, and why it deletes nothing. Pure, but
for resolving a layout directory's path (:mod:`.places`) to see two spellings of it as one.

A job with ``prune: true`` deletes the destination tags it covers whose source tag is gone (the
*extras* of :mod:`.drift`). The guard rails, each a :class:`Refusal` with its reason:

- ``source_failed`` / ``source_empty``: a source repository whose listing failed or came back
  empty prunes nothing in its destinations (an outage or a wiped repository must not empty the
  copy that disaster recovery relies on);
- ``destination_failed``: a destination that could not be listed;
- ``shared_destination``: a destination repository another job may also write into (its tags
  are not this job's to judge);
- ``over_cap``: more deletions than ``prune_max`` (by default 10% of the job's covered
  destination tags, rounded up) in one pass: the pass deletes nothing and says so.

:func:`plan_prune` only decides; :mod:`.pruning` confirms each deletion against the source and
performs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mirror.jobs.drift import RepoState, extras
from mirror.jobs.mapping import SourceKind, map_repository
from mirror.jobs.places import host_place, layout_path, store_and_path
from mirror.jobs.syncrun import JobSpec
from mirror.types.reference import Ref

DEFAULT_SHARE = 0.10  # of a job's covered destination tags, per pass, when prune_max is unset

SOURCE_FAILED = "source_failed"
SOURCE_EMPTY = "source_empty"
DESTINATION_FAILED = "destination_failed"
SHARED_DESTINATION = "shared_destination"
OVER_CAP = "over_cap"


@dataclass(frozen=True)
class Deletion:
    job: str
    source: str  # source repository (display name)
    destination: str  # destination repository (display name)
    tag: str


@dataclass(frozen=True)
class Refusal:
    job: str
    reason: str
    where: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PrunePlan:
    job: str
    cap: int
    covered: int  # destination tags the job covers, over its destination repositories
    deletions: list[Deletion] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    candidates: int = 0  # extras found where no guard rail held

    @property
    def stopped(self) -> bool:
        """True when the cap stopped the whole pass."""
        return any(r.reason == OVER_CAP for r in self.refusals)


def default_cap(covered: int) -> int:
    """10% of the covered destination tags, rounded up (one tag of a small repository may go)."""
    return math.ceil(covered * DEFAULT_SHARE)


def plan_prune(
    job: JobSpec,
    states: Iterable[RepoState],
    covers: Callable[[str], bool],
    shared_with: Callable[[str], Sequence[str]] = lambda _target: (),
) -> PrunePlan:
    """The deletions of one pass of ``job`` over what was read of it (``states``).

    ``shared_with(target)`` names the other jobs that may write into a destination repository
    (``target`` is :attr:`RepoState.destination`)."""
    states = list(states)
    covered = sum(
        sum(1 for tag in s.dest_listing.tags or () if covers(tag)) for s in states if s.dest_listing.ok
    )
    cap = job.prune_max if job.prune_max is not None else default_cap(covered)
    plan = PrunePlan(job.name, cap, covered)
    found: list[Deletion] = []
    for state in states:
        where = f"{state.source} -> {state.destination}"
        listing = state.source_listing
        if listing is None:
            continue  # one image: nothing can be gone
        if not listing.ok:
            plan.refusals.append(
                Refusal(
                    job.name,
                    SOURCE_FAILED,
                    where,
                    f"the source listing failed ({listing.error}); nothing pruned",
                )
            )
            continue
        if not listing.tags:
            plan.refusals.append(
                Refusal(job.name, SOURCE_EMPTY, where, "the source listing came back empty; nothing pruned")
            )
            continue
        if not state.dest_listing.ok:
            message = f"the destination listing failed ({state.dest_listing.error}); nothing pruned"
            plan.refusals.append(Refusal(job.name, DESTINATION_FAILED, where, message))
            continue
        gone = extras(state, covers)
        others = list(shared_with(state.destination))
        if gone and others:
            message = (
                f"{len(gone)} tag(s) without a source tag, but job(s) {', '.join(others)} may also write "
                f"into {state.destination}; nothing pruned there (give each job its own destination)"
            )
            plan.refusals.append(Refusal(job.name, SHARED_DESTINATION, where, message))
            continue
        found.extend(Deletion(job.name, state.source, state.destination, tag) for tag in gone)
    plan.candidates = len(found)
    if len(found) > cap:
        setting = "prune_max" if job.prune_max is not None else "the default cap, 10% of the covered tags"
        plan.refusals.append(
            Refusal(
                job.name,
                OVER_CAP,
                job.name,
                f"{len(found)} destination tags have no source tag, over the limit of {cap} per pass "
                f"({setting}, of {covered}); nothing deleted. Check the source; if the deletions are "
                f"wanted, set prune_max: {len(found)} for one pass",
            )
        )
        return plan
    plan.deletions = found
    return plan


# -- who else writes into a destination repository ---------------------------------------------


def may_write(job: JobSpec, target: Ref) -> bool:
    """Whether ``job`` could write into the destination repository ``target``."""
    store, path = store_and_path(target)
    for dest in job.destinations:
        if job.source.kind is SourceKind.PREFIX:
            root = (layout_path(dest.scheme, dest.path) if dest.scheme else dest.path).rstrip("/")
            if (host_place(dest.host) if dest.host else f"{dest.scheme}:") == store and (
                not root or path.startswith(root + "/")
            ):
                return True
        elif store_and_path(map_repository(job.source, job.source.path, dest)) == (store, path):
            return True
    return False


def writers(jobs: Iterable[JobSpec], target: Ref, *, besides: str) -> list[str]:
    """The jobs other than ``besides`` that could write into ``target``."""
    return [job.name for job in jobs if job.name != besides and may_write(job, target)]
