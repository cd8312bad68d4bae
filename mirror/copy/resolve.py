"""Phase 1 of a copy: what each destination of an image needs.

For every image, each destination tag is HEADed, then the source (or, when no destination has
the tag, the source manifest is read at once with one GET by tag). A destination already at the
digest drops out; a destination tag that names another digest is a conflict unless overwrite is
allowed. For the remaining destinations the manifest, and an index's children down to
:data:`MAX_INDEX_DEPTH` levels, are fetched by digest (verified, once per repository and run),
and each destination gets a plan: the blobs it needs and the manifests to push, children first.

A tag whose digest the source's listing named (:attr:`CopyTask.listed_digest`, from Artifact
Registry's ``dockerImages.list``) is not looked up at the source: destinations already at that
digest need nothing from it, and the others get the manifest read by that digest, verified --
read by digest, written under the tag, as for an event that names a digest. A listing is a
snapshot: a tag moved after it is seen by the next pass's listing, exactly as it would be after
a HEAD made at listing time. A listed digest the source no longer has is read by tag.

Every manifest read and verified goes into the :class:`~mirror.copy.manifestmemo.ManifestMemo`
under its digest, and a read by digest is answered from it: a resident daemon keeps one across
its passes, so a warm pass that must read a listed index to filter it to platforms reads it from
memory, not from the source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mirror.copy import results as r
from mirror.copy.emit import Emitter
from mirror.copy.manifestmemo import ManifestMemo
from mirror.copy.singleflight import SingleFlight
from mirror.registry.base import ManifestInfo, Repository
from mirror.types import events as ev
from mirror.types.convert import has_docker_types, to_oci
from mirror.types.digest import Digest, is_digest
from mirror.types.errors import BlobTooLarge, ManifestError, MirrorError, NotFound, ShutdownError, TagConflict
from mirror.types.events import EventSink
from mirror.types.manifest import Descriptor, Manifest, filter_index, parse_manifest

if TYPE_CHECKING:
    from mirror.copy.engine import CopyTask, Destination

MAX_INDEX_DEPTH = 4

log = logging.getLogger("mirror")


@dataclass
class Plan:
    """What one destination of an image receives."""

    dest: Destination
    result: r.DestinationResult
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)
    manifests: list[tuple[str, Manifest]] = field(default_factory=list)  # push order


@dataclass
class Resolved:
    """An image after resolving: its result so far and the plans of the destinations to write."""

    task: CopyTask
    result: r.ImageResult
    plans: list[Plan]


MANIFESTS_KEPT = 4096


class Resolver:
    """Resolves the images of a run; a manifest is fetched once per repository and reference.

    ``tag_absent`` collects the destination repositories where a tag HEAD found nothing. ``memo``
    holds the verified manifests read by earlier passes (see :mod:`mirror.copy.manifestmemo`).
    """

    def __init__(
        self,
        *,
        events: EventSink,
        lookups: asyncio.Semaphore,
        tag_absent: set[str],
        memo: ManifestMemo | None = None,
    ) -> None:
        self._emit = Emitter(events)
        self._memo = memo if memo is not None else ManifestMemo()
        self._lookups = lookups
        # Manifests read recently (tags of one image, an index's children shared by its tags);
        # a pass does not keep every manifest it read.
        self._manifests: SingleFlight[Manifest] = SingleFlight(keep=MANIFESTS_KEPT)
        self._tag_absent = tag_absent
        self.stopping: Callable[[], bool] = lambda: False  # shutting down: no new lookups

    async def aclose(self) -> None:
        await self._manifests.cancel_all()

    async def _fetch(self, repo: Repository, reference: str) -> Manifest:
        if is_digest(reference):
            kept = self._memo.get(repo.name, Digest.parse(reference))
            if kept is not None:  # read and verified before (an earlier pass): its bytes never change
                return kept

        async def fetch() -> Manifest:
            async with self._lookups:
                _check_running(self.stopping)
                fetched = await repo.get_manifest(reference)
            # By tag, the store's digest (a verified Docker-Content-Digest, or the layout's own,
            # perhaps sha512) names the manifest, as a HEAD would have.
            expected = Digest.parse(reference) if is_digest(reference) else fetched.digest
            manifest = parse_manifest(fetched.raw, fetched.media_type, digest=expected)
            self._memo.put(repo.name, manifest)
            return manifest

        return await self._manifests.run((repo.name, reference), fetch)

    async def _head(self, repo: Repository, reference: str) -> ManifestInfo | MirrorError | None:
        async with self._lookups:
            try:
                _check_running(self.stopping)
                return await repo.head_manifest(reference)
            except MirrorError as exc:
                return exc

    async def resolve(self, task: CopyTask) -> Resolved:
        result = r.ImageResult(source=task.display, job=task.job)
        resolved = Resolved(task, result, [])
        try:
            top: Manifest | None = None
            heads: list[ManifestInfo | MirrorError | None] | None = None
            if is_digest(task.reference):
                target = Digest.parse(task.reference)
            elif task.listed_digest:
                heads = await self._dest_heads(task)
                target = Digest.parse(task.listed_digest)
                held = all(isinstance(h, ManifestInfo) and h.digest == target for h in heads)
                if task.platforms or not held:
                    top = await self._fetch_listed(task, target)
                    target = top.digest
            else:
                if task.destinations and all(not is_digest(d.reference) for d in task.destinations):
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
            result.digest = digest_text = str(target)  # one string for the image and most destinations
            source_target = target
            converted: list[Manifest] | None = None  # the graph with OCI media types, when asked
            if heads is None:
                heads = await self._dest_heads(task)
            for dest, info in zip(task.destinations, heads, strict=True):
                target = source_target
                if dest.oci_media_types:
                    if converted is None:
                        if top is None:
                            top = await self._fetch(task.source, str(target))
                        converted = to_oci(await self._walk(task.source, top, 0))
                    target = converted[-1].digest
                if info is None and not is_digest(dest.reference):
                    self._tag_absent.add(dest.repo.name)
                shown = digest_text if target == source_target else str(target)
                dres = r.DestinationResult(dest.display, "", shown)
                result.destinations.append(dres)
                if isinstance(info, MirrorError):
                    r.fail(dres, info)
                    continue
                if info is not None and info.digest.algorithm != target.algorithm:
                    # The two sides name manifests with different algorithms (sha512 / sha256):
                    # compare the source's bytes under the destination's algorithm.
                    if top is None:
                        top = await self._fetch(task.source, str(target))
                    raw = converted[-1].raw if dest.oci_media_types and converted else top.raw
                    if Digest.of(raw, info.digest.algorithm) == info.digest:
                        info = ManifestInfo(target, info.media_type, info.size)
                if info is not None and info.digest == target:
                    dres.status = r.SKIPPED
                    self._emit(ev.IMAGE_SKIPPED, repo=dest.repo, digest=str(target), detail=task.job)
                    continue
                if info is not None and not is_digest(dest.reference) and not task.overwrite:
                    conflict = TagConflict(dest.display, str(info.digest), str(target))
                    r.fail(dres, conflict)
                    dres.status = r.CONFLICT
                    self._emit(ev.TAG_CONFLICT, repo=dest.repo, digest=str(target), detail=task.job)
                    continue
                if is_digest(dest.reference) and dest.reference != str(target):
                    r.fail(
                        dres,
                        ManifestError(
                            f"{dest.display}: the destination digest does not match the copied {target}"
                        ),
                    )
                    continue
                resolved.plans.append(Plan(dest, dres))
            target = source_target
            if not resolved.plans:
                return resolved
            if top is None:
                top = await self._fetch(task.source, str(target))
            ordered = await self._walk(task.source, top, 0)
            _note_media_types(result, resolved.plans, ordered, converted)
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
                    r.fail(
                        plan.result,
                        BlobTooLarge(
                            f"blob {biggest.digest.short} is {biggest.size} bytes, over the "
                            f"{limit}-byte maximum of {plan.dest.repo.name}; nothing was sent"
                        ),
                    )
                    continue
                graph = converted if plan.dest.oci_media_types and converted else ordered
                plan.blobs = dict(blobs)
                plan.manifests = [(str(m.digest), m) for m in graph[:-1]]
                plan.manifests.append((plan.dest.reference, graph[-1]))
            resolved.plans = [p for p in resolved.plans if not p.result.error]
        except Exception as caught:  # one image's failure, whatever it is, never ends the run
            exc = r.as_mirror(caught)
            if not isinstance(caught, MirrorError):
                log.exception("unexpected error resolving %s", task.display)
            result.error, result.error_kind = exc.message, exc.kind
            for plan in resolved.plans:
                r.fail(plan.result, exc)
            resolved.plans = []
            kind = ev.IMAGE_DEFERRED if result.status == r.DEFERRED else ev.IMAGE_FAILED
            self._emit(kind, repo=task.source, detail=exc.kind)
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

    async def _fetch_listed(self, task: CopyTask, digest: Digest) -> Manifest:
        """The source manifest by the digest a listing named for the tag (verified against it);
        by tag when the source no longer has that digest."""
        try:
            return await self._fetch(task.source, str(digest))
        except NotFound:
            log.info("%s: %s, listed for the tag, is gone: reading the tag", task.display, digest.short)
        return await self._fetch_tag(task)

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


def _check_running(stopping: Callable[[], bool]) -> None:
    if stopping():
        raise ShutdownError("not copied: mirror is shutting down")


def _note_media_types(
    result: r.ImageResult, plans: list[Plan], ordered: list[Manifest], converted: list[Manifest] | None
) -> None:
    """Say when Docker media types go into a layout unchanged, and when converting them gave the
    image a new digest."""
    layouts = [p.dest.display for p in plans if p.dest.layout and not p.dest.oci_media_types]
    if layouts and has_docker_types(ordered):
        text = (
            f"written with Docker media types to {', '.join(layouts)}: skopeo, podman and umoci do "
            "not read those from an OCI layout; --oci-media-types (oci_media_types: true in a job) "
            "converts them, which gives the image a new digest"
        )
        log.warning("%s: %s", result.source, text)
        result.note = f"{result.note}; {text}" if result.note else text
    if converted is not None and converted[-1].digest != ordered[-1].digest:
        oci = [p.dest.display for p in plans if p.dest.oci_media_types]
        if oci:
            text = (
                f"converted to OCI media types for {', '.join(oci)}: digest {converted[-1].digest}, "
                f"not the source's {ordered[-1].digest}"
            )
            result.note = f"{result.note}; {text}" if result.note else text
