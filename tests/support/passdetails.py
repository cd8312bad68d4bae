"""A job's status-page details from a list of its image results, as the service builds them
after a pass: :class:`~mirror.jobs.tally.JobTally` counts each image, and the images needing
attention feed :class:`~mirror.service.passes.PassProblems`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from mirror.copy.results import ImageResult
from mirror.jobs.tally import JobTally
from mirror.service.passes import PROBLEMS_KEPT, PassProblems


def pass_details(images: Iterable[ImageResult], keep: int = PROBLEMS_KEPT) -> dict[str, Any]:
    """:meth:`PassProblems.details` of ``images``, taken as one job's."""
    counted, found = JobTally(), PassProblems(keep)
    for image in images:
        if counted.add(image):
            found.add(replace(image, job=""))
    return found.details("", counted.statuses, counted.bytes_written)
