"""The copy engine: images from a source repository to one or more destinations.

A run goes in three phases:

1. *Resolve* every image (concurrently): HEAD each destination tag, then the source (or, when
   no destination has the tag, GET the source manifest by tag at once); destinations already
   at the digest drop out, and a destination tag that names another digest is a conflict
   unless overwrite is allowed. For the rest, fetch the manifest (and an index's children) by
   digest, verified, and list the blobs each destination needs.
2. *Blobs*: each digest is transferred once for the whole run (single-flight): HEAD at each
   destination (skipped for blobs up to 64 MiB in a repository whose tag list is empty),
   mount from a repository of the same registry known to hold it, otherwise one
   source read streamed (hashed, verified) to every destination registry that lacks it; other
   repositories of that registry then mount from the first.
3. *Manifests*: for each destination whose blobs all arrived, children are pushed before
   parents and the tag last. A destination never gets a manifest whose blobs are missing.

Every step emits an event; the engine itself knows nothing of metrics, reports or logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mirror.copy import results as r
from mirror.copy.singleflight import SingleFlight
from mirror.copy.tee import Sink, tee
from mirror.registry.base import ChunkSource, ManifestInfo, Repository
from mirror.transport.retry import RetryPolicy
from mirror.types import events as ev
from mirror.types.digest import Digest
from mirror.types.errors import (
    BlobTooLarge,
    ManifestError,
    MirrorError,
    NotFound,
    RegistryError,
    TagConflict,
)
from mirror.types.events import Event, EventSink
from mirror.types.manifest import Descriptor, Manifest, Platform, filter_index, parse_manifest

MAX_INDEX_DEPTH = 4
# In a destination repository that has no tag (new, or left by an interrupted run), blobs up to
# this size are uploaded without a HEAD first: the HEAD would almost always answer 404. Larger
# blobs are still looked for, so an interrupted multi-GB upload that did finish is not sent again.
EMPTY_REPO_HEAD_SKIP_MAX = 64 * 1024 * 1024

log = logging.getLogger("mirror")


@dataclass(frozen=True)
class Destination:
    repo: Repository
    reference: str  # tag to write, or the digest to push by

    @property
    def display(self) -> str:
        sep = "@" if ":" in self.reference else ":"
        return f"{self.repo.name}{sep}{self.reference}"


@dataclass
class CopyTask:
    source: Repository
    reference: str
    destinations: list[Destination]
    platforms: tuple[Platform, ...] = ()
    overwrite: bool = False
    job: str = ""

    @property
    def display(self) -> str:
        sep = "@" if ":" in self.reference else ":"
        return f"{self.source.name}{sep}{self.reference}"


@dataclass
class _Plan:
    dest: Destination
    result: r.DestinationResult
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)
    manifests: list[tuple[str, Manifest]] = field(default_factory=list)  # push order


@dataclass
class _Resolved:
    task: CopyTask
    result: r.ImageResult
    plans: list[_Plan]


@dataclass
class _BlobNeed:
    desc: Descriptor
    source: Repository
    dests: dict[str, Repository] = field(default_factory=dict)


Outcome = str | BaseException  # "pushed" | "mounted" | "skipped" | "planned" | error


class CopyEngine:
    def __init__(
        self,
        *,
        events: EventSink = ev.discard,
        transfers: int = 8,
        lookups: int = 32,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        dry_run: bool = False,
    ) -> None:
        self.events = events
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.dry_run = dry_run
        self._transfers = asyncio.Semaphore(max(1, transfers))
        self._lookups = asyncio.Semaphore(max(1, lookups))
        self._manifests: SingleFlight[Manifest] = SingleFlight()
        self._blobs: SingleFlight[dict[str, Outcome]] = SingleFlight()
        self._has: SingleFlight[bool] = SingleFlight()
        self._empty: SingleFlight[bool] = SingleFlight()
        self._tag_absent: set[str] = set()  # destination repositories where a tag HEAD found nothing
        self._holders: dict[tuple[str, Digest], str] = {}  # (registry, digest) -> repository name
        self._no_mount: set[str] = set()  # registries that answered 202 to a mount we knew was valid
        self._pushed: set[tuple[str, str]] = set()
        self._counted: set[tuple[str, Digest]] = set()
        self._stopping = False
        self.stats = r.RunStats()

    def stop(self) -> None:
        """Shutting down: blob transfers not yet started fail; those moving finish."""
        self._stopping = True

    def _emit(self, kind: str, *, repo: Repository | None = None, **fields: object) -> None:
        if repo is not None:
            fields.setdefault("repository", repo.name)
            fields.setdefault("host", repo.registry)
        self.events(Event(kind, **fields))  # type: ignore[arg-type]

    # -- the run -----------------------------------------------------------------------------

    async def run(self, tasks: list[CopyTask]) -> list[r.ImageResult]:
        started = time.monotonic()
        # What an earlier run() learnt about empty repositories is stale: it may have tagged them.
        self._tag_absent.clear()
        self._empty = SingleFlight()
        resolved = await asyncio.gather(*(self._resolve(t) for t in tasks))
        needs = self._collect(resolved)
        self.stats.unique_blob_bytes = sum(n.desc.size for n in needs.values())
        for digest, need in needs.items():
            self._blobs.run(digest, lambda need=need: self._transfer(need))  # type: ignore[misc]
        await asyncio.gather(*(self._finish(item, needs) for item in resolved))
        self.stats.duration_seconds += time.monotonic() - started
        return [item.result for item in resolved]

    async def aclose(self) -> None:
        await self._blobs.cancel_all()
        await self._manifests.cancel_all()

    # -- phase 1: resolve --------------------------------------------------------------------

    async def _fetch(self, repo: Repository, reference: str) -> Manifest:
        async def fetch() -> Manifest:
            async with self._lookups:
                fetched = await repo.get_manifest(reference)
            # By tag, the store's digest (a verified Docker-Content-Digest, or the layout's own,
            # perhaps sha512) names the manifest, as a HEAD would have.
            expected = Digest.parse(reference) if ":" in reference else fetched.digest
            return parse_manifest(fetched.raw, fetched.media_type, digest=expected)

        return await self._manifests.run((repo.name, reference), fetch)

    async def _head(self, repo: Repository, reference: str) -> ManifestInfo | MirrorError | None:
        async with self._lookups:
            try:
                return await repo.head_manifest(reference)
            except MirrorError as exc:
                return exc

    async def _resolve(self, task: CopyTask) -> _Resolved:
        result = r.ImageResult(source=task.display, job=task.job)
        resolved = _Resolved(task, result, [])
        try:
            top: Manifest | None = None
            heads: list[ManifestInfo | MirrorError | None] | None = None
            if ":" in task.reference:
                target = Digest.parse(task.reference)
            else:
                if task.destinations and all(":" not in d.reference for d in task.destinations):
                    # Destination tags first: when none exists the source manifest is needed
                    # anyway, and one GET by tag replaces a HEAD followed by a GET by digest.
                    heads = await self._dest_heads(task)
                    if all(h is None for h in heads):
                        top = await self._fetch_tag(task)
                if top is not None:
                    target = top.digest
                else:
                    info = await self._head(task.source, task.reference)
                    if isinstance(info, MirrorError):
                        raise info
                    if info is None:
                        raise NotFound(f"{task.display} does not exist", status=404)
                    target = info.digest
            if task.platforms:
                if top is None:
                    top = await self._fetch(task.source, str(target))
                if top.is_index:
                    top = filter_index(top, list(task.platforms))
                    if top.digest != target:
                        result.source_digest = str(target)
                        result.note = (
                            f"filtered to {', '.join(map(str, task.platforms))}: the index pushed has "
                            f"digest {top.digest}, not the source's {target}"
                        )
                    target = top.digest
            result.digest = str(target)
            if heads is None:
                heads = await self._dest_heads(task)
            for dest, info in zip(task.destinations, heads, strict=True):
                if info is None and ":" not in dest.reference:
                    self._tag_absent.add(dest.repo.name)
                dres = r.DestinationResult(dest.display, "", str(target))
                result.destinations.append(dres)
                if isinstance(info, MirrorError):
                    _fail(dres, info)
                    continue
                if info is not None and info.digest.algorithm != target.algorithm:
                    # The two sides name manifests with different algorithms (sha512 / sha256):
                    # compare the source's bytes under the destination's algorithm.
                    if top is None:
                        top = await self._fetch(task.source, str(target))
                    if Digest.of(top.raw, info.digest.algorithm) == info.digest:
                        info = ManifestInfo(target, info.media_type, info.size)
                if info is not None and info.digest == target:
                    dres.status = r.SKIPPED
                    self._emit(ev.IMAGE_SKIPPED, repo=dest.repo, digest=str(target), detail=task.job)
                    continue
                if info is not None and ":" not in dest.reference and not task.overwrite:
                    conflict = TagConflict(dest.display, str(info.digest), str(target))
                    _fail(dres, conflict)
                    dres.status = r.CONFLICT
                    self._emit(ev.TAG_CONFLICT, repo=dest.repo, digest=str(target), detail=task.job)
                    continue
                if ":" in dest.reference and dest.reference != str(target):
                    _fail(
                        dres,
                        ManifestError(
                            f"{dest.display}: the destination digest does not match the copied {target}"
                        ),
                    )
                    continue
                resolved.plans.append(_Plan(dest, dres))
            if not resolved.plans:
                return resolved
            if top is None:
                top = await self._fetch(task.source, str(target))
            ordered = await self._walk(task.source, top, 0)
            blobs: dict[Digest, Descriptor] = {}
            for manifest in ordered:
                for blob in manifest.blobs:
                    blobs.setdefault(blob.digest, blob)
            result.blobs = len(blobs)
            result.bytes_total = sum(b.size for b in blobs.values())
            for plan in resolved.plans:
                limit = plan.dest.repo.max_blob_size
                too_big = [b for b in blobs.values() if limit is not None and b.size > limit]
                if too_big:
                    biggest = max(too_big, key=lambda b: b.size)
                    _fail(
                        plan.result,
                        BlobTooLarge(
                            f"blob {biggest.digest.short} is {biggest.size} bytes, over the "
                            f"{limit}-byte maximum of {plan.dest.repo.name}; nothing was sent"
                        ),
                    )
                    continue
                plan.blobs = dict(blobs)
                plan.manifests = [(str(m.digest), m) for m in ordered[:-1]]
                plan.manifests.append((plan.dest.reference, ordered[-1]))
            resolved.plans = [p for p in resolved.plans if not p.result.error]
        except Exception as caught:  # one image's failure, whatever it is, never ends the run
            exc = _as_mirror(caught)
            if not isinstance(caught, MirrorError):
                log.exception("unexpected error resolving %s", task.display)
            result.error, result.error_kind = exc.message, exc.kind
            for plan in resolved.plans:
                _fail(plan.result, exc)
            resolved.plans = []
            self._emit(ev.IMAGE_FAILED, repo=task.source, detail=exc.kind)
        return resolved

    async def _dest_heads(self, task: CopyTask) -> list[ManifestInfo | MirrorError | None]:
        return list(await asyncio.gather(*(self._head(d.repo, d.reference) for d in task.destinations)))

    async def _fetch_tag(self, task: CopyTask) -> Manifest:
        """The source manifest by tag; also remembered under its digest for the rest of the run."""
        try:
            top = await self._fetch(task.source, task.reference)
        except NotFound as exc:
            raise NotFound(f"{task.display} does not exist ({exc.message})", status=404) from None
        self._manifests.settle((task.source.name, str(top.digest)), top)
        return top

    async def _walk(self, source: Repository, manifest: Manifest, depth: int) -> list[Manifest]:
        """Every manifest under ``manifest``, children before parents, ``manifest`` last."""
        if not manifest.is_index:
            return [manifest]
        if depth >= MAX_INDEX_DEPTH:
            raise ManifestError(f"index nesting deeper than {MAX_INDEX_DEPTH} levels")
        children = await asyncio.gather(
            *(self._fetch(source, str(child.digest)) for child in manifest.manifests)
        )
        ordered: list[Manifest] = []
        seen: set[Digest] = set()
        for child in children:
            for m in await self._walk(source, child, depth + 1):
                if m.digest not in seen:
                    seen.add(m.digest)
                    ordered.append(m)
        ordered.append(manifest)
        return ordered

    # -- phase 2: blobs ----------------------------------------------------------------------

    def _collect(self, resolved: list[_Resolved]) -> dict[Digest, _BlobNeed]:
        needs: dict[Digest, _BlobNeed] = {}
        for item in resolved:
            for plan in item.plans:
                for digest, desc in plan.blobs.items():
                    need = needs.setdefault(digest, _BlobNeed(desc, item.task.source))
                    need.dests.setdefault(plan.dest.repo.name, plan.dest.repo)
        return needs

    async def _exists(self, repo: Repository, desc: Descriptor) -> bool:
        digest = desc.digest
        if desc.size <= EMPTY_REPO_HEAD_SKIP_MAX and await self._is_empty(repo):
            return False

        async def check() -> bool:
            async with self._lookups:
                return await repo.has_blob(digest)

        return await self._has.run((repo.name, digest), check)

    async def _is_empty(self, repo: Repository) -> bool:
        """True when ``repo`` is known to have no tag: one tag listing per repository and run,
        asked only where a destination tag was found missing. Any doubt answers False."""
        if repo.name not in self._tag_absent:
            return False

        async def listing() -> bool:
            try:
                async with self._lookups:
                    return not await repo.list_tags(limit=1)
            except NotFound:
                return True
            except MirrorError:  # a listing that fails only means: HEAD each blob
                return False

        return await self._empty.run(repo.name, listing)

    async def _transfer(self, need: _BlobNeed) -> dict[str, Outcome]:
        desc = need.desc
        outcomes: dict[str, Outcome] = {}
        missing: list[Repository] = []
        checks = await asyncio.gather(
            *(self._exists(repo, desc) for repo in need.dests.values()), return_exceptions=True
        )
        for repo, present in zip(need.dests.values(), checks, strict=True):
            if isinstance(present, BaseException):
                outcomes[repo.name] = present
            elif present:
                outcomes[repo.name] = "skipped"
                self._holders.setdefault((repo.registry, desc.digest), _repository(repo))
                self._emit(ev.BLOB_SKIPPED, repo=repo, digest=str(desc.digest), size=desc.size)
            else:
                missing.append(repo)
        by_registry: dict[str, list[Repository]] = defaultdict(list)
        for repo in missing:
            by_registry[repo.registry].append(repo)
        uploads: list[Repository] = []
        after: list[Repository] = []
        for registry, group in by_registry.items():
            holder = self._holders.get((registry, desc.digest))
            if holder is None and need.source.registry == registry:
                holder = _repository(need.source)
            if self.dry_run:
                for i, repo in enumerate(group):
                    mounts = holder is not None or i > 0
                    outcomes[repo.name] = "planned-mount" if mounts else "planned"
                continue
            if holder is not None and registry not in self._no_mount:
                for repo in group:
                    if await self._mount(repo, desc, holder, known=False):
                        outcomes[repo.name] = "mounted"
                    else:
                        uploads.append(repo)
            elif registry in self._no_mount:
                uploads.extend(group)  # it does not mount (e.g. ECR's 202): one read feeds them all
            else:
                uploads.append(group[0])
                after.extend(group[1:])
        if self.dry_run:
            return outcomes
        if uploads:
            outcomes.update(await self._stream(need, uploads))
        for repo in after:
            first = next(u for u in uploads if u.registry == repo.registry)
            if outcomes.get(first.name) != "pushed":
                outcomes[repo.name] = outcomes[first.name]
                continue
            if repo.registry not in self._no_mount and await self._mount(
                repo, desc, _repository(first), known=True
            ):
                outcomes[repo.name] = "mounted"
                continue
            outcomes.update(await self._stream(need, [repo]))
        return outcomes

    async def _mount(self, repo: Repository, desc: Descriptor, holder: str, *, known: bool) -> bool:
        try:
            mounted = await repo.mount_blob(desc.digest, holder)
        except MirrorError:
            return False
        if mounted:
            self._holders.setdefault((repo.registry, desc.digest), _repository(repo))
            self._emit(ev.BLOB_MOUNTED, repo=repo, digest=str(desc.digest), size=desc.size)
        elif known:
            self._no_mount.add(repo.registry)  # e.g. ECR: answers 202 to every mount
        return mounted

    async def _stream(self, need: _BlobNeed, repos: list[Repository]) -> dict[str, Outcome]:
        """One source read fanned out to ``repos``; retried with a fresh read on temporary errors."""
        desc = need.desc
        outcomes: dict[str, Outcome] = {}
        remaining = list(repos)
        attempt = 0
        async with self._transfers:
            while remaining:
                if self._stopping:
                    stopped = MirrorError("not copied: mirror is shutting down")
                    stopped.kind = "shutdown"
                    outcomes.update((repo.name, stopped) for repo in remaining)
                    break
                attempt += 1
                self._emit(ev.TRANSFER_STARTED, repo=need.source, digest=str(desc.digest), size=desc.size)
                try:
                    reader = await need.source.open_blob(desc)
                except MirrorError as exc:
                    self._emit(ev.TRANSFER_FINISHED, repo=need.source, digest=str(desc.digest))
                    # Not retried here: the store already retried opening (transport, botocore).
                    for repo in remaining:
                        outcomes[repo.name] = exc
                    break

                def progress(n: int, source: Repository = need.source) -> None:
                    self._emit(ev.BLOB_PROGRESS, repo=source, digest=str(desc.digest), size=n)

                sinks: list[Sink] = [_sink(repo, desc) for repo in remaining]
                result = await tee(reader, desc, sinks, on_bytes=progress)
                self._emit(ev.TRANSFER_FINISHED, repo=need.source, digest=str(desc.digest))
                self.stats.bytes_read += result.bytes_read
                self.stats.blobs_read += 1
                self._emit(ev.BLOB_READ, repo=need.source, digest=str(desc.digest), size=result.bytes_read)
                retry_next: list[Repository] = []
                retry_after: list[float] = []
                for repo, error in zip(remaining, result.sink_errors, strict=True):
                    if error is None:
                        outcomes[repo.name] = "pushed"
                        self._holders.setdefault((repo.registry, desc.digest), _repository(repo))
                        self._emit(ev.BLOB_PUSHED, repo=repo, digest=str(desc.digest), size=desc.size)
                    elif _temporary(error) and self.retry.should_retry(_as_mirror(error), attempt):
                        retry_next.append(repo)
                        wait = getattr(error, "retry_after", None)
                        if wait is not None:
                            retry_after.append(wait)
                    else:
                        outcomes[repo.name] = error
                        self._emit(ev.BLOB_FAILED, repo=repo, digest=str(desc.digest), detail=_kind(error))
                remaining = retry_next
                if remaining:
                    await self.sleep(self.retry.delay(attempt, max(retry_after, default=None)))
        return outcomes

    # -- phase 3: manifests ------------------------------------------------------------------

    async def _finish(self, item: _Resolved, needs: dict[Digest, _BlobNeed]) -> None:
        await asyncio.gather(*(self._finish_plan(item, plan) for plan in item.plans))
        result = item.result
        if result.error:
            return
        if result.status == r.COPIED:
            self._emit(ev.IMAGE_COPIED, repo=item.task.source, digest=result.digest, detail=item.task.job)
        elif result.status == r.FAILED:
            kinds = [d.error_kind for d in result.destinations if d.error_kind] or ["other"]
            self._emit(ev.IMAGE_FAILED, repo=item.task.source, digest=result.digest, detail=kinds[0])

    async def _finish_plan(self, item: _Resolved, plan: _Plan) -> None:
        dres = plan.result
        repo = plan.dest.repo
        try:
            for digest, desc in plan.blobs.items():
                outcomes = await self._blobs.run(digest, _missing_need(digest))
                outcome = outcomes.get(repo.name)
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome == "pushed":
                    dres.blobs_pushed += 1
                    dres.bytes_written += desc.size
                elif outcome in ("mounted", "planned-mount"):
                    dres.blobs_mounted += 1
                elif outcome == "planned":
                    dres.blobs_pushed += 1
                    dres.bytes_written += desc.size
                else:
                    dres.blobs_skipped += 1
            if self.dry_run:
                dres.status = r.PLANNED
                return
            *children, (reference, top) = plan.manifests
            await asyncio.gather(*(self._push(repo, ref, m, item.task.job) for ref, m in children))
            await self._push(repo, reference, top, item.task.job, always=True)
            dres.manifests_pushed = len(plan.manifests)
            dres.status = r.COPIED
            self._count_blobs(repo, plan.blobs)
        except Exception as exc:  # one destination's failure, whatever it is, never ends the run
            if not isinstance(exc, MirrorError):
                log.exception("unexpected error copying to %s", plan.dest.display)
            _fail(dres, exc)
            if isinstance(exc, RegistryError) and exc.kind == "tag_conflict":
                dres.status = r.CONFLICT

    def _count_blobs(self, repo: Repository, blobs: dict[Digest, Descriptor]) -> None:
        """Run totals count each (repository, blob) once, however many images share it."""
        for digest, desc in blobs.items():
            key = (repo.name, digest)
            if key in self._counted:
                continue
            self._counted.add(key)
            outcome = self._blobs.run(digest, _missing_need(digest)).result().get(repo.name)
            if outcome == "pushed":
                self.stats.blobs_pushed += 1
                self.stats.bytes_written += desc.size
            elif outcome == "mounted":
                self.stats.blobs_mounted += 1
            else:
                self.stats.blobs_skipped += 1

    async def _push(
        self, repo: Repository, reference: str, manifest: Manifest, job: str, always: bool = False
    ) -> None:
        key = (repo.name, reference)
        if key in self._pushed and not always:
            return
        await repo.put_manifest(reference, manifest.raw, manifest.media_type)
        self._pushed.add(key)
        self.stats.manifests_pushed += 1
        self._emit(ev.MANIFEST_PUSHED, repo=repo, digest=str(manifest.digest), detail=job)


def _sink(repo: Repository, desc: Descriptor) -> Sink:
    async def put(source: ChunkSource) -> None:
        await repo.put_blob(desc, source, replayable=False)

    return put


def _missing_need(digest: Digest) -> Callable[[], Awaitable[dict[str, Outcome]]]:
    async def fail() -> dict[str, Outcome]:
        raise RuntimeError(f"no transfer was planned for {digest}")

    return fail


def _repository(repo: Repository) -> str:
    """The path part of a repository name, as a mount's ``from=`` wants it."""
    name = repo.name
    return name.split("/", 1)[1] if "/" in name and not name.startswith(("oci:", "s3://")) else name


def _temporary(error: BaseException) -> bool:
    return isinstance(error, MirrorError) and error.temporary


def _as_mirror(error: BaseException) -> MirrorError:
    if isinstance(error, MirrorError):
        return error
    wrapped = MirrorError(f"internal error: {type(error).__name__}: {error}")
    wrapped.kind = "internal"
    return wrapped


def _kind(error: BaseException) -> str:
    return error.kind if isinstance(error, MirrorError) else "internal"


def _fail(dres: r.DestinationResult, error: BaseException) -> None:
    dres.status = r.FAILED
    dres.error = error.message if isinstance(error, MirrorError) else f"{type(error).__name__}: {error}"
    dres.error_kind = _kind(error)
