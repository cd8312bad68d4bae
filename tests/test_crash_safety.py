"""Crash safety: `mirror sync --once` killed with SIGKILL at random points, then started again.

A fleet (four repositories, two of them multi-platform indexes, about 3 MiB) is mirrored through
recording proxies; the source's blob bodies are throttled and the destination's manifest PUTs
delayed so the kills land in every phase. Kill points are drawn from a seeded generator: a number
of destination PUTs (blobs or manifests, 1 to 8) seen since the run started, plus up to 0.5 s.
After every kill the destination must hold no tag whose content is incomplete; a last run, not
killed, must leave the destination equal to the source.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.check import assert_same_repo, check_complete
from tests.support.faults import Delay, SlowBody
from tests.support.images import layer, list_catalog, list_tags, push_image, push_index

KiB = 1024
SEED = 20240607
KILLS = 5
RUN_TIMEOUT = 60.0
REPOS = ("fleet/a", "fleet/b", "fleet/c", "fleet/d")


def seed_fleet(src: Any) -> None:
    base = layer(512 * KiB, "fleet-base")
    push_index(
        src,
        "fleet/a",
        "v1",
        ["linux/amd64", "linux/arm64", "linux/arm/v7"],
        seed="a",
        layer_sizes=(256 * KiB,),
        base_layers=[base],
    )
    push_index(
        src,
        "fleet/b",
        "v1",
        ["linux/amd64", "linux/arm64"],
        seed="b",
        media="docker",
        layer_sizes=(200 * KiB, 8 * KiB),
    )
    push_image(src, "fleet/c", "v1", layer_sizes=(300 * KiB, 20 * KiB), seed="c", base_layers=[base])
    push_image(src, "fleet/d", "v1", layer_sizes=(280 * KiB,), seed="d1", media="docker")
    push_image(src, "fleet/d", "v2", layer_sizes=(280 * KiB, 1 * KiB), seed="d2", media="docker")


def start_sync(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mirror", "sync", "--config", str(config), "--once"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def incomplete(dst: Any) -> list[str]:
    problems: list[str] = []
    for repo in list_catalog(dst):
        problems += check_complete(dst, repo)
    return problems


def test_sigkill_at_random_points_never_leaves_an_incomplete_tag(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    seed_fleet(src)
    sproxy, dproxy = proxy_factory.start(src), proxy_factory.start(dst)
    throttle = sproxy.add_fault(SlowBody(768 * KiB, times=None, method="GET", path=r"/blobs/sha256:"))
    slow_tags = dproxy.add_fault(Delay(0.1, times=None, method="PUT", path=r"/manifests/"))
    config = tmp_path / "sync.yaml"
    config.write_text(f"""
version: 1
concurrency: 2
jobs:
  - name: fleet
    source: {sproxy.host}/fleet/*
    destinations: [{dproxy.host}/mirror]
""")
    log = tmp_path / "sync.log"
    rng = random.Random(SEED)
    kills: list[tuple[int, float, str, int]] = []  # (PUTs waited for, extra delay, last request, tags)

    def puts() -> int:
        return sum(1 for r in dproxy.records if r.method == "PUT")

    for _ in range(KILLS):
        threshold, extra = rng.randint(1, 8), round(rng.uniform(0.0, 0.5), 3)
        puts_before = puts()
        proc = start_sync(config, log)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while proc.poll() is None and puts() - puts_before < threshold:
                assert time.monotonic() < deadline, "sync neither progressed nor finished"
                time.sleep(0.002)
            time.sleep(extra)
            if proc.poll() is not None:
                break  # it finished before this kill point: nothing left to interrupt
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        last = dproxy.records[-1]
        tags = sum(len(list_tags(dst, repo)) for repo in list_catalog(dst))
        kills.append((threshold, extra, f"{last.method} {last.path}", tags))
        problems = incomplete(dst)
        assert not problems, f"after kill {len(kills)} {kills[-1]}:\n" + "\n".join(problems)

    assert len(kills) >= 3, f"only {len(kills)} kills landed before a run completed: {kills}"

    report = tmp_path / "report.json"
    final = subprocess.run(
        [sys.executable, "-m", "mirror", "sync", "--config", str(config), "--once", "--report", str(report)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=RUN_TIMEOUT,
    )
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert json.loads(report.read_text())["ok"]
    for repo in REPOS:
        assert_same_repo(src, repo, dst, repo.replace("fleet/", "mirror/"))
    assert sorted(list_catalog(dst)) == sorted(r.replace("fleet/", "mirror/") for r in REPOS)
    assert list_tags(dst, "mirror/d") == list_tags(src, "fleet/d")
    assert throttle.fired > 0 and slow_tags.fired > 0
    print(f"kills (PUTs waited for, extra delay, last request, destination tags): {kills}")
