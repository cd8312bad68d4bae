"""The copy engine: images from a source repository to one or more destinations.

A run goes in three phases:

1. *Resolve* every image (concurrently): HEAD each destination tag, then the source (or, when
   no destination has the tag, GET the source manifest by tag at once); destinations already
   at the digest drop out, and a destination tag that names another digest is a conflict
   unless overwrite is allowed. For the rest, fetch the manifest (and an index's children) by
   digest, verified, and list the blobs each destination needs (:mod:`mirror.copy.resolve`).
2. *Blobs*: each digest is transferred once for the whole run (single-flight): HEAD at each
   destination (skipped for blobs up to 64 MiB in a repository whose tag list is empty),
   mount from a repository of the same registry known to hold it, otherwise one
   source read streamed (hashed, verified) to every destination registry that lacks it; other
   repositories of that registry then mount from the first (:mod:`mirror.copy.blobs`).
3. *Manifests* (here): for each destination whose blobs all arrived, children are pushed before
   parents and the tag last. A destination never gets a manifest whose blobs are missing.

Every step emits an event; the engine itself knows nothing of metrics, reports or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mirror.copy import results as r
from mirror.copy.blobs import BlobTransfers, collect
from mirror.copy.emit import Emitter
from mirror.copy.manifestmemo import ManifestMemo
from mirror.copy.resolve import Plan, Resolved, Resolver
from mirror.copy.stall import DEFAULT_STALL_TIMEOUT
from mirror.registry.base import Repository
from mirror.transport.retry import RetryPolicy
from mirror.types import events as ev
from mirror.types.digest import Digest, is_digest
from mirror.types.errors import MirrorError, RegistryError, ShutdownError
from mirror.types.events import EventSink
from mirror.types.manifest import Manifest, Platform

log = logging.getLogger("mirror")


@dataclass(frozen=True)
class Destination:
    repo: Repository
    reference: str  # tag to write, or the digest to push by
    # An OCI image layout (oci:, s3://): Docker media types written there are reported, since
    # skopeo, podman and umoci do not read them from a layout; with ``oci_media_types`` they
    # are converted to OCI ones (new digests, reported too).
    layout: bool = False
    oci_media_types: bool = False

    @property
    def display(self) -> str:
        sep = "@" if is_digest(self.reference) else ":"
        return f"{self.repo.name}{sep}{self.reference}"


@dataclass
class CopyTask:
    source: Repository
    reference: str
    destinations: list[Destination]
    platforms: tuple[Platform, ...] = ()
    overwrite: bool = False
    job: str = ""
    # The source digest a registry's listing named for the tag ``reference`` (Artifact
    # Registry's dockerImages.list): the image is read by it and written under the tag, without
    # looking the tag up (see :mod:`mirror.copy.resolve`).
    listed_digest: str = ""
    # Told each image's result as soon as it has its outcome (its tag written, or not).
    on_done: Callable[[r.ImageResult], None] | None = field(default=None, compare=False, repr=False)

    @property
    def display(self) -> str:
        sep = "@" if is_digest(self.reference) else ":"
        return f"{self.source.name}{sep}{self.reference}"


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
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        memo: ManifestMemo | None = None,  # verified manifests kept across passes (a daemon's)
    ) -> None:
        self.events = events
        self._emit = Emitter(events)
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.dry_run = dry_run
        self.stats = r.RunStats()
        slots = asyncio.Semaphore(max(1, lookups))
        self._tag_absent: set[str] = set()  # destination repositories where a tag HEAD found nothing
        self._resolver = Resolver(events=events, lookups=slots, tag_absent=self._tag_absent, memo=memo)
        self._resolver.stopping = lambda: self._blobs.stopping
        self._blobs = BlobTransfers(
            events=events,
            stats=self.stats,
            retry=self.retry,
            sleep=sleep,
            dry_run=dry_run,
            transfers=transfers,
            lookups=slots,
            tag_absent=self._tag_absent,
            stall_timeout=stall_timeout,
        )
        self._pushed: set[tuple[str, str]] = set()
        self._pushing: dict[tuple[str, str, Digest], asyncio.Future[None]] = {}

    def stop(self) -> None:
        """Shutting down: blob transfers not yet started fail; those moving finish."""
        self._blobs.stopping = True

    @property
    def stopping(self) -> bool:
        return self._blobs.stopping

    def abort(self) -> None:
        """Shutting down now: what has not started fails, and the blob transfers still moving are
        cancelled (a multipart upload aborted, an upload session deleted); their images fail
        with kind ``shutdown``. The run still ends with a result for every image."""
        self.stop()
        self._blobs.cancel_moving()

    async def run(self, tasks: list[CopyTask], *, fresh: bool = True) -> list[r.ImageResult]:
        """Copy ``tasks``. Runs may overlap (a pass hands its repositories over a few at a time,
        with ``fresh=False``); ``fresh`` forgets what earlier runs learnt about empty
        repositories: they may have tagged them."""
        started = time.monotonic()
        if fresh:
            self._tag_absent.clear()
            self._blobs.new_run()
        resolved = await asyncio.gather(*(self._resolver.resolve(t) for t in tasks))
        needs = collect(resolved)
        self._blobs.start(needs)
        await asyncio.gather(*(self._finish_and_tell(item) for item in resolved))
        # A failed image stops waiting at its first failed blob: the run ends when its other
        # transfers have too, so nothing moves after it and its totals are complete.
        await self._blobs.settle(needs)
        self.stats.duration_seconds += time.monotonic() - started
        return [item.result for item in resolved]

    async def aclose(self) -> None:
        await self._blobs.aclose()
        await self._resolver.aclose()

    # -- phase 3: manifests ------------------------------------------------------------------

    async def _finish_and_tell(self, item: Resolved) -> None:
        try:
            await self._finish(item)
        finally:
            if item.task.on_done is not None:
                with contextlib.suppress(Exception):  # a listener must not break the data path
                    item.task.on_done(item.result)

    async def _finish(self, item: Resolved) -> None:
        await asyncio.gather(*(self._finish_plan(item, plan) for plan in item.plans))
        result = item.result
        if result.error:
            return
        if result.status == r.COPIED:
            self._emit(
                ev.IMAGE_COPIED,
                repo=item.task.source,
                digest=result.digest,
                detail=item.task.job,
            )
        elif result.status == r.FAILED:
            kinds = [d.error_kind for d in result.destinations if d.error_kind] or ["other"]
            self._emit(ev.IMAGE_FAILED, repo=item.task.source, digest=result.digest, detail=kinds[0])

    async def _finish_plan(self, item: Resolved, plan: Plan) -> None:
        dres = plan.result
        repo = plan.dest.repo
        try:
            for digest, desc in plan.blobs.items():
                outcome = await self._blobs.outcome(digest, repo)
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome in ("pushed", "planned"):
                    dres.blobs_pushed += 1
                    dres.bytes_written += desc.size
                elif outcome in ("mounted", "planned-mount"):
                    dres.blobs_mounted += 1
                elif outcome == "skipped":
                    dres.blobs_skipped += 1
                else:  # never taken as present: a manifest is written only over its blobs
                    raise MirrorError(f"blob {digest.short} at {repo.name}: unknown outcome {outcome!r}")
            if self.dry_run:
                dres.status = r.PLANNED
                return
            *children, (reference, top) = plan.manifests
            for wave in _waves(children):  # an inner index only after its own children
                await asyncio.gather(*(self._push(repo, ref, m, item.task.job) for ref, m in wave))
            await self._push(repo, reference, top, item.task.job, always=True)
            dres.manifests_pushed = len(plan.manifests)
            dres.status = r.COPIED
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this copy itself is being cancelled
            # The shared transfer it waited for was cancelled (an abort): a failure, never an escape.
            r.fail(dres, ShutdownError("not copied: the transfer was cancelled (mirror is shutting down)"))
        except Exception as exc:  # one destination's failure, whatever it is, never ends the run
            if not isinstance(exc, MirrorError):
                log.exception("unexpected error copying to %s", plan.dest.display)
            r.fail(dres, exc)
            if isinstance(exc, RegistryError) and exc.kind == "tag_conflict":
                dres.status = r.CONFLICT

    async def _push(
        self, repo: Repository, reference: str, manifest: Manifest, job: str, always: bool = False
    ) -> None:
        key = (repo.name, reference)
        if key in self._pushed and not always:
            return
        # The same bytes on their way to the same place (a referrer copied by digest and as a
        # child of its referrers index at once): one PUT. Two at once make distribution 2.8
        # rewrite the manifest's link file while an index naming it is checked, which fails.
        flight = (repo.name, reference, manifest.digest)
        push = self._pushing.get(flight)
        if push is None:
            push = asyncio.ensure_future(repo.put_manifest(reference, manifest.raw, manifest.media_type))
            self._pushing[flight] = push
            push.add_done_callback(lambda _: self._pushing.pop(flight, None))
            await push
            if not always:  # a child, which other images may share; a tag is pushed each time
                self._pushed.add(key)
            self.stats.manifests_pushed += 1
            self._emit(ev.MANIFEST_PUSHED, repo=repo, digest=str(manifest.digest), detail=job)
        else:
            await push


def _waves(manifests: list[tuple[str, Manifest]]) -> list[list[tuple[str, Manifest]]]:
    """``manifests`` (children before parents) in groups that can be pushed at once: image
    manifests first, then each index once every manifest it lists is in an earlier group."""
    height: dict[Digest, int] = {}
    waves: list[list[tuple[str, Manifest]]] = []
    for ref, manifest in manifests:
        level = 1 + max((height.get(d.digest, -1) for d in manifest.manifests), default=-1)
        height[manifest.digest] = level
        while len(waves) <= level:
            waves.append([])
        waves[level].append((ref, manifest))
    return waves
