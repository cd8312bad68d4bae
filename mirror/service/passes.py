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


def by_job(images: Iterable[ImageResult]) -> dict[str, list[ImageResult]]:
    grouped: dict[str, list[ImageResult]] = {}
    for image in images:
        grouped.setdefault(image.job, []).append(image)
    return grouped


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
    statuses = dict.fromkeys(SHOWN_STATUSES, 0)
    written = 0
    rows: list[dict[str, str]] = []
    total = 0
    for image in images:
        statuses[image.status] = statuses.get(image.status, 0) + 1
        written += sum(d.bytes_written for d in image.destinations)
        found = problems(image) if image.status not in FINE else []
        total += len(found)
        rows.extend(found[: max(0, keep - len(rows))])
    return {"statuses": statuses, "bytes_written": written, "problems": rows, "problems_total": total}
