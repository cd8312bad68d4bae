"""What the service keeps of a pass for its status page: per job, images by status, bytes
written, and the images that did not end copied or skipped, each with its error.

Counted from the same :class:`~mirror.copy.results.ImageResult` list the run report is written
from, so the page and the report of a pass agree: an image's status is the report's
``images[].status``, the bytes are the sum of its ``destinations[].bytes_written``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mirror.copy.results import COPIED, PLANNED, SKIPPED, ImageResult

# Always present in a pass's counts (zero when none), in this order; others follow as they occur.
SHOWN_STATUSES = ("copied", "skipped", "failed", "deferred", "conflict")
FINE = (COPIED, SKIPPED, PLANNED)
PROBLEMS_KEPT = 200  # rows of images needing attention kept per job and pass


def details_by_job(images: Iterable[ImageResult], keep: int = PROBLEMS_KEPT) -> dict[str, dict[str, Any]]:
    """:func:`pass_details` of each job's images, in one reading of a pass's results (which may
    be 100,000 images: they are not grouped in memory first)."""
    found: dict[str, _Details] = {}
    for image in images:
        details = found.get(image.job)
        if details is None:
            details = found[image.job] = _Details(keep)
        details.add(image)
    return {job: details.result() for job, details in found.items()}


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


def pass_details(images: Iterable[ImageResult], keep: int = PROBLEMS_KEPT) -> dict[str, Any]:
    """``statuses``, ``bytes_written``, ``problems`` (the first ``keep``) and ``problems_total``
    of one job's images in a pass (the extra fields of :class:`~.state.PassInfo`)."""
    details = _Details(keep)
    for image in images:
        details.add(image)
    return details.result()


class _Details:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.statuses = dict.fromkeys(SHOWN_STATUSES, 0)
        self.written = 0
        self.rows: list[dict[str, str]] = []
        self.total = 0

    def add(self, image: ImageResult) -> None:
        self.statuses[image.status] = self.statuses.get(image.status, 0) + 1
        self.written += sum(d.bytes_written for d in image.destinations)
        found = problems(image) if image.status not in FINE else []
        self.total += len(found)
        self.rows.extend(found[: max(0, self.keep - len(self.rows))])

    def result(self) -> dict[str, Any]:
        return {
            "statuses": self.statuses,
            "bytes_written": self.written,
            "problems": self.rows,
            "problems_total": self.total,
        }
