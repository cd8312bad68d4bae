"""A pass hands its copies to the engine in bounded batches, and still reads each blob once.

The batch size is made tiny here (4 images, 2 batches at a time) so that a small fleet spans
many batches: what the pass has in flight stays within the bound, every image is copied, shared
blobs are read from the source once across batches, results keep the repository and tag order,
and a second pass finds everything in place.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mirror.copy.resolve import Resolver
from mirror.jobs import batches
from tests.test_sync import seed_fleet, sync, write_config


def test_a_pass_in_small_batches(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "PASS_BATCH", 4)
    monkeypatch.setattr(batches, "PASS_BATCHES", 2)
    in_flight = {"now": 0, "most": 0}
    resolve = Resolver.resolve

    async def counted(self: Resolver, task: Any) -> Any:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            await asyncio.sleep(0)
            return await resolve(self, task)
        finally:
            in_flight["now"] -= 1

    monkeypatch.setattr(Resolver, "resolve", counted)
    src, dst = registry_pair
    digests = seed_fleet(src)  # 6 repositories x 3 tags sharing base layers, and an index
    proxy = proxy_factory.start(src)
    config = write_config(
        tmp_path / "c.yaml",
        f"""
version: 1
registries:
  "{proxy.host}": {{plain_http: true}}
jobs:
  - name: apps
    source: {proxy.host}/apps/*
    destinations: [{dst.host}/mirror]
""",
    )
    report = tmp_path / "r.json"
    assert sync(config, "--once", "--report", str(report)) == 0
    doc = json.loads(report.read_text())
    assert [i["status"] for i in doc["images"]] == ["copied"] * len(digests)
    assert 4 < in_flight["most"] <= 8  # more than one batch at once, never more than two
    # Results in catalog and tag-list order, as the pass planned them.
    repos = [i["source"].split("/", 1)[1].split(":")[0] for i in doc["images"]]
    assert repos == sorted(repos)  # the catalog's order (distribution lists it sorted)
    # The base layers shared by every repository were read once, across batches.
    blob_gets = [r.path.rsplit("/", 1)[1] for r in proxy.select("GET", "/blobs/sha256:")]
    assert len(blob_gets) == len(set(blob_gets)), "a blob was read twice"
    assert doc["totals"]["bytes_read"] == doc["totals"]["unique_blob_bytes"]
    proxy.clear()
    assert sync(config, "--once", "--report", str(report)) == 0
    doc = json.loads(report.read_text())
    assert [i["status"] for i in doc["images"]] == ["skipped"] * len(digests)
    assert not proxy.select("GET", "/blobs/")


def test_packed_results_are_the_results() -> None:
    from mirror.copy.results import DestinationResult, ImageResult
    from mirror.jobs.resultlog import ImageResults

    plain = ImageResult(
        "h:5000/a/b:v1",
        "sha256:" + "1" * 64,
        job="j",
        destinations=[DestinationResult("d/a/b:v1", "skipped", "sha256:" + "1" * 64)],
    )
    odd = ImageResult(
        "h/a/c@sha256:" + "2" * 64,
        "sha256:" + "3" * 64,
        source_digest="sha256:" + "2" * 64,
        job="j2",
        note="filtered to linux/amd64: ü",
        destinations=[
            DestinationResult(
                "d1/c:v1", "copied", "sha256:" + "3" * 64, blobs_pushed=2, bytes_written=10**13
            ),
            DestinationResult("d2/c:v1", "failed", "", error="HTTP 503", error_kind="registry"),
        ],
        blobs=3,
        bytes_total=12345,
    )
    broken = ImageResult("h/a/d:v1", error="not found", error_kind="not_found")
    packed = ImageResults([plain, odd])
    packed.append(broken)
    assert list(packed) == [plain, odd, broken]
    assert packed[1] == odd and packed[-1] == broken and packed[0:2] == [plain, odd]
    assert len(packed) == 3 and [i.status for i in packed] == ["skipped", "failed", "failed"]
    more = ImageResults([broken])
    more.extend(packed)
    assert list(more) == [broken, plain, odd, broken]
    grown = []
    for image in packed:  # appending while iterating is allowed
        grown.append(image)
        if len(packed) < 5:
            packed.append(plain)
    assert len(packed) == 5 and grown == list(packed)
    first, second = ImageResults([plain]), ImageResults([odd])
    first.extend(second)
    second.append(broken)
    first.append(plain)
    assert list(first) == [plain, odd, plain] and list(second) == [odd, broken]
