"""Referrers of copied images (signatures, SBOMs, attestations): found at the source, then copied.

For every image a pass (or ``mirror copy --referrers``) copied, or found already in place, the
referrers of its source digest are looked up in two ways, and both count:

- the OCI referrers API (``GET /v2/<name>/referrers/<digest>``, every ``Link`` page), on a
  registry that has it, or, in an OCI layout (``oci:``, ``s3://``), the manifests ``index.json``
  names whose ``subject`` is the digest (tagged or not, as ORAS finds them): each referrer is
  copied by digest;
- the tags of the referrers fallback scheme, ``sha256-<hex>[.suffix]`` (the OCI tag schema's
  index; cosign's ``.sig``, ``.att``, ``.sbom``), from the source repository's tag list, read
  once per repository and run: each is copied under its tag. Such a tag may move at the
  destination: the scheme rewrites it whenever a referrer is added at the source.

At a destination without the referrers API (a registry that does not answer ``OCI-Subject``,
an OCI layout) each referrer copied is listed under its subject's referrers tag, and in a
layout's ``index.json`` too, by the store it is written to (:mod:`mirror.types.referrers`), so
clients find it there.

Only subjects that were selected have their referrers looked up, so a tag filter's exclusions
hold for their signatures too; referrers go to the destinations where their subject is.
Referrers of referrers follow, up to :data:`MAX_DEPTH` levels. A lookup that fails becomes a
failed result naming its subject: a copy is never reported whole while its referrers are
unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.results import COPIED, PLANNED, SKIPPED, DestinationResult, ImageResult, fail
from mirror.jobs.selection import FALLBACK_TAG
from mirror.registry.base import Repository
from mirror.types.digest import Digest, is_digest
from mirror.types.errors import MirrorError, NotFound
from mirror.types.manifest import Descriptor
from mirror.types.referrers import referrers_tag

Lister = Callable[[Digest, list[Digest]], Awaitable[None]]
"""A store's ``list_referrers(subject, digests)``."""

MAX_DEPTH = 3  # referrers, their referrers, and theirs
LOOKUPS = 16  # subjects looked up at the same time


@dataclass
class _Level:
    tasks: dict[tuple[str, str, str], CopyTask] = field(default_factory=dict)
    failures: list[ImageResult] = field(default_factory=list)


class ReferrerFinder:
    """Finds referrers for the images of one run; each (job, source, reference) is queued once."""

    def __init__(self) -> None:
        self._tags: dict[str, asyncio.Task[list[str]]] = {}
        self._queued: set[tuple[str, str, str]] = set()
        self._limit = asyncio.Semaphore(LOOKUPS)
        self._subjects: dict[tuple[str, str, str], Digest] = {}  # a referrer (by digest) -> its subject

    def already_copied(self, tasks: list[CopyTask]) -> None:
        """References a run copies anyway (a tag filter may select fallback tags): not queued again."""
        self._queued.update((t.job, t.source.name, t.reference) for t in tasks)

    async def _fallback_tags(self, source: Repository) -> list[str]:
        """The source's tags of the fallback scheme: one listing per repository and run."""
        listing = self._tags.get(source.name)
        if listing is None:
            listing = asyncio.ensure_future(_list_fallback_tags(source))
            self._tags[source.name] = listing
        return await asyncio.shield(listing)

    async def lookup(self, source: Repository, digest: Digest) -> list[str]:
        """The references of ``digest``'s referrers at ``source``: digests (API), then tags."""
        found: list[str] = []
        api = getattr(source, "referrers", None)  # the API of a registry; a layout's index.json
        if api is not None:
            descs: list[Descriptor] | None = await api(digest)
            found.extend(dict.fromkeys(str(d.digest) for d in descs or []))
        prefix = referrers_tag(digest)
        found.extend(
            t for t in await self._fallback_tags(source) if t == prefix or t.startswith(prefix + ".")
        )
        return found

    async def next_level(
        self, done: list[tuple[CopyTask, ImageResult]]
    ) -> tuple[list[CopyTask], list[ImageResult]]:
        """Copy tasks for the referrers of the images in ``done``, and a failed result for each
        subject whose referrers could not be listed."""
        level = _Level()
        await asyncio.gather(*(self._subject(task, image, level) for task, image in done))
        return list(level.tasks.values()), level.failures

    async def _subject(self, task: CopyTask, image: ImageResult, level: _Level) -> None:
        destinations = _placed(task, image)
        digest_text = image.source_digest or image.digest
        if not destinations or not digest_text:
            return
        digest = Digest.parse(digest_text)
        try:
            async with self._limit:
                references = await self.lookup(task.source, digest)
        except MirrorError as exc:
            level.failures.append(
                ImageResult(
                    source=f"{task.source.name}@{digest}",
                    digest=str(digest),
                    job=task.job,
                    note="referrers",
                    error=f"the referrers of {task.source.name}@{digest} could not be listed: {exc.message}",
                    error_kind=exc.kind,
                )
            )
            return
        for reference in references:
            key = (task.job, task.source.name, reference)
            queued = level.tasks.get(key)
            if queued is not None:  # another subject's image in the same job: more destinations
                names = {d.repo.name for d in queued.destinations}
                queued.destinations.extend(
                    d for d in _retarget(destinations, reference) if d.repo.name not in names
                )
                continue
            if key in self._queued:
                continue
            self._queued.add(key)
            by_tag = not is_digest(reference)
            if not by_tag:
                self._subjects[key] = digest
            level.tasks[key] = CopyTask(
                task.source,
                reference,
                _retarget(destinations, reference),
                (),
                overwrite=task.overwrite or by_tag,  # the fallback scheme moves its tags
                job=task.job,
            )

    async def list_present(self, done: list[tuple[CopyTask, ImageResult]]) -> None:
        """Referrers a destination held already (skipped, not written) are made sure to be listed
        there all the same (``list_referrers`` of the store): one stored by an earlier run whose
        listing failed, or by a version that did not list them, is found from now on. When that
        fails, the referrer's result at that destination fails, saying so."""
        groups: dict[tuple[str, Digest], tuple[Lister, list[tuple[Digest, DestinationResult]]]] = {}
        for task, image in done:
            subject = self._subjects.get((task.job, task.source.name, task.reference))
            if subject is None or image.error or len(image.destinations) != len(task.destinations):
                continue
            for dest, result in zip(task.destinations, image.destinations, strict=True):
                lister: Lister | None = getattr(dest.repo, "list_referrers", None)
                if result.status == SKIPPED and lister is not None:
                    group = groups.setdefault((dest.repo.name, subject), (lister, []))
                    group[1].append((Digest.parse(task.reference), result))

        async def one(
            where: str, subject: Digest, lister: Lister, items: list[tuple[Digest, DestinationResult]]
        ) -> None:
            try:
                async with self._limit:
                    await lister(subject, [d for d, _ in items])
            except MirrorError as exc:
                problem = MirrorError(
                    f"stored at {where} but not listed under the referrers of {subject}: {exc.message}"
                )
                problem.kind = exc.kind
                for _, result in items:
                    fail(result, problem)

        await asyncio.gather(
            *(one(where, subject, lister, items) for (where, subject), (lister, items) in groups.items())
        )


async def copy_referrers(
    engine: CopyEngine,
    done: list[tuple[CopyTask, ImageResult]],
    finder: ReferrerFinder | None = None,
    *,
    stopping: Callable[[], bool] = lambda: False,
    fresh: bool = True,
) -> list[ImageResult]:
    """Copy the referrers of ``done`` (tasks and their results) through ``engine``, level by
    level; the results of those copies, and a failure per subject that could not be looked up.
    ``fresh``: see :meth:`CopyEngine.run` (a pass's batches share what the engine learnt)."""
    finder = finder or ReferrerFinder()
    finder.already_copied([task for task, _ in done])
    results: list[ImageResult] = []
    for _ in range(MAX_DEPTH):
        if stopping() or not done:
            break
        tasks, failures = await finder.next_level(done)
        results.extend(failures)
        if not tasks or stopping():
            break
        images = await engine.run(tasks, fresh=fresh)
        done = list(zip(tasks, images, strict=True))
        if not engine.dry_run:
            await finder.list_present(done)
        results.extend(images)
    return results


def _placed(task: CopyTask, image: ImageResult) -> list[Destination]:
    """The destinations of ``task`` where its image is now (copied, already there, or planned)."""
    if image.error or len(image.destinations) != len(task.destinations):
        return []
    return [
        dest
        for dest, result in zip(task.destinations, image.destinations, strict=True)
        if result.status in (COPIED, SKIPPED, PLANNED)
    ]


def _retarget(destinations: list[Destination], reference: str) -> list[Destination]:
    # A referrer keeps its media types: it names its subject by the source's digest.
    return [Destination(d.repo, reference, layout=d.layout) for d in destinations]


async def _list_fallback_tags(source: Repository) -> list[str]:
    try:
        tags = await source.list_tags()
    except NotFound:
        return []
    return [t for t in tags if FALLBACK_TAG.match(t)]
