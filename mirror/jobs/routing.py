"""Which jobs an event concerns, and what each should do about it. Pure.

A :class:`~.triggers.Notice` concerns a job when the job's source is on the same registry,
covers the repository, and (for a push) its tag filter allows the tag. What the job then does:

- ``copy``: the image, read by the digest the event names (a registry may notify a push before
  the tag is visible, so a read by tag could miss it or find the previous image) and written
  under the event's tag; the copy re-reads the source, and when the source tag has moved on
  meanwhile, follows the source;
- ``refresh``: for a job whose filter keeps the newest N versions, whether a new tag is among
  them depends on the others, and a referrers fallback tag (``sha256-<hex>.sig``) is copied with
  its subject only if the job copies the subject: the repository is planned as a pass would
  plan it;
- ``prune``: a deletion only triggers the job's prune check of that repository (jobs without
  ``prune: true`` ignore deletions).

OCI layout sources never receive events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mirror.jobs.mapping import SourceKind
from mirror.jobs.selection import FALLBACK_TAG, covers_tag
from mirror.jobs.syncrun import JobSpec, ownership_key
from mirror.jobs.triggers import DELETE, Notice

COPY, REFRESH, PRUNE = "copy", "refresh", "prune"


@dataclass(frozen=True)
class Route:
    job: str
    repository: str  # the source repository path, as the job's planning names it
    mode: str  # copy, refresh or prune
    read: str = ""  # copy: the digest (or tag) to read
    write: str = ""  # copy: the destination reference (tag, or digest for a digest-pinned job)
    time: float | None = None  # the push time the event carried
    key: str = ""  # the shard ownership key of the source repository


def route(notice: Notice, jobs: Sequence[JobSpec]) -> list[Route]:
    """What each job that ``notice`` concerns should do (empty: no job covers it)."""
    routes = []
    for job in jobs:
        found = _route(notice, job)
        if found is not None:
            routes.append(found)
    return routes


def _route(notice: Notice, job: JobSpec) -> Route | None:
    spec = job.source
    if spec.scheme or spec.host != notice.host or not spec.covers(notice.repository):
        return None
    key = ownership_key(spec, notice.repository)
    base = Route(job.name, notice.repository, COPY, time=notice.time, key=key)
    if notice.action == DELETE:
        if spec.kind is SourceKind.IMAGE or not job.prune:
            return None
        if notice.tag is not None and not covers_tag(notice.tag, job.tag_filter, job.referrers):
            return None
        return Route(job.name, notice.repository, PRUNE, time=notice.time, key=key)
    if spec.kind is SourceKind.IMAGE:
        if spec.digest is not None:
            if notice.digest != str(spec.digest):
                return None
            return _replace(base, read=str(spec.digest), write=spec.tag or str(spec.digest))
        if notice.tag != spec.tag or spec.tag is None:
            return None
        return _replace(base, read=notice.digest or spec.tag, write=spec.tag)
    if notice.tag is None or not covers_tag(notice.tag, job.tag_filter, job.referrers):
        return None
    if job.tag_filter.latest is not None or (job.referrers and FALLBACK_TAG.match(notice.tag)):
        # The newest N depend on the other tags; a referrers fallback tag follows its subject
        # only when the subject is one the job copies: plan the repository as a pass would.
        return _replace(base, mode=REFRESH, write=notice.tag)
    return _replace(base, read=notice.digest or notice.tag, write=notice.tag)


def _replace(route: Route, **changes: Any) -> Route:
    return dataclasses.replace(route, **changes)
