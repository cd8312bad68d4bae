"""One sync run: expand jobs into image copies, run them through one engine, report.

A pass lists each job's source repositories (the catalog), then plans them in order (tag list,
filters, destination mapping) and hands the copies to a single :class:`CopyEngine` in batches
of about a thousand images, a few at a time (:mod:`mirror.jobs.batches`): a blob shared by many
images, jobs or destinations is still read from its source once, and memory follows what is in
flight, not the size of the pass (what a pass keeps of an image is its result). A pass of fewer
images is one batch. A job whose planning fails is reported and the other jobs go on; a failing image never
stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.manifestmemo import ManifestMemo
from mirror.copy.results import ImageResult, RunStats
from mirror.copy.stall import DEFAULT_STALL_TIMEOUT
from mirror.jobs.batches import PassBatches
from mirror.jobs.config import Config, Job
from mirror.jobs.filters import TagFilter
from mirror.jobs.imagelocks import Held, ImageLocks, Key
from mirror.jobs.mapping import DestinationSpec, SourceKind, SourceSpec, map_repository
from mirror.jobs.referrers import copy_referrers
from mirror.jobs.report import brief
from mirror.jobs.resultlog import ImageResults
from mirror.jobs.selection import select_references
from mirror.jobs.stores import close_stores, open_repository, store_requests
from mirror.registry.base import Repository
from mirror.registry.distribution import list_catalog
from mirror.registry.profiles import RegistryProfile, profile_for
from mirror.registry.pulls import PullBudgets
from mirror.transport.client import Transport
from mirror.types.errors import MirrorError, NotFound
from mirror.types.events import EventSink, discard
from mirror.types.manifest import Platform
from mirror.types.reference import ImageRef, LayoutRef, Ref

log = logging.getLogger("mirror")

PLAN_CONCURRENCY = 16  # repositories whose tags are listed at the same time
ERRORS_SHOWN = 5  # repositories a job's error names (then how many more)


@dataclass(frozen=True)
class JobSpec:
    """What one job asks for, already validated."""

    name: str
    source: SourceSpec
    destinations: tuple[DestinationSpec, ...]
    tag_filter: TagFilter = field(default_factory=TagFilter)
    platforms: tuple[Platform, ...] = ()
    referrers: bool = False
    overwrite: bool = False
    create_repositories: bool = False  # create destination repositories where the registry needs it
    oci_media_types: bool = False  # layout destinations get OCI media types (new digests)
    max_blob_sizes: tuple[tuple[str, int], ...] = ()  # (host, bytes) for destinations
    prune: bool = False  # delete covered destination tags whose source tag is gone
    prune_max: int | None = None  # deletions allowed per pass; None: 10% of the destination tags


@dataclass
class JobOutcome:
    name: str
    images: int = 0
    failed: int = 0
    deferred: int = 0  # left for a later pass (the source's pull limit is spent); not failures
    error: str = ""
    error_kind: str = ""
    repositories: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)  # images by status, as first met
    bytes_written: int = 0  # to the job's destinations

    @property
    def ok(self) -> bool:
        return not self.error and self.failed == 0


@dataclass
class SyncResult:
    jobs: list[JobOutcome]
    images: ImageResults
    stats: RunStats

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.jobs)


def job_spec(config: Config, job: Job) -> JobSpec:
    """What a configured job asks of a run, with the size limits of its destination registries."""
    limits = tuple(
        (dest.host, config.registry(dest.host).max_blob_size or 0)
        for dest in job.destinations
        if not dest.scheme and config.registry(dest.host).max_blob_size
    )
    return JobSpec(
        name=job.name,
        source=job.source,
        destinations=tuple(job.destinations),
        tag_filter=job.tag_filter,
        platforms=tuple(job.platforms),
        referrers=job.referrers,
        overwrite=job.overwrite,
        create_repositories=job.create_repositories,
        oci_media_types=job.oci_media_types,
        max_blob_sizes=limits,
        prune=job.prune,
        prune_max=job.prune_max,
    )


class SyncRun:
    """Plans and runs jobs over one transport; repositories are shared for the whole run.

    ``owns`` (a source repository's :func:`ownership_key` -> bool) limits the run to the
    repositories this replica owns when the service is sharded. ``profiles`` gives each
    registry host's profile (the config's; by default the one the host name says). With
    ``locks``, an image is copied by one run at a time (see :mod:`.imagelocks`). ``memo``: the
    verified manifests a daemon keeps across its passes (by default, this run's own)."""

    def __init__(
        self,
        transport: Transport,
        *,
        events: EventSink = discard,
        transfers: int = 8,
        owns: Callable[[str], bool] | None = None,
        dry_run: bool = False,
        s3_settings: Callable[[str], Mapping[str, Any]] | None = None,
        profiles: Callable[[str], RegistryProfile] = profile_for,
        locks: ImageLocks | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        memo: ManifestMemo | None = None,
    ) -> None:
        self.transport = transport
        self.locks = locks
        self.s3_settings = s3_settings
        self.profiles = profiles
        self.events = events
        self.owns = owns
        self.engine = CopyEngine(
            events=events, transfers=transfers, dry_run=dry_run, stall_timeout=stall_timeout, memo=memo
        )
        self._repos: dict[str, Repository] = {}
        self._layouts: set[str] = set()  # names of the repositories that are OCI layouts
        self._ensured: dict[str, asyncio.Future[bool]] = {}  # what ensure_repository made, by key
        self.pulls = PullBudgets(events=events)  # Docker Hub's pull limit, for this pass
        self._listed_tags: dict[str, list[str]] = {}  # HOST/PATH -> tags, from a registry API listing
        # HOST/PATH -> tag -> digest, where that listing named the digest: read by it (a snapshot,
        # as a HEAD made at listing time would be; a later move is the next pass's)
        self._listed_digests: dict[str, dict[str, str]] = {}

    def repository(self, ref: Ref, *, create: bool = False, max_blob_size: int | None = None) -> Repository:
        key = str(ref)
        repo = self._repos.get(key)
        if repo is None:
            s3 = None
            if self.s3_settings and isinstance(ref, LayoutRef) and ref.scheme == "s3":
                s3 = self.s3_settings(ref.location)
            profile = self.profiles(ref.host) if isinstance(ref, ImageRef) else None
            repo = open_repository(
                ref,
                self.transport,
                create=create,
                max_blob_size=max_blob_size,
                s3_settings=s3,
                profile=profile,
                pulls=self.pulls,
            )
            self._repos[key] = repo
            if isinstance(ref, LayoutRef):
                self._layouts.add(repo.name)
        return repo

    def destination(self, job: JobSpec, repo: Repository, reference: str) -> Destination:
        """``reference`` in the destination repository ``repo`` of ``job``; an OCI layout is
        named as one (and gets OCI media types when the job asks for them)."""
        layout = repo.name in self._layouts
        return Destination(repo, reference, layout=layout, oci_media_types=layout and job.oci_media_types)

    def request_count(self) -> int:
        """Requests sent so far: registries' (through the transport) and object stores'."""
        return self.transport.request_count + store_requests(self._repos.values())

    # -- planning ----------------------------------------------------------------------------

    async def source_repositories(self, job: JobSpec) -> list[str]:
        """The source repositories of a job (a prefix's through the catalog) that this replica owns."""
        spec = job.source
        if spec.kind is SourceKind.PREFIX:
            listing = await self.profiles(spec.host).list_repositories(self.transport, spec.path)
            if listing is None:
                catalog = await list_catalog(self.transport, ImageRef(spec.host, "x").api_host)
            else:  # listed by the registry's own API, with the tags of each repository
                catalog = listing.repositories
                for path, tags in listing.tags.items():
                    self._listed_tags[f"{spec.host}/{path}"] = tags
                    self._listed_digests[f"{spec.host}/{path}"] = listing.digests.get(path, {})
            repos = spec.repositories(catalog)
        else:
            repos = [spec.path]
        if self.owns is not None:
            repos = [r for r in repos if self.owns(ownership_key(spec, r))]
        return repos

    async def plan_job(self, job: JobSpec, outcome: JobOutcome) -> list[CopyTask]:
        """Copy tasks for every repository of a job; a repository that cannot be listed is
        reported in ``outcome`` and the others are planned anyway."""
        repos = await self.source_repositories(job)
        outcome.repositories.extend(repos)
        limit = asyncio.Semaphore(PLAN_CONCURRENCY)

        async def plan(repo_path: str) -> list[CopyTask]:
            async with limit:
                return await self.plan_repository(job, repo_path)

        planned = await asyncio.gather(*(plan(r) for r in repos), return_exceptions=True)
        tasks: list[CopyTask] = []
        errors: list[str] = []
        for repo_path, result in zip(repos, planned, strict=True):
            if isinstance(result, MirrorError):
                errors.append(f"{repo_path}: {result.message}")
                outcome.error_kind = outcome.error_kind or result.kind
            elif isinstance(result, BaseException):
                raise result
            else:
                tasks.extend(result)
        if errors:
            outcome.error = brief(errors, ERRORS_SHOWN)
        return tasks

    async def plan_repository(self, job: JobSpec, repo_path: str) -> list[CopyTask]:
        """Copy tasks for one source repository of a job: the tags its filter selects."""
        spec = job.source
        if spec.kind is SourceKind.IMAGE:
            source = self.repository(spec.repository_ref())
            references = [spec.image_ref().reference]
        else:
            source = self.repository(
                spec.repository_ref(repo_path if spec.kind is SourceKind.PREFIX else None)
            )
            listed = self._listed_tags.get(source.name)
            try:
                tags = list(listed) if listed is not None else await source.list_tags()
            except NotFound:
                if spec.kind is not SourceKind.PREFIX:
                    raise
                # Listed by _catalog but without a tag (blobs left by an interrupted push):
                # there is no image to copy, which is not an error of the job.
                log.info("%s has no tags: nothing to copy", source.name)
                return []
            references = select_references(tags, job.tag_filter)
        dests = await self.destinations(job, repo_path)
        # An image source pinned to a tag keeps that tag; a digest-only source is pushed by digest.
        pinned_tag = spec.tag if spec.kind is SourceKind.IMAGE else None
        digests = self._listed_digests.get(source.name, {}) if spec.kind is SourceKind.PREFIX else {}
        return [
            CopyTask(
                source,
                reference,
                [self.destination(job, d, pinned_tag or reference) for d in dests],
                job.platforms,
                job.overwrite,
                job.name,
                listed_digest=digests.get(reference, ""),
            )
            for reference in references
        ]

    def source_repository(self, job: JobSpec, repo_path: str) -> Repository:
        """The source repository ``repo_path`` of ``job``."""
        spec = job.source
        return self.repository(spec.repository_ref(repo_path if spec.kind is SourceKind.PREFIX else None))

    async def destinations(self, job: JobSpec, repo_path: str) -> list[Repository]:
        """Where ``job`` copies the source repository ``repo_path`` (repositories created first
        where the registry needs that and the job allows it)."""
        limits = dict(job.max_blob_sizes)
        dests: list[Repository] = []
        for dest_spec in job.destinations:
            dest_ref = map_repository(job.source, repo_path, dest_spec)
            if job.create_repositories and isinstance(dest_ref, ImageRef):
                await self._ensure_repository(dest_ref)
            dests.append(self.repository(dest_ref, create=True, max_blob_size=limits.get(dest_spec.host)))
        return dests

    async def _ensure_repository(self, ref: ImageRef) -> None:
        """What the destination's registry needs created before a push (an ECR repository, an
        Artifact Registry PROJECT/REPOSITORY), once per run however many jobs want it."""
        profile = self.profiles(ref.host)
        key = f"{ref.host}/{profile.creation_key(ref.repository)}"
        task = self._ensured.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(profile.ensure_repository(self.transport, ref.repository))
            self._ensured[key] = task
        await asyncio.shield(task)

    # -- running -----------------------------------------------------------------------------

    async def run(self, jobs: list[JobSpec], planner: Planner | None = None) -> SyncResult:
        """Plan ``jobs`` (with ``planner``; by default every repository and tag they cover) and
        copy what was planned through one engine."""
        started = time.monotonic()
        requests_before = self.request_count()
        outcomes = [JobOutcome(j.name) for j in jobs]
        if planner is None:
            images = await self._stream(jobs, outcomes)
        else:
            images = await self._planned(jobs, outcomes, planner)
        by_job = {o.name: o for o in outcomes}
        for name, counted in images.tally.jobs.items():  # counted as the results were kept
            outcome = by_job[name]
            outcome.images, outcome.failed, outcome.deferred = (
                counted.images,
                counted.failed,
                counted.deferred,
            )
            outcome.statuses, outcome.bytes_written = counted.statuses, counted.bytes_written
        stats = self.engine.stats
        stats.requests = self.request_count() - requests_before
        stats.duration_seconds = time.monotonic() - started
        for outcome in outcomes:
            outcome.duration_seconds = stats.duration_seconds
        return SyncResult(outcomes, images, stats)

    async def _planned(
        self, jobs: list[JobSpec], outcomes: list[JobOutcome], planner: Planner
    ) -> ImageResults:
        """Every job planned by ``planner`` first, then copied at once (event runs, small)."""
        planned = await asyncio.gather(
            *(planner(j, o) for j, o in zip(jobs, outcomes, strict=True)), return_exceptions=True
        )
        tasks: list[CopyTask] = []
        for outcome, plan in zip(outcomes, planned, strict=True):
            if isinstance(plan, MirrorError):
                outcome.error, outcome.error_kind = plan.message, plan.kind
            elif isinstance(plan, BaseException):
                raise plan
            else:
                tasks.extend(plan)
        images = await self._copy(tasks)
        wanted = {j.name for j in jobs if j.referrers}
        subjects = [(t, i) for t, i in zip(tasks, images, strict=True) if t.job in wanted]
        images.extend(await copy_referrers(self.engine, subjects, stopping=lambda: self.engine.stopping))
        return ImageResults(images)

    async def _stream(self, jobs: list[JobSpec], outcomes: list[JobOutcome]) -> ImageResults:
        """Each job's repositories planned in order (:data:`PLAN_CONCURRENCY` ahead) and copied
        in batches (:class:`~mirror.jobs.batches.PassBatches`). Results in job, repository and
        tag order, referrers last."""
        listed = await asyncio.gather(*(self.source_repositories(j) for j in jobs), return_exceptions=True)
        units: list[tuple[JobSpec, JobOutcome, str]] = []
        for job, outcome, repos in zip(jobs, outcomes, listed, strict=True):
            if isinstance(repos, MirrorError):
                outcome.error, outcome.error_kind = repos.message, repos.kind
            elif isinstance(repos, BaseException):
                raise repos
            else:
                outcome.repositories.extend(repos)
                units.extend((job, outcome, repo) for repo in repos)
        errors: dict[str, list[str]] = {}
        planning = asyncio.Semaphore(PLAN_CONCURRENCY)

        async def plan(job: JobSpec, outcome: JobOutcome, repo: str) -> list[CopyTask]:
            async with planning:
                try:
                    return await self.plan_repository(job, repo)
                except MirrorError as exc:
                    errors.setdefault(job.name, []).append(f"{repo}: {exc.message}")
                    outcome.error_kind = outcome.error_kind or exc.kind
                    return []

        copier = PassBatches(
            lambda tasks: self._copy(tasks, fresh=False),
            self.engine,
            {j.name for j in jobs if j.referrers},
            len(units),
            stopping=self._stopping,
        )
        ahead: dict[int, asyncio.Future[list[CopyTask]]] = {}
        try:
            for index in range(len(units)):
                for later in range(index, min(index + PLAN_CONCURRENCY, len(units))):
                    if later not in ahead:
                        ahead[later] = asyncio.ensure_future(plan(*units[later]))
                await copier.add(index, await ahead.pop(index))
            await copier.finish()
        finally:
            for future in ahead.values():
                future.cancel()
            await copier.cancel()
        for outcome in outcomes:
            failed = errors.get(outcome.name)
            if failed:
                outcome.error = brief(failed, ERRORS_SHOWN)
        return copier.results()

    def _stopping(self) -> bool:
        return self.engine.stopping

    async def _copy(self, tasks: list[CopyTask], *, fresh: bool = True) -> list[ImageResult]:
        """Run ``tasks`` through the engine, holding each image's lock until it has its outcome."""
        if self.locks is None:
            return await self.engine.run(tasks, fresh=fresh)
        held = await self.locks.acquire(image_key(t) for t in tasks)
        try:
            for task in tasks:
                task.on_done = _then(task.on_done, _releaser(held, image_key(task)))
            return await self.engine.run(tasks, fresh=fresh)
        finally:
            held.release_all()

    def stop(self) -> None:
        """Start no new blob transfer; what is moving finishes (see CopyEngine.stop)."""
        self.engine.stop()

    def abort(self) -> None:
        """Cancel the blob transfers still moving too (see CopyEngine.abort)."""
        self.engine.abort()

    async def aclose(self) -> None:
        await self.engine.aclose()
        await close_stores(self._repos.values())


Planner = Callable[[JobSpec, JobOutcome], Awaitable[list[CopyTask]]]
"""Copy tasks for a job (such as :meth:`SyncRun.plan_job`); may note errors in the outcome."""


def image_key(task: CopyTask) -> Key:
    """The lock key of a copy: its job, source repository and destination reference."""
    reference = task.destinations[0].reference if task.destinations else task.reference
    return (task.job, task.source.name, reference)


def _releaser(held: Held, key: Key) -> Callable[[ImageResult], None]:
    def release(_result: ImageResult) -> None:
        held.release(key)

    return release


def _then(
    first: Callable[[ImageResult], None] | None, second: Callable[[ImageResult], None]
) -> Callable[[ImageResult], None]:
    def both(result: ImageResult) -> None:
        try:
            if first is not None:
                first(result)
        finally:
            second(result)

    return both


def ownership_key(spec: SourceSpec, repository: str) -> str:
    """The key a shard owns a source repository by: ``HOST/PATH``, or the layout itself."""
    if spec.scheme:
        return str(spec)
    return f"{spec.host}/{repository}"
