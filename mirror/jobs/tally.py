"""What a pass's results add up to, per job, counted as each result is kept.

A pass over 100,000 tags keeps its results packed (:mod:`.resultlog`); what its jobs' outcomes,
log lines and status page need of them (images, failures, deferrals, images by status, bytes
written, and which images need attention) is counted here when each result is stored, so that
nothing has to unpack every result again to learn it. Only the report reads every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mirror.copy.results import COPIED, DEFERRED, PLANNED, SKIPPED, ImageResult

FINE = (COPIED, SKIPPED, PLANNED)  # an image with one of these statuses needs no attention


@dataclass
class JobTally:
    """One job's images in a pass."""

    images: int = 0
    failed: int = 0  # not ok
    deferred: int = 0  # ok, left for a later pass
    statuses: dict[str, int] = field(default_factory=dict)  # images by status, as first met
    bytes_written: int = 0  # to the job's destinations

    def add(self, image: ImageResult) -> bool:
        """Count ``image``; whether it needs attention (not ok, or not copied, skipped or
        planned)."""
        status, ok = image.status, image.ok
        self.images += 1
        if not ok:
            self.failed += 1
        elif status == DEFERRED:
            self.deferred += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.bytes_written += sum(d.bytes_written for d in image.destinations)
        return not ok or status not in FINE

    def merge(self, other: JobTally) -> None:
        self.images += other.images
        self.failed += other.failed
        self.deferred += other.deferred
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.bytes_written += other.bytes_written


class PassTally:
    """A :class:`JobTally` per job, in the order the jobs were first met."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobTally] = {}

    def add(self, image: ImageResult) -> bool:
        """Count ``image`` in its job's tally; whether it needs attention (see :meth:`JobTally.add`)."""
        tally = self.jobs.get(image.job)
        if tally is None:
            tally = self.jobs[image.job] = JobTally()
        return tally.add(image)

    def merge(self, other: PassTally) -> None:
        for job, counted in other.jobs.items():
            mine = self.jobs.get(job)
            if mine is None:
                mine = self.jobs[job] = JobTally()
            mine.merge(counted)
