"""Phase 2 of a copy: every blob of the run moved once to the destinations that lack it.

Each digest has one *flight* for the life of the engine (single-flight by digest). A flight
takes destination repositories whenever they come: those known before its source is opened
share that read; one that comes later (a second engine run, for referrers) gets a new round
for itself alone, never a finished result that does not name it. A round HEADs the blob at each
destination repository (skipped for blobs up to :data:`EMPTY_REPO_HEAD_SKIP_MAX` in a repository
whose tag list is empty), mounts it from a repository of the same registry known to hold it,
and otherwise streams one source read (:mod:`mirror.copy.reads`: hashed, verified, from the
first source repository that serves it) to one repository per destination registry that lacks
it; the other repositories of that registry then mount from the first.

The outcome per destination repository is "pushed", "mounted", "skipped" (already there),
"planned" / "planned-mount" in a dry run, or the error that stopped it. Run totals are counted
here, as each outcome is known, so a run that fails later still reports what it wrote.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from mirror.copy import results as r
from mirror.copy.emit import Emitter
from mirror.copy.reads import SourceReads
from mirror.copy.resolve import Resolved
from mirror.copy.singleflight import SingleFlight
from mirror.registry.base import Repository
from mirror.transport.retry import RetryPolicy
from mirror.types import events as ev
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError, NotFound, ShutdownError
from mirror.types.events import EventSink
from mirror.types.manifest import Descriptor

# In a destination repository that has no tag (new, or left by an interrupted run), blobs up to
# this size are uploaded without a HEAD first: the HEAD would almost always answer 404. Larger
# blobs are still looked for, so an interrupted multi-GB upload that did finish is not sent again.
EMPTY_REPO_HEAD_SKIP_MAX = 64 * 1024 * 1024

HEADS_KEPT = 4096  # blob HEAD answers remembered (a flight keeps its own outcomes anyway)

Outcome = str | BaseException  # "pushed" | "mounted" | "skipped" | "planned" | error
SUCCESS = frozenset({"pushed", "mounted", "skipped", "planned", "planned-mount"})


@dataclass
class BlobNeed:
    """One blob, the source repositories that can serve it (in the order images named them),
    the destination repositories that want it (by name), and the first image that wants it
    (what a person watching transfers recognises)."""

    desc: Descriptor
    sources: dict[str, Repository] = field(default_factory=dict)
    dests: dict[str, Repository] = field(default_factory=dict)
    image: str = ""


def collect(resolved: list[Resolved]) -> dict[Digest, BlobNeed]:
    """The blobs the plans of a run need, each once, with every repository that has or wants it."""
    needs: dict[Digest, BlobNeed] = {}
    for item in resolved:
        for plan in item.plans:
            for digest, desc in plan.blobs.items():
                need = needs.setdefault(digest, BlobNeed(desc, image=item.task.display))
                need.sources.setdefault(item.task.source.name, item.task.source)
                need.dests.setdefault(plan.dest.repo.name, plan.dest.repo)
    return needs


_IDLE: dict[str, Repository] = {}  # never written: sources and waiting of a flight at rest


@dataclass(slots=True)
class _Flight:
    """Everything about one digest: where it can be read, who wants it, what happened there."""

    desc: Descriptor
    image: str = ""  # the first image that wanted it
    sources: dict[str, Repository] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # final, per repository name
    waiting: dict[str, Repository] = field(default_factory=dict)  # wanted, not yet in a round
    task: asyncio.Task[None] | None = None  # the rounds running, while there are any

    def take_waiting(self) -> dict[str, Repository]:
        taken, self.waiting = self.waiting, {}
        return taken

    def wake(self, image: str) -> None:
        """Ready a flight at rest for new sources and destinations (``image``: the one that
        wants it now)."""
        if self.sources is _IDLE:
            self.sources = {}
        if self.waiting is _IDLE:
            self.waiting = {}
        self.image = self.image or image

    def rest(self) -> None:
        """No round runs: what a pass keeps of a flight is its outcomes (one per destination
        repository); a destination that comes later brings its own sources, and gets a new task."""
        self.sources = _IDLE
        self.waiting = _IDLE
        self.image = ""
        self.task = None


def _succeeded(outcome: Outcome | None) -> bool:
    return isinstance(outcome, str) and outcome in SUCCESS


class MissingOutcome(MirrorError):
    """A destination that no blob transfer reached: an error, never taken as "skipped"."""

    kind = "internal"


class BlobTransfers:
    """The blob transfers of a copy engine: started by :meth:`start`, awaited by :meth:`outcome`.

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
        stall_timeout: float | None = None,
    ) -> None:
        self._emit = Emitter(events)
        self.stats = stats
        self.dry_run = dry_run
        self._lookups = lookups
        self._tag_absent = tag_absent
        self._reads = SourceReads(
            events=events,
            stats=stats,
            retry=retry,
            sleep=sleep,
            transfers=transfers,
            stall_timeout=stall_timeout,
        )
        self._flights: dict[Digest, _Flight] = {}
        self._has: SingleFlight[bool] = SingleFlight(keep=HEADS_KEPT)
        self._empty: SingleFlight[bool] = SingleFlight()
        # registry -> digest -> a repository there that holds the blob (mounts come from it)
        self._holders: defaultdict[str, dict[Digest, str]] = defaultdict(dict)
        self.no_mount: set[str] = set()  # registries that answered 202 to a mount we knew was valid

    @property
    def stopping(self) -> bool:
        return self._reads.stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        """Shutting down: source reads not yet started fail."""
        self._reads.stopping = value

    def new_run(self) -> None:
        """Forget which repositories were empty: an earlier run may have tagged them."""
        self._empty = SingleFlight()

    def start(self, needs: dict[Digest, BlobNeed]) -> None:
        """Give every need to the flight of its digest; a repository that already has a
        successful outcome there is not asked again, one whose transfer failed is tried again."""
        for digest, need in needs.items():
            flight = self._flights.get(digest)
            if flight is None:
                flight = self._flights[digest] = _Flight(need.desc, need.image)
                self.stats.unique_blob_bytes += need.desc.size
            wanted = [(n, repo) for n, repo in need.dests.items() if not _succeeded(flight.outcomes.get(n))]
            if not wanted and flight.sources is _IDLE:
                continue  # at rest, and every destination has it
            flight.wake(need.image)
            for name, source in need.sources.items():
                flight.sources.setdefault(name, source)
            for name, repo in wanted:
                flight.outcomes.pop(name, None)
                flight.waiting.setdefault(name, repo)
            if flight.waiting and (flight.task is None or flight.task.done()):
                flight.task = asyncio.ensure_future(self._fly(flight))

    async def outcome(self, digest: Digest, repo: Repository) -> Outcome:
        """What the transfer of ``digest`` did at ``repo``; a MissingOutcome error when no
        transfer took ``repo`` (which would be a defect: it is never treated as present)."""
        flight = self._flights.get(digest)
        while flight is not None and repo.name not in flight.outcomes:
            task = flight.task
            if task is None or task.done():
                break
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this waiter itself is cancelled
        if flight is not None and repo.name in flight.outcomes:
            return flight.outcomes[repo.name]
        if flight is not None and flight.task is not None and flight.task.cancelled():
            return ShutdownError(f"blob {digest.short}: not copied, its transfer was cancelled (stopping)")
        return MissingOutcome(f"blob {digest.short}: no transfer reached {repo.name}; nothing was written")

    async def settle(self, digests: Iterable[Digest]) -> None:
        """Wait until the transfers of ``digests`` run no more (each records its own outcomes
        and errors); those of other runs of the engine, going on at the same time, are not
        waited for."""
        flights = [f for d in digests if (f := self._flights.get(d)) is not None]
        while tasks := [f.task for f in flights if f.task is not None and not f.task.done()]:
            await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)

    def cancel_moving(self) -> None:
        """Cancel every transfer still running (an abort at shutdown): its waiters fail."""
        for flight in self._flights.values():
            if flight.task is not None and not flight.task.done():
                flight.task.cancel()

    async def aclose(self) -> None:
        tasks = [f.task for f in self._flights.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one digest --------------------------------------------------------------------------

    async def _fly(self, flight: _Flight) -> None:
        """Rounds until no repository waits: those that came during a round get the next one."""
        while flight.waiting:
            batch: dict[str, Repository] = {}
            try:
                outcomes = await self._round(flight, batch)
            except Exception as exc:  # whatever it is, it is the outcome of every repository here
                outcomes = {name: r.as_mirror(exc) for name in batch}
            for name, repo in batch.items():
                self._record(
                    flight,
                    repo,
                    outcomes.get(name)
                    or MissingOutcome(
                        f"blob {flight.desc.digest.short}: the transfer to {name} ended without an outcome"
                    ),
                )
        flight.rest()

    def _record(self, flight: _Flight, repo: Repository, outcome: Outcome) -> None:
        flight.outcomes[repo.name] = outcome
        size = flight.desc.size
        if outcome in ("pushed", "planned"):
            self.stats.blobs_pushed += 1
            self.stats.bytes_written += size
        elif outcome in ("mounted", "planned-mount"):
            self.stats.blobs_mounted += 1
        elif outcome == "skipped":
            self.stats.blobs_skipped += 1

    async def _round(self, flight: _Flight, batch: dict[str, Repository]) -> dict[str, Outcome]:
        """HEAD, mount, then one read for the repositories of ``batch`` (filled here: every
        repository that comes before the source is opened joins this round)."""
        desc = flight.desc
        outcomes: dict[str, Outcome] = {}
        missing: list[Repository] = []
        while flight.waiting:
            joining = flight.take_waiting()
            batch.update(joining)
            checks = await asyncio.gather(
                *(self._exists(repo, desc) for repo in joining.values()), return_exceptions=True
            )
            for repo, present in zip(joining.values(), checks, strict=True):
                if isinstance(present, BaseException):
                    outcomes[repo.name] = present
                elif present:
                    outcomes[repo.name] = "skipped"
                    self._holders[repo.registry].setdefault(desc.digest, _repository(repo))
                    self._emit(ev.BLOB_SKIPPED, repo=repo, digest=str(desc.digest), size=desc.size)
                else:
                    missing.append(repo)
        by_registry: dict[str, list[Repository]] = defaultdict(list)
        for repo in missing:
            by_registry[repo.registry].append(repo)
        uploads: list[Repository] = []
        after: list[Repository] = []
        for registry, group in by_registry.items():
            holder = self._holders[registry].get(desc.digest)
            if holder is None:
                holder = next(
                    (_repository(s) for s in flight.sources.values() if s.registry == registry), None
                )
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
            outcomes.update(await self._stream(flight, uploads))
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
            outcomes.update(await self._stream(flight, [repo]))
        return outcomes

    async def _stream(self, flight: _Flight, repos: list[Repository]) -> dict[str, Outcome]:
        outcomes = await self._reads.stream(
            flight.desc, list(flight.sources.values()), repos, image=flight.image
        )
        for repo in repos:
            if outcomes.get(repo.name) == "pushed":
                self._holders[repo.registry].setdefault(flight.desc.digest, _repository(repo))
        return outcomes

    async def _exists(self, repo: Repository, desc: Descriptor) -> bool:
        digest = desc.digest
        if desc.size <= EMPTY_REPO_HEAD_SKIP_MAX and await self._is_empty(repo):
            return False

        async def check() -> bool:
            async with self._lookups:
                return await repo.has_blob(digest, desc.size)

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

    async def _mount(self, repo: Repository, desc: Descriptor, holder: str, *, known: bool) -> bool:
        try:
            mounted = await repo.mount_blob(desc.digest, holder)
        except MirrorError:
            return False
        if mounted:
            self._holders[repo.registry].setdefault(desc.digest, _repository(repo))
            self._emit(ev.BLOB_MOUNTED, repo=repo, digest=str(desc.digest), size=desc.size)
        elif known:
            self.no_mount.add(repo.registry)  # e.g. ECR: answers 202 to every mount
        return mounted


def _repository(repo: Repository) -> str:
    """The path part of a repository name, as a mount's ``from=`` wants it (one string per
    repository: a pass records it for every blob a repository holds)."""
    return _path_of(repo.name)


@functools.lru_cache(maxsize=4096)
def _path_of(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name and not name.startswith(("oci:", "s3://")) else name
