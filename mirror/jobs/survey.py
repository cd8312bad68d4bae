"""Reading both sides of a job, copying nothing: the input of drift reports and prune.

:func:`survey_job` lists each source repository of a job (a prefix's through the catalog), picks
what the job copies from it (:mod:`.selection`), lists each destination repository, and looks up
the digest of every reference on both sides (HEAD; for a job with ``platforms``, the source index
is read and filtered, since the filtered index is what the destination holds). A destination
repository that does not exist lists as empty. Failures are kept as values (:class:`.drift.Listing`,
:class:`.drift.Lookup`), never raised: a report has a row for each.

Requests: one listing per repository on each side, one HEAD per reference on each side (plus a
GET per multi-platform source image when the job filters platforms), and, for a job with
``referrers``, one or two HEADs per referrers tag only the destination has (is its subject still
there?).

``whole`` (``mirror verify``): every image an ``oci:`` or ``s3://`` layout destination holds at
the right digest is also walked (:func:`~mirror.registry.completeness.missing_content`: its
manifests and each blob with its size), since a layout can lose files behind mirror's back; what
it lacks makes the row ``incomplete``. A registry refuses such a manifest itself, and a pass
writes a layout tag only over complete content, so the check after a pass does not walk.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mirror.copy.results import COPIED, SKIPPED, ImageResult
from mirror.jobs.drift import (
    SOURCE_UNREADABLE,
    DriftEntry,
    Listing,
    Lookup,
    Pair,
    RepoState,
    claimed_elsewhere,
    classify,
    counts,
    extras,
    in_sync,
)
from mirror.jobs.mapping import SourceKind, map_repository
from mirror.jobs.selection import covers_tag, select_references
from mirror.jobs.syncrun import JobSpec, SyncRun
from mirror.registry.base import Repository
from mirror.registry.completeness import missing_content
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError, NotFound
from mirror.types.manifest import filter_index, parse_manifest
from mirror.types.reference import LayoutRef, Ref
from mirror.types.referrers import is_referrers_tag, subject_of_tag

LOOKUPS = 16  # manifest lookups in flight per survey


@dataclass
class JobSurvey:
    """What was read for one job: a state per (source repository, destination repository)."""

    job: JobSpec
    states: list[RepoState] = field(default_factory=list)
    error: str = ""  # the job's repositories could not be listed (a prefix's catalog)
    targets: dict[str, Ref] = field(default_factory=dict)  # destination display name -> reference
    repos: dict[str, Repository] = field(default_factory=dict)  # display name -> store, both sides

    def covers(self, tag: str) -> bool:
        return job_covers(self.job, tag)


def job_covers(job: JobSpec, tag: str) -> bool:
    """Whether a destination tag is one ``job`` could copy (see :func:`.selection.covers_tag`);
    a job whose source names one image covers no other tag."""
    if job.source.kind is SourceKind.IMAGE:
        return False
    return covers_tag(tag, job.tag_filter, job.referrers)


async def survey_job(
    run: SyncRun,
    job: JobSpec,
    *,
    repositories: Sequence[str] | None = None,
    digests: bool = True,
    known: Known | None = None,
    whole: bool = False,
) -> JobSurvey:
    """Read both sides of ``job`` (its ``repositories``, by default every one it covers here).

    ``digests=False`` only lists tags (enough to find extra destination tags). ``known`` holds
    lookups already made (by the pass that just ran, see :func:`known_from`): those references
    are not looked up again, and extra tags are not looked up at all. ``whole``: walk what layout
    destinations hold at the right digest (see the module docs)."""
    survey = JobSurvey(job)
    if repositories is None:
        try:
            repositories = await run.source_repositories(job)
        except MirrorError as exc:
            survey.error = exc.message
            return survey
    limit = asyncio.Semaphore(LOOKUPS)
    for repo_path in repositories:
        found = await _survey_repository(run, survey, repo_path, limit, digests, known)
        if whole:
            found = [await _walk_layouts(survey, state, limit) for state in found]
        survey.states.extend(found)
    return survey


async def _listing(repo: Repository, limit: asyncio.Semaphore, *, missing_is_empty: bool) -> Listing:
    try:
        async with limit:
            return Listing(frozenset(await repo.list_tags()))
    except NotFound as exc:
        return Listing(frozenset()) if missing_is_empty else Listing(None, exc.message)
    except MirrorError as exc:
        return Listing(None, exc.message)


async def _lookup(
    limit: asyncio.Semaphore, call: Callable[..., Awaitable[str | None]], *args: object
) -> Lookup:
    try:
        async with limit:
            return Lookup(await call(*args))
    except MirrorError as exc:
        return Lookup(None, exc.message)


async def _survey_repository(
    run: SyncRun,
    survey: JobSurvey,
    repo_path: str,
    limit: asyncio.Semaphore,
    digests: bool,
    known: Known | None,
) -> list[RepoState]:
    job = survey.job
    spec = job.source
    if spec.kind is SourceKind.IMAGE:
        source = run.repository(spec.repository_ref())
        reference = spec.image_ref().reference
        pairs: tuple[Pair, ...] = (Pair(reference, spec.tag or reference),)
        source_listing: Listing | None = None
    else:
        source = run.repository(spec.repository_ref(repo_path if spec.kind is SourceKind.PREFIX else None))
        # A repository the catalog lists without a tag has nothing to copy (as a pass sees it).
        source_listing = await _listing(source, limit, missing_is_empty=spec.kind is SourceKind.PREFIX)
        chosen = select_references(source_listing.tags or (), job.tag_filter)
        pairs = tuple(Pair(tag, tag) for tag in chosen)
    survey.repos[source.name] = source
    source_digests: dict[str, Lookup] = {}
    if digests:
        found = await asyncio.gather(
            *(
                _known(known, source.name, p.source) or _lookup(limit, _expected, source, p.source, job)
                for p in pairs
            )
        )
        source_digests = {p.source: f for p, f in zip(pairs, found, strict=True)}
    states = []
    for dest_spec in job.destinations:
        target = map_repository(spec, repo_path, dest_spec)
        dest = run.repository(target)
        survey.targets[dest.name] = target
        survey.repos[dest.name] = dest
        dest_listing = await _listing(dest, limit, missing_is_empty=True)
        kept = await _kept_referrers_tags(job, source, dest, source_listing, dest_listing, limit)
        dest_digests: dict[str, Lookup] = {}
        expected = dict(source_digests)
        state = RepoState(job.name, source.name, dest.name, pairs, source_listing, dest_listing, kept=kept)
        if digests:
            refs = {p.destination for p in pairs}
            if known is None:
                refs |= set(extras(state, lambda t: job_covers(job, t)))
            found = await asyncio.gather(
                *(_known(known, dest.name, r) or _lookup(limit, _digest_of, dest, r) for r in sorted(refs))
            )
            dest_digests = dict(zip(sorted(refs), found, strict=True))
            await _same_bytes(source, pairs, expected, dest_digests, limit)
        states.append(dataclasses.replace(state, source_digests=expected, dest_digests=dest_digests))
    return states


async def _kept_referrers_tags(
    job: JobSpec,
    source: Repository,
    dest: Repository,
    source_listing: Listing | None,
    dest_listing: Listing,
    limit: asyncio.Semaphore,
) -> frozenset[str]:
    """The destination's referrers tags (``sha256-<hex>``) the source does not have whose subject
    is still present, at the destination or at the source: mirror keeps them itself on a store
    without the referrers API (:mod:`mirror.types.referrers`), so they are no extras, and prune
    leaves them. A subject that cannot be looked up, or told from its tag, counts as present."""
    if not job.referrers or source_listing is None or not source_listing.ok or not dest_listing.ok:
        return frozenset()
    assert source_listing.tags is not None and dest_listing.tags is not None
    candidates = sorted(t for t in dest_listing.tags - source_listing.tags if is_referrers_tag(t))

    async def present(tag: str) -> bool:
        subject = subject_of_tag(tag)
        if subject is None:
            return True
        for repo in (dest, source):
            found = await _lookup(limit, _digest_of, repo, str(subject))
            if found.error or found.digest is not None:
                return True
        return False

    found = await asyncio.gather(*(present(tag) for tag in candidates))
    return frozenset(tag for tag, keep in zip(candidates, found, strict=True) if keep)


async def _walk_layouts(survey: JobSurvey, state: RepoState, limit: asyncio.Semaphore) -> RepoState:
    """``state`` with what its layout destination lacks of each image it holds at the right digest."""
    if not isinstance(survey.targets.get(state.destination), LayoutRef):
        return state
    dest = survey.repos[state.destination]
    held = [
        p.destination
        for p in state.pairs
        if (want := state.source_digests.get(p.source)) is not None
        and want.digest is not None
        and (have := state.dest_digests.get(p.destination)) is not None
        and have.digest == want.digest
    ]

    async def walk(reference: str) -> tuple[str, ...]:
        async with limit:
            return tuple(await missing_content(dest, reference))

    gaps = await asyncio.gather(*(walk(reference) for reference in held))
    return dataclasses.replace(state, dest_gaps={r: g for r, g in zip(held, gaps, strict=True) if g})


Known = Mapping[tuple[str, str], Lookup]
"""Lookups already made: (repository display name, reference) -> what was found."""


def _known(known: Known | None, repository: str, reference: str) -> Awaitable[Lookup] | None:
    found = None if known is None else known.get((repository, reference))
    return None if found is None else _ready(found)


async def _ready(found: Lookup) -> Lookup:
    return found


def known_from(images: Iterable[ImageResult]) -> dict[tuple[str, str], Lookup]:
    """What a pass's results say of each image: the digest its source gives (after a platform
    filter) and, where it was copied or found equal, the digest each destination now holds.
    Conflicts, failures and unreadable sources are left out (looked up again)."""
    known = KnownDigests()
    for image in images:
        known.add(image)
    return known.found


class KnownDigests:
    """:func:`known_from`, one image at a time (fed by another reading of the results)."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], Lookup] = {}

    def add(self, image: ImageResult) -> None:
        if image.error or not image.digest:
            return
        self.found[_split(image.source)] = Lookup(image.digest)
        for dest in image.destinations:
            if dest.status in (COPIED, SKIPPED):
                self.found[_split(dest.destination)] = Lookup(image.digest)


def _split(display: str) -> tuple[str, str]:
    """``repo:tag`` / ``repo@digest`` (as the engine displays them) into (repo, reference)."""
    if "@" in display:
        name, _, reference = display.rpartition("@")
    else:
        name, _, reference = display.rpartition(":")
    return name, reference


async def _digest_of(repo: Repository, reference: str) -> str | None:
    info = await repo.head_manifest(reference)
    return str(info.digest) if info is not None else None


async def _expected(source: Repository, reference: str, job: JobSpec) -> str | None:
    """The digest the job writes for ``reference``: the source's, or its filtered index's."""
    info = await source.head_manifest(reference)
    if info is None:
        return None
    if not job.platforms or not mt.is_index(info.media_type):
        return str(info.digest)
    fetched = await source.get_manifest(str(info.digest))
    top = parse_manifest(fetched.raw, fetched.media_type, digest=info.digest)
    return str(filter_index(top, list(job.platforms)).digest) if top.is_index else str(top.digest)


async def _same_bytes(
    source: Repository,
    pairs: Sequence[Pair],
    source_digests: dict[str, Lookup],
    dest_digests: dict[str, Lookup],
    limit: asyncio.Semaphore,
) -> None:
    """Where the two sides name a manifest with different algorithms (sha512 / sha256), compare
    the source's bytes under the destination's algorithm, as a pass does."""
    for pair in pairs:
        want, have = source_digests.get(pair.source), dest_digests.get(pair.destination)
        if not want or not have or not want.digest or not have.digest:
            continue
        want_d, have_d = Digest.parse(want.digest), Digest.parse(have.digest)
        if want_d.algorithm == have_d.algorithm:
            continue
        try:
            async with limit:
                fetched = await source.get_manifest(want.digest)
        except MirrorError:
            continue
        if Digest.of(fetched.raw, have_d.algorithm) == have_d:
            source_digests[pair.source] = Lookup(have.digest)


@dataclass
class Verification:
    """The drift of several jobs: rows, and counts per job and state."""

    rows: list[DriftEntry] = field(default_factory=list)
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)
    surveys: list[JobSurvey] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # job -> why its repositories are unknown

    @property
    def ok(self) -> bool:
        return in_sync(self.rows)


async def verify_jobs(
    run: SyncRun, jobs: Sequence[JobSpec], known: Known | None = None, *, whole: bool = True
) -> Verification:
    """Survey every job and classify what was read. A destination tag that another job (or
    another source of the same job) of this verification copies is not counted as extra.
    ``known``, ``whole``: see :func:`survey_job` (the check after a pass passes ``whole=False``)."""
    surveys = [await survey_job(run, job, known=known, whole=whole) for job in jobs]
    states = [state for survey in surveys for state in survey.states]
    claimed = claimed_elsewhere(states)
    result = Verification(surveys=surveys)
    for survey in surveys:
        rows: list[DriftEntry] = []
        if survey.error:
            where = str(survey.job.source)
            rows.append(DriftEntry(survey.job.name, SOURCE_UNREADABLE, where, "", error=survey.error))
            result.errors[survey.job.name] = survey.error
        for state in survey.states:

            def covers(tag: str, state: RepoState = state, survey: JobSurvey = survey) -> bool:
                return survey.covers(tag) and not claimed(state, tag)

            rows.extend(classify(state, covers))
        result.rows.extend(rows)
        result.jobs[survey.job.name] = counts(rows)
    return result
