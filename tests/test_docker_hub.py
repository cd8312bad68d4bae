"""Docker Hub's pull limit, through its emulator (tests/support/hub_emulator.py): the last pulls are
never spent blindly, images not read are `deferred` (not failed), and a later pass copies them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.jobs.config import parse_config
from mirror.registry.pulls import parse_rate_limit
from mirror.service.daemon import Daemon
from mirror.service.metrics import Metrics
from tests.support.hub_emulator import DockerHubEmulator
from tests.support.images import fetch_manifest, push_image, push_manifest
from tests.test_metrics import scrape, value

TAGS = [f"v{i:02d}" for i in range(30)]


def seed(upstream: Any) -> dict[str, str]:
    """library/app with 30 tags over 3 images; tag -> digest."""
    images = [push_image(upstream, "library/app", None, seed=f"app-{i}") for i in range(3)]
    digests = {}
    for i, tag in enumerate(TAGS):
        image = images[i % 3]
        push_manifest(upstream, "library/app", tag, image.manifest, image.media_type)
        digests[tag] = image.digest
    return digests


@pytest.fixture
def hub_factory(registry_factory: Any) -> Iterator[Any]:
    started: list[DockerHubEmulator] = []

    def start(**options: Any) -> DockerHubEmulator:
        hub = DockerHubEmulator(registry_factory.start(), **options).start()
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


def config_text(hub: DockerHubEmulator, dest: Any) -> str:
    return f"""
version: 1
registries:
  "{hub.host}": {{kind: docker-hub, plain_http: true}}
jobs:
  - name: app
    source: {hub.host}/library/app
    destinations: [{dest.host}/hub]
"""


def one_pass(text: str, report: Path) -> tuple[Any, Metrics]:
    config = parse_config(text)
    metrics = Metrics()
    daemon = Daemon(config, list(config.jobs), metrics=metrics, report_path=str(report))
    return asyncio.run(daemon.once()), metrics


def test_the_last_pulls_are_not_spent_and_the_rest_is_deferred(
    hub_factory: Any, registry: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = hub_factory(pulls=10)
    digests = seed(hub.upstream)
    report = tmp_path / "report.json"
    with caplog.at_level(logging.WARNING, logger="mirror"):
        result, metrics = one_pass(config_text(hub, registry), report)
    # 10 pulls allowed: 10 manifest GETs, none refused; 20 images deferred, the run still ok.
    assert len(hub.manifest_gets()) == 10 and hub.limited == []
    assert result.ok
    statuses = [i.status for i in result.images]
    assert statuses.count("copied") == 10 and statuses.count("deferred") == 20
    doc = json.loads(report.read_text())
    assert doc["ok"] and doc["jobs"][0]["deferred"] == 20 and doc["jobs"][0]["failed"] == 0
    deferred = next(i for i in doc["images"] if i["status"] == "deferred")
    assert "pull limit" in deferred["error"] and "a later pass copies it" in deferred["error"]
    [line] = [r.getMessage() for r in caplog.records if "pull limit is reached" in r.getMessage()]
    assert "0 of 10 per 21600s left" in line and "allowed again by" in line
    samples = scrape(metrics)
    assert value(samples, "mirror_images_total", registry=hub.host, outcome="deferred") == 20
    assert value(samples, "mirror_rate_limit_remaining", registry=hub.host) == 0

    # Windows refill: each later pass reads the source's tags by HEAD (free) and copies 10 more.
    for copied in (20, 30):
        hub.refill()
        hub.clear()
        result, _ = one_pass(config_text(hub, registry), report)
        statuses = [i.status for i in result.images]
        assert result.ok and len(hub.manifest_gets()) == 10 and hub.limited == []
        assert statuses.count("skipped") == copied - 10 and statuses.count("copied") == 10
        assert statuses.count("deferred") == 30 - copied
        # The same Accept on HEAD and GET: both name the same representation, and digest.
        accepts = {r.header("Accept") for r in hub.select(path_contains="/manifests/")}
        assert len(accepts) == 1 and len(hub.select("HEAD", "/manifests/")) == copied - 10
    for tag, digest in digests.items():
        assert fetch_manifest(registry, "hub/app", tag).digest == digest


def test_without_a_count_pulls_go_one_at_a_time(hub_factory: Any, registry: Any, tmp_path: Path) -> None:
    """Headers that come empty give no count: GETs go one by one, so the first 429 stops them
    (10 pulls plus the one refused) and mirror sync still exits 0."""
    hub = hub_factory(pulls=10, headers="empty")
    seed(hub.upstream)
    config = tmp_path / "mirror.yaml"
    config.write_text(config_text(hub, registry))
    report = tmp_path / "report.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 0
    assert len(hub.manifest_gets()) == 11 and len(hub.limited) == 1
    statuses = [i["status"] for i in json.loads(report.read_text())["images"]]
    assert statuses.count("copied") == 10 and statuses.count("deferred") == 20


def test_an_account_without_a_limit_is_not_held_back(hub_factory: Any, registry: Any, tmp_path: Path) -> None:
    """No RateLimit headers at all: the account is not limited (Docker's documentation)."""
    hub = hub_factory(pulls=1000, headers="absent")
    seed(hub.upstream)
    result, _ = one_pass(config_text(hub, registry), tmp_path / "report.json")
    assert result.ok and [i.status for i in result.images] == ["copied"] * 30
    assert len(hub.manifest_gets()) == 30


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("76;w=21600", (76, 21600)),
        ("100", (100, None)),
        (" 0 ; w = 21600", (0, 21600)),
        ("", (None, None)),
        (None, (None, None)),
        ("many", (None, None)),
    ],
)
def test_rate_limit_headers(text: str | None, parsed: tuple[int | None, int | None]) -> None:
    assert parse_rate_limit(text) == parsed
