"""Drift classification and tag coverage (pure), and `mirror verify` against real registries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.jobs.drift import (
    DESTINATION_UNREADABLE,
    DIFFERENT,
    EXTRA,
    IN_SYNC,
    INCOMPLETE,
    MISSING,
    SOURCE_UNREADABLE,
    Listing,
    Lookup,
    Pair,
    RepoState,
    claimed_elsewhere,
    classify,
    counts,
)
from mirror.jobs.filters import TagFilter
from mirror.jobs.selection import covers_tag, select_references
from tests.support.images import fetch_manifest, push_image, push_index, push_manifest

D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")
FALLBACK = "sha256-" + "a" * 64 + ".sig"


def state(**kw: Any) -> RepoState:
    base: dict[str, Any] = {
        "job": "j",
        "source": "src/app",
        "destination": "dst/app",
        "pairs": (Pair("v1", "v1"),),
        "source_listing": Listing(frozenset({"v1"})),
        "dest_listing": Listing(frozenset({"v1"})),
        "source_digests": {"v1": Lookup(D1)},
        "dest_digests": {"v1": Lookup(D1)},
    }
    base.update(kw)
    return RepoState(**base)


def everything(_tag: str) -> bool:
    return True


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, [IN_SYNC]),
        ({"dest_digests": {"v1": Lookup(None)}, "dest_listing": Listing(frozenset())}, [MISSING]),
        ({"dest_digests": {"v1": Lookup(D2)}}, [DIFFERENT]),
        # The right digest, but the layout lacks a blob it names (only `mirror verify` walks).
        ({"dest_gaps": {"v1": (f"blob {D3} (10 bytes) of v1 is missing",)}}, [INCOMPLETE]),
        ({"source_digests": {"v1": Lookup(None, "HTTP 500")}}, [SOURCE_UNREADABLE]),
        ({"source_digests": {"v1": Lookup(None)}}, [SOURCE_UNREADABLE]),
        ({"dest_digests": {"v1": Lookup(None, "HTTP 403")}}, [DESTINATION_UNREADABLE]),
        # A tag at the destination the source no longer has: extra.
        (
            {"dest_listing": Listing(frozenset({"v1", "old"})), "dest_digests": {"v1": Lookup(D1)}},
            [IN_SYNC, EXTRA],
        ),
        # The source listing failed: one row for the repository, and no extras guessed.
        (
            {
                "source_listing": Listing(None, "HTTP 503"),
                "pairs": (),
                "dest_listing": Listing(frozenset({"v1", "old"})),
            },
            [SOURCE_UNREADABLE],
        ),
        # The destination listing failed: a row for it; images are still compared.
        ({"dest_listing": Listing(None, "HTTP 401")}, [DESTINATION_UNREADABLE, IN_SYNC]),
    ],
)
def test_classify_states(changes: dict[str, Any], expected: list[str]) -> None:
    assert [row.state for row in classify(state(**changes), everything)] == expected


def test_classify_names_images_and_digests() -> None:
    rows = classify(
        state(
            pairs=(Pair("v1", "v1"), Pair("v2", "v2")),
            source_listing=Listing(frozenset({"v1", "v2"})),
            dest_listing=Listing(frozenset({"v1", "gone"})),
            source_digests={"v1": Lookup(D1), "v2": Lookup(D2)},
            dest_digests={"v1": Lookup(D3), "v2": Lookup(None), "gone": Lookup(D1)},
        ),
        everything,
    )
    assert [(r.state, r.source, r.destination, r.source_digest, r.destination_digest) for r in rows] == [
        (DIFFERENT, "src/app:v1", "dst/app:v1", D1, D3),
        (MISSING, "src/app:v2", "dst/app:v2", D2, ""),
        (EXTRA, "src/app:gone", "dst/app:gone", "", D1),
    ]
    assert counts(rows)[DIFFERENT] == counts(rows)[MISSING] == counts(rows)[EXTRA] == 1
    assert counts(rows)[IN_SYNC] == 0


def test_a_single_image_source_has_no_extras_and_may_be_pinned_by_digest() -> None:
    pinned = state(
        pairs=(Pair(D1, D1),),
        source_listing=None,
        dest_listing=Listing(frozenset({"other"})),
        source_digests={D1: Lookup(D1)},
        dest_digests={D1: Lookup(D1)},
    )
    assert [(r.state, r.destination) for r in classify(pinned, lambda _t: False)] == [
        (IN_SYNC, f"dst/app@{D1}")
    ]


def test_extras_follow_the_filter_and_another_sources_tags() -> None:
    only_v = TagFilter.build(include=["^v"])
    covered = state(dest_listing=Listing(frozenset({"v1", "v0", "nightly"})))
    rows = classify(covered, lambda t: covers_tag(t, only_v, False))
    assert [(r.state, r.destination) for r in rows] == [(IN_SYNC, "dst/app:v1"), (EXTRA, "dst/app:v0")]
    other = state(source="other/app", source_listing=Listing(frozenset({"v0"})), pairs=())
    claimed = claimed_elsewhere([covered, other])
    assert claimed(covered, "v0") and not claimed(covered, "v1") and not claimed(other, "v0")


def test_a_destination_host_spelled_otherwise_is_the_same_repository() -> None:
    """Another source copying into ``DST.example:443/app`` claims tags of ``dst.example/app``."""
    mine = state(destination="dst.example/app", dest_listing=Listing(frozenset({"v0", "v1"})))
    theirs = state(
        source="other/app",
        destination="DST.example:443/app",
        source_listing=Listing(frozenset({"v0"})),
        pairs=(),
    )
    claimed = claimed_elsewhere([mine, theirs])
    assert claimed(mine, "v0") and not claimed(mine, "v1")


def test_selection_and_coverage_agree_on_fallback_tags() -> None:
    tags = ["v1.0.0", "v2.0.0", FALLBACK, "dev"]
    only_v = TagFilter.build(include=["^v"], latest=1)
    # Fallback tags are not selected by name: they follow the subjects they name, once copied.
    assert select_references(tags, only_v) == ["v2.0.0"]
    # ``latest`` narrows what is copied, not what is covered: v1.0.0 is still the job's tag.
    assert covers_tag("v1.0.0", only_v, False) and not covers_tag("dev", only_v, False)
    assert covers_tag(FALLBACK, only_v, True) and not covers_tag(FALLBACK, only_v, False)


# -- mirror verify against real registries ------------------------------------------------------


def verify(config: Path, *args: str) -> int:
    return main(["verify", "--config", str(config), *args])


def test_verify_reports_exactly_the_seeded_drift(
    registry_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_pair
    for tag in ("v1", "v2", "v3", "v4"):
        push_image(src, "apps/web", tag, seed=f"web-{tag}")
    push_index(src, "apps/multi", "v1", ["linux/amd64", "linux/arm64"], seed="multi")
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
jobs:
  - name: apps
    source: {src.host}/apps/*
    destinations: [{dst.host}/m]
    tags: {{include: ["^v"]}}
  - name: multi
    source: {src.host}/apps/multi:v1
    destinations: [{dst.host}/arm]
    platforms: [linux/arm64]
""")
    assert main(["sync", "--config", str(config), "--once"]) == 0
    report = tmp_path / "verify.json"
    assert verify(config, "--report", str(report)) == 0
    doc = json.loads(report.read_text())
    assert doc["ok"] and doc["totals"]["in_sync"] == 6  # 4 + 1 tags of apps, the filtered index
    # Seed drift: v1 deleted at the destination, v2 moved to v3's image, an extra v9 (covered by
    # the filter) and an uncovered tag 'scratch' (not the job's: not reported).
    digest = fetch_manifest(dst, "m/web", "v1").digest
    import requests

    assert requests.delete(f"{dst.url}/v2/m/web/manifests/{digest}", timeout=10).status_code == 202
    moved = fetch_manifest(dst, "m/web", "v3")
    push_manifest(dst, "m/web", "v2", moved.data, moved.media_type)
    push_image(dst, "m/web", "v9", seed="web-extra")
    push_image(dst, "m/web", "scratch", seed="web-scratch")
    capsys.readouterr()
    assert verify(config, "--report", str(report)) == 1
    out = capsys.readouterr().out
    doc = json.loads(report.read_text())
    drift = sorted((r["state"], r["destination"]) for r in doc["rows"] if r["state"] != IN_SYNC)
    assert drift == [
        (DIFFERENT, f"{dst.host}/m/web:v2"),
        (EXTRA, f"{dst.host}/m/web:v9"),
        (MISSING, f"{dst.host}/m/web:v1"),
    ]
    assert doc["totals"] == {
        IN_SYNC: 4,
        MISSING: 1,
        DIFFERENT: 1,
        INCOMPLETE: 0,
        EXTRA: 1,
        SOURCE_UNREADABLE: 0,
        DESTINATION_UNREADABLE: 0,
    }
    assert "MISSING" in out and "DIFFERENT_DIGEST" in out and "EXTRA" in out and "drift found" in out
    # --job narrows the check: the filtered multi-platform image alone is in sync.
    assert verify(config, "--job", "multi") == 0


def test_verify_reports_an_unreadable_source(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "apps/web", "v1")
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst.host}/m, "oci:{tmp_path / "layout"}"]
""")
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert verify(config) == 0
    src.stop()
    report = tmp_path / "r.json"
    assert verify(config, "--report", str(report)) == 1
    doc = json.loads(report.read_text())
    assert [r["state"] for r in doc["rows"]] == [SOURCE_UNREADABLE, SOURCE_UNREADABLE]
    assert all(r["error"] for r in doc["rows"])


def test_verify_finds_a_layout_tag_whose_content_is_gone(
    registry: Any, tmp_path: Path, aws_env: str, s3: Any, bucket: str
) -> None:
    """A tag in an `oci:` or `s3://` layout naming the right digest while a blob it names was
    removed behind mirror's back (a pass never writes such a tag): `mirror verify` walks what the
    layout holds and reports the row `incomplete`, naming the blob."""
    image = push_image(registry, "apps/web", "v1", layer_sizes=(2048, 1024), seed="whole")
    layout = tmp_path / "layout"
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
jobs:
  - name: web
    source: {registry.host}/apps/web
    destinations: ["oci:{layout}", "s3://{bucket}/backup"]
""")
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert verify(config) == 0  # whole at both
    lost, cut = image.layers[0].digest, image.layers[1].digest
    (layout / "web" / "blobs" / "sha256" / lost.split(":", 1)[1]).unlink()
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith(cut[7:])]
    s3.put_object(Bucket=bucket, Key=key, Body=b"cut short")
    report = tmp_path / "r.json"
    assert verify(config, "--report", str(report)) == 1
    rows = {r["destination"].split(":", 1)[0]: r for r in json.loads(report.read_text())["rows"]}
    assert {r["state"] for r in rows.values()} == {INCOMPLETE}
    assert rows["oci"]["destination_digest"] == rows["s3"]["destination_digest"] == image.digest
    assert f"blob {lost} (2048 bytes) of v1 is missing" == rows["oci"]["error"]
    assert f"blob {cut} (1024 bytes) of v1 is missing" == rows["s3"]["error"]


async def test_serve_publishes_drift_after_each_pass(registry_pair: Any, tmp_path: Path) -> None:
    import asyncio
    import urllib.request

    from mirror.jobs.config import load_config
    from mirror.service.daemon import Daemon
    from tests.support.net import free_port

    src, dst = registry_pair
    push_image(src, "apps/web", "v1", seed="w1")
    push_image(dst, "m/web", "v0", seed="w0")  # extra: the source never had it
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
metrics: {{address: "127.0.0.1:{port}"}}
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst.host}/m]
    schedule: {{interval: 1h, jitter: 0}}
""")
    loaded = load_config(config)
    daemon = Daemon(loaded, list(loaded.jobs))
    serving = asyncio.create_task(daemon.serve())

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())

    try:
        text = ""
        for _ in range(100):
            await asyncio.sleep(0.1)
            state = daemon.state.job("web")
            if state.drift is not None:
                text = await asyncio.to_thread(scrape)
                break
        assert daemon.state.job("web").drift == {
            IN_SYNC: 1,
            MISSING: 0,
            DIFFERENT: 0,
            INCOMPLETE: 0,
            EXTRA: 1,
            SOURCE_UNREADABLE: 0,
            DESTINATION_UNREADABLE: 0,
        }
        assert 'mirror_drift_images{job_name="web",state="extra"} 1.0' in text
        assert 'mirror_drift_images{job_name="web",state="in_sync"} 1.0' in text
        last = daemon.state.snapshot()["jobs"][0]["last_pass"]
        assert last["ok"] and last["images"] == 1 and last["trigger"] == "schedule"
    finally:
        daemon.request_stop()
        await asyncio.wait_for(serving, 20)


def test_every_replication_metric_is_documented() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from mirror.service import replication

    registry = CollectorRegistry()
    metrics = replication.ReplicationMetrics(registry)
    metrics.job("j")
    metrics.set_drift("j", {IN_SYNC: 3}, 1.0)
    metrics.lag.labels(job_name="j").observe(0.5)
    metrics.prune_refusals.labels(job_name="j", reason="over_cap").inc()
    text = generate_latest(registry).decode()
    for name in replication.METRIC_NAMES:
        assert name in text, name
        assert name in (replication.__doc__ or ""), f"{name} is not documented"


async def test_the_check_after_a_pass_reuses_what_the_pass_learnt(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    from mirror.jobs.config import parse_config
    from mirror.jobs.survey import known_from, verify_jobs
    from mirror.jobs.syncrun import SyncRun, job_spec
    from mirror.transport.client import HostOptions, Transport

    src, dst = registry_pair
    for tag in ("v1", "v2", "v3"):
        push_image(src, "apps/web", tag, seed=f"known-{tag}")
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    config = parse_config(f"""
version: 1
jobs: [{{name: web, source: "{sp.host}/apps/web", destinations: ["{dp.host}/m"]}}]
""")
    spec = job_spec(config, config.jobs[0])
    options = {sp.host: HostOptions(plain_http=True), dp.host: HostOptions(plain_http=True)}
    async with Transport(options=options) as transport:
        result = await SyncRun(transport).run([spec])
        assert result.ok
        sp.clear()
        dp.clear()
        verification = await verify_jobs(SyncRun(transport), [spec], known_from(result.images))
        assert verification.jobs["web"][IN_SYNC] == 3 and verification.ok
        # One listing per side, no manifest lookup: the pass had settled every image.
        assert [(r.method, r.path) for r in sp.records] == [("GET", "/v2/apps/web/tags/list")]
        assert [(r.method, r.path) for r in dp.records] == [("GET", "/v2/m/web/tags/list")]
        # Without what the pass learnt, every tag is looked up on both sides.
        sp.clear()
        await verify_jobs(SyncRun(transport), [spec])
        assert len(sp.select("HEAD")) == 3
