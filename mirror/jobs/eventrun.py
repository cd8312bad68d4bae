"""Copy tasks for the images events asked for (see :mod:`.routing`).

Each wanted image is read by what the event named (its digest, when it said) and written under
its tag. Before that, the source tag is looked up once (HEAD): if it is visible and names
another digest, the tag has moved on since the event, and the source wins. A tag that is not
visible yet (registries may notify a push before its tag lists) is read by the event's digest.
A job pinned to a digest copies that digest whatever the tag says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mirror.copy.engine import CopyTask
from mirror.copy.results import ImageResult
from mirror.jobs.mapping import SourceKind
from mirror.jobs.syncrun import JobSpec, SyncRun
from mirror.types.digest import is_digest
from mirror.types.errors import MirrorError


@dataclass(frozen=True)
class Wanted:
    read: str  # a digest, or a tag when the event named none
    write: str  # the destination reference: a tag (or a digest for a digest-pinned job)


async def plan_images(
    run: SyncRun,
    job: JobSpec,
    repo_path: str,
    wanted: Sequence[Wanted],
    on_done: Callable[[Wanted, ImageResult], None] | None = None,
) -> list[CopyTask]:
    """Copy tasks for ``wanted`` images of the source repository ``repo_path`` of ``job``;
    ``on_done`` is told each one's result as soon as it has its outcome."""
    source = run.source_repository(job, repo_path)
    dests = await run.destinations(job, repo_path)
    pinned = job.source.kind is SourceKind.IMAGE and job.source.digest is not None
    tasks = []
    for item in wanted:
        read = item.read
        if is_digest(read) and not is_digest(item.write) and not pinned:
            try:
                now = await source.head_manifest(item.write)
            except MirrorError:
                now = None  # the copy itself reports an unreadable source
            if now is not None and str(now.digest) != read:
                read = str(now.digest)
        task = CopyTask(
            source,
            read,
            [run.destination(job, d, item.write) for d in dests],
            job.platforms,
            job.overwrite,
            job.name,
        )
        if on_done is not None:
            task.on_done = _tell(on_done, item)
        tasks.append(task)
    return tasks


def _tell(on_done: Callable[[Wanted, ImageResult], None], item: Wanted) -> Callable[[ImageResult], None]:
    def done(result: ImageResult) -> None:
        on_done(item, result)

    return done
