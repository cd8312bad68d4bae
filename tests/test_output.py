"""What a run prints: the summary lines of `mirror copy` and `mirror sync`."""

from __future__ import annotations

from mirror.copy.results import CONFLICT, FAILED, DestinationResult, ImageResult, RunStats
from mirror.jobs.report import summary_lines


def test_every_status_is_followed_by_a_space() -> None:
    """Before, a status of 8 letters ran into the image: ``CONFLICT127.0.0.1:...``."""
    image = ImageResult("127.0.0.1:5000/app:v1")
    image.destinations.append(
        DestinationResult("127.0.0.1:5001/app:v1", CONFLICT, "sha256:" + "a" * 64, error="names another")
    )
    [line, _totals] = summary_lines([image], RunStats())
    assert line.startswith("CONFLICT 127.0.0.1:5000/app:v1 -> 127.0.0.1:5001/app:v1")


def test_a_resolution_failure_is_printed_once() -> None:
    image = ImageResult("127.0.0.1:5000/app:v1", error="127.0.0.1:5000/app:v1 does not exist")
    for dest in ("127.0.0.1:5001/app:v1", "127.0.0.1:5002/app:v1"):
        image.destinations.append(DestinationResult(dest, FAILED, error=image.error))
    lines = summary_lines([image], RunStats())[:-1]
    assert lines == ["FAILED   127.0.0.1:5000/app:v1: 127.0.0.1:5000/app:v1 does not exist"]
