"""After a pass, its packed results are read once: what the jobs' outcomes, log lines and status
page need is counted as each result is kept, the images needing attention are the only ones read
for them, and the report is the one reading of every result (the drift check learns from it)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mirror.copy.results import DestinationResult, ImageResult
from mirror.jobs import resultlog
from mirror.jobs.drift import DIFFERENT, IN_SYNC
from mirror.jobs.resultlog import ImageResults
from mirror.jobs.survey import known_from
from mirror.service import reconcile
from tests.support.images import push_image
from tests.support.passdetails import pass_details

D1 = "sha256:" + "1" * 64


def image(job: str, name: str, *statuses: str, error: str = "", kind: str = "") -> ImageResult:
    return ImageResult(
        f"src/{name}:v1",
        "" if error else D1,
        job=job,
        error=error,
        error_kind=kind,
        destinations=[
            DestinationResult(f"d{n}/{name}:v1", s, D1, error="" if s in ("copied", "skipped") else s)
            for n, s in enumerate(statuses)
        ]
        if not error
        else [],
        blobs=1,
        bytes_total=10,
    )


def test_the_tally_and_the_images_needing_attention_are_the_results() -> None:
    a = [
        image("a", "one", "skipped"),
        image("a", "two", "copied", "conflict"),
        image("a", "three", error="HTTP 500", kind="registry"),
        image("a", "four", "copied", "copied"),
    ]
    b = [
        image("b", "five", "planned"),
        image("b", "six", error="pull limit", kind="deferred"),
        image("b", "seven", "skipped", "failed"),
    ]
    a[3].destinations[0].bytes_written, a[3].destinations[1].bytes_written = 5, 7
    # Kept in pieces, and the pieces joined, as a pass joins its repositories' results.
    first, second, third = ImageResults(a[:2]), ImageResults(b), ImageResults(a[2:])
    every = ImageResults()
    for piece in (first, second, third):
        every.extend(piece)
    results = a[:2] + b + a[2:]
    assert list(every) == results
    attention = [i for i in results if not i.ok or i.status not in ("copied", "skipped", "planned")]
    assert list(every.attention()) == attention
    assert [i.source for i in attention] == [f"src/{n}:v1" for n in ("two", "six", "seven", "three")]
    tallies = every.tally.jobs
    assert (tallies["a"].images, tallies["a"].failed, tallies["a"].deferred) == (4, 2, 0)
    assert (tallies["b"].images, tallies["b"].failed, tallies["b"].deferred) == (3, 1, 1)
    assert tallies["a"].statuses == {"skipped": 1, "conflict": 1, "failed": 1, "copied": 1}
    assert tallies["b"].statuses == {"planned": 1, "deferred": 1, "failed": 1}
    assert tallies["a"].bytes_written == 12
    # A piece keeps counting its own results after it was joined.
    third.append(image("a", "eight", "failed"))
    assert third.tally.jobs["a"].images == 3 and tallies["a"].images == 4
    assert [i.source for i in third.attention()] == ["src/three:v1", "src/eight:v1"]
    # The status page's details of a job: shown statuses first, the others as they occur.
    details = pass_details(b, keep=1)
    assert list(details["statuses"]) == ["copied", "skipped", "failed", "deferred", "conflict", "planned"]
    assert details["statuses"]["failed"] == 1 and details["problems_total"] == 2
    assert [(p["image"], p["status"]) for p in details["problems"]] == [("src/six:v1", "deferred")]


async def test_a_pass_reads_each_result_once_after_it_ends(
    registry_pair: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mirror.jobs.config import load_config
    from mirror.service.daemon import Daemon

    src, dst = registry_pair
    for tag in ("v1", "v2", "v3", "v4"):
        push_image(src, "apps/web", tag, seed=f"once-{tag}")
    push_image(dst, "m/web", "v2", seed="once-v2")  # found in place
    push_image(dst, "m/web", "v4", seed="theirs")  # a conflict: the image needing attention
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
jobs: [{{name: web, source: "{src.host}/apps/web", destinations: ["{dst.host}/m"]}}]
""")
    loaded = load_config(config)
    report = tmp_path / "r.json"
    daemon = Daemon(loaded, list(loaded.jobs), report_path=str(report), metrics=None)
    daemon.check_drift = True  # as in serve mode
    unpacked: list[str] = []
    unpack = resultlog.unpack

    def counted(data: bytes | bytearray) -> ImageResult:
        found = unpack(data)
        unpacked.append(found.source.rsplit(":", 1)[1])
        return found

    monkeypatch.setattr(resultlog, "unpack", counted)
    given: list[Any] = []
    verify = reconcile.verify_jobs

    async def verify_jobs(run: Any, jobs: Any, known: Any = None, **kw: Any) -> Any:
        given.append(known)
        return await verify(run, jobs, known, **kw)

    monkeypatch.setattr(reconcile, "verify_jobs", verify_jobs)
    with caplog.at_level(logging.INFO, logger="mirror"):
        result = await daemon.once()

    assert not result.ok
    # Each result once (the report), and the one needing attention once more (its problem
    # row on the status page and its warning).
    assert sorted(unpacked) == ["v1", "v2", "v3", "v4", "v4"]
    doc = json.loads(report.read_text())
    assert doc["ok"] is False
    assert [(i["source"].rsplit(":", 1)[1], i["status"]) for i in doc["images"]] == [
        ("v1", "copied"),
        ("v2", "skipped"),
        ("v3", "copied"),
        ("v4", "conflict"),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and warnings[0].startswith("CONFLICT ") and "apps/web:v4 ->" in warnings[0]
    assert warnings[1] == "job web drifts: 1 different_digest"
    last = daemon.state.job("web").last_pass
    assert last is not None and (last.images, last.failed) == (4, 1)
    assert last.statuses == {"copied": 2, "skipped": 1, "failed": 0, "deferred": 0, "conflict": 1}
    assert [p["status"] for p in last.problems] == ["conflict"] and last.problems_total == 1
    # The drift check was given what the report's reading learnt: all of it.
    (known,) = given
    assert known == known_from(ImageResults(ImageResult(**i) for i in _images(doc)))
    assert daemon.state.job("web").drift is not None
    assert daemon.state.job("web").drift[IN_SYNC] == 3 and daemon.state.job("web").drift[DIFFERENT] == 1


def _images(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's images as ImageResult fields."""
    found = []
    for entry in doc["images"]:
        fields = {k: v for k, v in entry.items() if k != "status"}
        fields["destinations"] = [DestinationResult(**d) for d in entry["destinations"]]
        found.append(fields)
    return found


def test_a_result_as_a_report_row_is_its_fields_in_order_and_its_status() -> None:
    """``to_dict`` (one per image in every report) is ``dataclasses.asdict`` plus ``status``, key
    order included, without asdict's deep copy."""
    import dataclasses

    for result in (
        image("a", "web", "copied", "skipped"),
        image("a", "api", "failed"),
        image("b", "db", error="source gone", kind="not_found"),
        ImageResult("src/x:v1", D1, "sha256:" + "2" * 64, "j", "filtered", destinations=[]),
    ):
        want = dataclasses.asdict(result) | {"status": result.status}
        got = result.to_dict()
        assert json.dumps(got) == json.dumps(want)
        assert got["destinations"] is not result.destinations


def test_a_report_has_one_image_per_line(tmp_path: Path) -> None:
    """Each image's row is one line (``grep`` shows an image's whole row); the file is JSON."""
    from mirror.jobs.report import Rows, write_report

    results = [image("a", "web", "copied"), image("a", "api", "failed"), image("b", "db", error="gone")]
    doc = {"totals": {"images": 3}, "images": Rows(results, ImageResult.to_dict)}
    write_report(tmp_path / "r.json", doc)
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text) == {"totals": {"images": 3}, "images": [r.to_dict() for r in results]}
    rows = [line.strip().rstrip(",") for line in text.splitlines() if '"source":' in line]
    assert [json.loads(row)["source"] for row in rows] == [r.source for r in results]
