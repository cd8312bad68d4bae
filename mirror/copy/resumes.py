"""Source reads that were resumed (:mod:`mirror.registry.resume`): counted in the run's totals
and reported as events (metrics, logs), once the read is over."""

from __future__ import annotations

from mirror.copy.emit import Emitter
from mirror.copy.results import RunStats
from mirror.registry.base import BlobReader, Repository
from mirror.types import events as ev
from mirror.types.manifest import Descriptor


def record_resumes(
    reader: BlobReader, stats: RunStats, emit: Emitter, source: Repository, desc: Descriptor
) -> None:
    for resume in getattr(reader, "resumes", ()):
        stats.blob_resumes += 1
        emit(ev.BLOB_RESUMED, repo=source, digest=str(desc.digest), size=resume.offset, detail=resume.how)
    reread = getattr(reader, "bytes_reread", 0)
    stats.bytes_reread += reread
    stats.bytes_read += reread
