"""Phase 2 of a copy: every blob of the run moved once to the destinations that lack it.

Each digest has one transfer for the whole run (single-flight). It HEADs the blob at each
destination repository that wants it (skipped for blobs up to :data:`EMPTY_REPO_HEAD_SKIP_MAX`
in a repository whose tag list is empty), mounts it from a repository of the same registry
known to hold it, and otherwise streams one source read (hashed, verified) to one repository
per destination registry that lacks it; the other repositories of that registry then mount from
the first. The outcome per destination repository is "pushed", "mounted", "skipped" (already
there), "planned" / "planned-mount" in a dry run, or the error that stopped it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mirror.copy import results as r
from mirror.copy.emit import Emitter
from mirror.copy.resolve import Resolved
from mirror.copy.singleflight import SingleFlight
from mirror.copy.tee import Sink, tee
from mirror.registry.base import ChunkSource, Repository
from mirror.transport.retry import RetryPolicy
from mirror.types import events as ev
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError, NotFound
from mirror.types.events import EventSink
from mirror.types.manifest import Descriptor

# In a destination repository that has no tag (new, or left by an interrupted run), blobs up to
# this size are uploaded without a HEAD first: the HEAD would almost always answer 404. Larger
# blobs are still looked for, so an interrupted multi-GB upload that did finish is not sent again.
EMPTY_REPO_HEAD_SKIP_MAX = 64 * 1024 * 1024

Outcome = str | BaseException  # "pushed" | "mounted" | "skipped" | "planned" | error


@dataclass
class BlobNeed:
    """One blob, where to read it, the destination repositories that want it (by name), and the
    first image that wants it (what a person watching transfers recognises)."""

    desc: Descriptor
    source: Repository
    dests: dict[str, Repository] = field(default_factory=dict)
    image: str = ""


def collect(resolved: list[Resolved]) -> dict[Digest, BlobNeed]:
    """The blobs the plans of a run need, each once, with every repository that wants it."""
    needs: dict[Digest, BlobNeed] = {}
    for item in resolved:
        for plan in item.plans:
            for digest, desc in plan.blobs.items():
                need = needs.setdefault(digest, BlobNeed(desc, item.task.source, image=item.task.display))
                need.dests.setdefault(plan.dest.repo.name, plan.dest.repo)
    return needs


class BlobTransfers:
    """The blob transfers of a copy engine: started by :meth:`start`, awaited by :meth:`outcomes`.

    ``tag_absent`` names the destination repositories where a tag HEAD found nothing: only
    those are asked whether they have any tag at all. ``transfers`` bounds the source reads in
    flight, ``lookups`` (shared with the resolve phase) the HEADs and tag listings.
    """

    def __init__(
        self,
        *,
        events: EventSink,
        stats: r.RunStats,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        dry_run: bool,
        transfers: int,
        lookups: asyncio.Semaphore,
        tag_absent: set[str],
    ) -> None:
        self._emit = Emitter(events)
        self.stats = stats
        self.retry = retry
        self.sleep = sleep
        self.dry_run = dry_run
        self._transfers = asyncio.Semaphore(max(1, transfers))
        self._lookups = lookups
        self._tag_absent = tag_absent
        self._outcomes: SingleFlight[dict[str, Outcome]] = SingleFlight()
        self._has: SingleFlight[bool] = SingleFlight()
        self._empty: SingleFlight[bool] = SingleFlight()
        self._holders: dict[tuple[str, Digest], str] = {}  # (registry, digest) -> repository name
        self.no_mount: set[str] = set()  # registries that answered 202 to a mount we knew was valid
        self.stopping = False  # shutting down: transfers not yet started fail

    def new_run(self) -> None:
        """Forget which repositories were empty: an earlier run may have tagged them."""
        self._empty = SingleFlight()

    def start(self, needs: dict[Digest, BlobNeed]) -> None:
        for digest, need in needs.items():
            self._outcomes.run(digest, lambda need=need: self._transfer(need))  # type: ignore[misc]

    def outcomes(self, digest: Digest) -> asyncio.Task[dict[str, Outcome]]:
        """The transfer of ``digest`` (started by :meth:`start`): its outcome per repository name."""
        return self._outcomes.run(digest, _missing_need(digest))

    async def aclose(self) -> None:
        await self._outcomes.cancel_all()

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

    async def _transfer(self, need: BlobNeed) -> dict[str, Outcome]:
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
            if holder is not None and registry not in self.no_mount:
                for repo in group:
                    if await self._mount(repo, desc, holder, known=False):
                        outcomes[repo.name] = "mounted"
                    else:
                        uploads.append(repo)
            elif registry in self.no_mount:
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
            if repo.registry not in self.no_mount and await self._mount(
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
            self.no_mount.add(repo.registry)  # e.g. ECR: answers 202 to every mount
        return mounted

    async def _stream(self, need: BlobNeed, repos: list[Repository]) -> dict[str, Outcome]:
        """One source read fanned out to ``repos``; retried with a fresh read on temporary errors."""
        desc = need.desc
        outcomes: dict[str, Outcome] = {}
        remaining = list(repos)
        attempt = 0
        async with self._transfers:
            while remaining:
                if self.stopping:
                    stopped = MirrorError("not copied: mirror is shutting down")
                    stopped.kind = "shutdown"
                    outcomes.update((repo.name, stopped) for repo in remaining)
                    break
                attempt += 1
                self._emit(
                    ev.TRANSFER_STARTED,
                    repo=need.source,
                    digest=str(desc.digest),
                    size=desc.size,
                    detail=need.image,
                )
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
                self._emit(
                    ev.BLOB_READ,
                    repo=need.source,
                    digest=str(desc.digest),
                    size=result.bytes_read,
                )
                retry_next: list[Repository] = []
                retry_after: list[float] = []
                for repo, error in zip(remaining, result.sink_errors, strict=True):
                    if error is None:
                        outcomes[repo.name] = "pushed"
                        self._holders.setdefault((repo.registry, desc.digest), _repository(repo))
                        self._emit(ev.BLOB_PUSHED, repo=repo, digest=str(desc.digest), size=desc.size)
                    elif _temporary(error) and self.retry.should_retry(r.as_mirror(error), attempt):
                        retry_next.append(repo)
                        wait = getattr(error, "retry_after", None)
                        if wait is not None:
                            retry_after.append(wait)
                    else:
                        outcomes[repo.name] = error
                        self._emit(
                            ev.BLOB_FAILED,
                            repo=repo,
                            digest=str(desc.digest),
                            detail=r.error_kind(error),
                        )
                remaining = retry_next
                if remaining:
                    await self.sleep(self.retry.delay(attempt, max(retry_after, default=None)))
        return outcomes


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
