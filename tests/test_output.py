"""What a run prints: the summary lines of `mirror copy` and `mirror sync`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirror.cli.main import main
from mirror.copy.results import CONFLICT, FAILED, DestinationResult, ImageResult, RunStats
from mirror.jobs.report import summary_lines
from mirror.types.sizes import human_bytes
from tests.support.faults import ErrorBurst
from tests.support.images import layer, push_image

KiB = 1024


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


def test_dry_run_totals_count_a_shared_blob_once(registry_pair: Any, tmp_path: Path, capsys: Any) -> None:
    """Three tags of one repository share two base layers: the plan's totals say what the
    real run then writes (before, each tag counted the shared blobs again: 12 sends for 8)."""
    src, dst = registry_pair
    base = [layer(40 * KiB, "base-a"), layer(20 * KiB, "base-b")]
    for tag in ("v1", "v2", "v3"):
        push_image(src, "apps/web", tag, (KiB,), seed=tag, base_layers=base)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst.host}/mirror]
"""
    )
    assert main(["sync", "--config", str(config), "--dry-run"]) == 0
    totals = capsys.readouterr().out.strip().splitlines()[-1]
    report = tmp_path / "r.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 0
    done = json.loads(report.read_text())["totals"]
    assert done["blobs_pushed"] == 8
    written = human_bytes(done["bytes_written"])
    assert totals.startswith(f"blobs: 8 sends, 0 mounts, 0 already present; {written} to write"), totals


def test_a_failed_run_reports_the_blobs_it_wrote(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """The tag PUT fails after every blob was uploaded: the totals say so (before: "wrote 0 B;
    blobs pushed 0")."""
    src, dst = registry_pair
    img = push_image(src, "apps/web", "v1", (3 * KiB, 5 * KiB), seed="web")
    proxy = proxy_factory.start(dst)
    proxy.add_fault(ErrorBurst(400, times=None, method="PUT", path=r"/manifests/v1$"))
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "copy",
                "--quiet",
                f"{src.host}/apps/web:v1",
                f"{proxy.host}/apps/web:v1",
                "--report",
                str(report),
            ]
        )
        == 1
    )
    totals = json.loads(report.read_text())["totals"]
    size = len(img.config) + sum(b.size for b in img.layers)
    assert totals["blobs_pushed"] == 3 and totals["bytes_written"] == size
