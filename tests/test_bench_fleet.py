"""The scale benchmark's generated fleet: its content is consistent, its listings paginate, and a
``mirror sync --once`` pass over it copies everything cold and costs one manifest HEAD per tag
and side (plus listings) warm. Never timing."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.fleet_content import Fleet
from benchmarks.scale import FleetServer, one_pass


def _get(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read(), dict(resp.headers)


def test_fleet_content_is_content_addressed() -> None:
    fleet = Fleet(3, 4, prefixes=("fleet", "mirror"))
    assert fleet.names == [f"{p}/r000{i}" for p in ("fleet", "mirror") for i in range(3)]
    seen: set[bytes] = set()
    for i in range(3):
        for j in range(4):
            raw = fleet.find_manifest(i, f"t{j:03d}")
            assert raw is not None
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            assert fleet.find_manifest(i, digest) == raw
            assert fleet.find_manifest((i + 1) % 3, digest) is None  # another repository's
            doc = json.loads(raw)
            for desc in [doc["config"], *doc["layers"]]:
                blob = fleet.find_blob(i, desc["digest"])
                assert blob is not None and len(blob) == desc["size"]
                assert "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"]
            seen.add(raw)
    assert len(seen) == 12
    assert fleet.repository("fleet/r0003") is None and fleet.repository("other/r0001") is None


@pytest.fixture
def source() -> Iterator[FleetServer]:
    server = FleetServer(3, 5)
    yield server
    server.close()


def test_listings_paginate(source: FleetServer) -> None:
    names: list[str] = []
    url = f"http://{source.host}/v2/_catalog?n=2"
    for _ in range(5):
        body, headers = _get(url)
        names += json.loads(body)["repositories"]
        link = headers.get("Link")
        if not link:
            break
        url = f"http://{source.host}" + link.split(";")[0].strip("<>")
    assert names == ["fleet/r0000", "fleet/r0001", "fleet/r0002"]
    body, _ = _get(f"http://{source.host}/v2/fleet/r0001/tags/list")
    assert json.loads(body)["tags"] == [f"t{j:03d}" for j in range(5)]


def test_sync_pass_cold_then_warm(source: FleetServer, tmp_path: Path) -> None:
    sink = FleetServer()
    try:
        stats, seen = one_pass(tmp_path, source, sink, "cold")
        assert stats.returncode == 0, stats.stderr
        images = seen["report"]["images"]
        assert len(images) == 15 and {i["status"] for i in images} == {"copied"}
        assert seen["destination_routes"]["PUT manifest"] == 15
        copied, _ = _get(f"http://{sink.host}/v2/mirror/r0002/manifests/t004")
        original, _ = _get(f"http://{source.host}/v2/fleet/r0002/manifests/t004")
        assert copied == original
    finally:
        sink.close()
    dest = FleetServer(3, 5, prefix="mirror")
    try:
        stats, seen = one_pass(tmp_path, source, dest, "warm")
    finally:
        dest.close()
    assert stats.returncode == 0, stats.stderr
    assert {i["status"] for i in seen["report"]["images"]} == {"skipped"}
    src, dst = seen["source_routes"], seen["destination_routes"]
    assert src.pop("HEAD manifest") == 15 and dst.pop("HEAD manifest") == 15
    # Everything else is a listing: the catalog, one tag list per source repository, pings.
    assert set(src) | set(dst) <= {"GET catalog", "GET tags", "GET ping"}, (src, dst)
    assert src["GET tags"] == 3
