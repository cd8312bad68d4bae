"""What the service keeps of a pass for its status page: per job, images by status, bytes
written, and the images that did not end copied or skipped, each with its error.

Counted from the same results the run report is written from (as each was kept, by
:mod:`mirror.jobs.tally`; the rows from the few that need attention, without unpacking the
others), so the page and the report of a pass agree: an image's status is the report's
``images[].status``, the bytes are the sum of its ``destinations[].bytes_written``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mirror.copy.results import ImageResult
from mirror.jobs.tally import FINE

# Always present in a pass's counts (zero when none), in this order; others follow as they occur.
SHOWN_STATUSES = ("copied", "skipped", "failed", "deferred", "conflict")
PROBLEMS_KEPT = 200  # rows of images needing attention kept per job and pass


class PassProblems:
    """The rows (:func:`problems`) of a pass's images that need attention, per job: the first
    ``keep`` and how many there are. Fed those images in the pass's order
    (:meth:`~mirror.jobs.resultlog.ImageResults.attention`); an image that needs none adds
    nothing."""

    def __init__(self, keep: int = PROBLEMS_KEPT) -> None:
        self.keep = keep
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.totals: dict[str, int] = {}

    def add(self, image: ImageResult) -> None:
        if image.status in FINE:
            return
        found = problems(image)
        rows = self.rows.setdefault(image.job, [])
        self.totals[image.job] = self.totals.get(image.job, 0) + len(found)
        rows.extend(found[: max(0, self.keep - len(rows))])

    def details(self, job: str, statuses: Mapping[str, int], bytes_written: int) -> dict[str, Any]:
        """``statuses``, ``bytes_written``, ``problems`` and ``problems_total`` of ``job`` in
        the pass (the extra fields of :class:`~.state.PassInfo`), given its images by status and
        the bytes written to its destinations (see :class:`~mirror.jobs.tally.JobTally`)."""
        shown = dict.fromkeys(SHOWN_STATUSES, 0)
        shown.update(statuses)
        return {
            "statuses": shown,
            "bytes_written": bytes_written,
            "problems": self.rows.get(job, []),
            "problems_total": self.totals.get(job, 0),
        }


def problems(image: ImageResult) -> list[dict[str, str]]:
    """One row per destination of ``image`` that did not end copied or skipped (one row for the
    image when it failed before any destination): what a person needs to act on it."""
    rows = []
    if image.error:
        rows.append(
            {
                "image": image.source,
                "destination": "",
                "status": image.status,
                "error": image.error,
                "error_kind": image.error_kind,
            }
        )
    for dest in image.destinations:
        if dest.status not in FINE:
            rows.append(
                {
                    "image": image.source,
                    "destination": dest.destination,
                    "status": dest.status,
                    "error": dest.error,
                    "error_kind": dest.error_kind,
                }
            )
    return rows
