"""Sharding across processes: `mirror sync --shard i/N` replicas together copy every repository once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mirror.service.shard import owner
from tests.support.images import layer, manifest_exists, push_image

REPOS = [f"fleet/r{i:02d}" for i in range(24)]


def run_shards(config: Path, count: int, tmp: Path) -> list[set[str]]:
    """Start ``count`` replicas at once; return the source repositories each one copied."""
    procs = []
    for index in range(count):
        report = tmp / f"r{count}-{index}.json"
        cmd = [
            sys.executable,
            "-m",
            "mirror",
            "sync",
            "--config",
            str(config),
            "--once",
            "--shard",
            f"{index}/{count}",
            "--report",
            str(report),
        ]
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE), report))
    owned = []
    for proc, report in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        doc = json.loads(report.read_text())
        owned.append({i["source"].split("/", 1)[1].rsplit(":", 1)[0] for i in doc["images"]})
    return owned


def test_replicas_split_the_fleet_and_a_new_replica_moves_few(registry_factory: Any, tmp_path: Path) -> None:
    src, dst3, dst4 = registry_factory.start(), registry_factory.start(), registry_factory.start()
    base = layer(4096, "shared-base")
    for repo in REPOS:
        push_image(src, repo, "v1", layer_sizes=(512,), seed=repo, base_layers=[base])
    configs = {}
    for count, dst in ((3, dst3), (4, dst4)):
        configs[count] = tmp_path / f"c{count}.yaml"
        configs[count].write_text(f"""
version: 1
jobs:
  - name: fleet
    source: {src.host}/fleet/*
    destinations: [{dst.host}/m]
""")
    before = run_shards(configs[3], 3, tmp_path)
    after = run_shards(configs[4], 4, tmp_path)
    for owned, dst in ((before, dst3), (after, dst4)):
        # Every repository copied, by exactly one replica.
        assert sorted(r for shard in owned for r in shard) == REPOS
        for repo in REPOS:
            assert manifest_exists(dst, "m/" + repo.split("/", 1)[1], "v1")
    # Each process took exactly the repositories the rendezvous function gives it. The keys hold
    # the source's host and port, which change from run to run, so how many repositories move
    # is a draw (about 1/4 of 24 here); its statistics are tested on a fixed key set in
    # tests/test_shard.py, the processes' agreement with the function here.
    for count, owned in ((3, before), (4, after)):
        expected = [{r for r in REPOS if owner(f"{src.host}/{r}", count) == i} for i in range(count)]
        assert owned == expected
    owner3 = {r: i for i, shard in enumerate(before) for r in shard}
    owner4 = {r: i for i, shard in enumerate(after) for r in shard}
    moved = [r for r in REPOS if owner3[r] != owner4[r]]
    # Rendezvous hashing: a repository moves only onto the new replica, never between old ones.
    assert all(owner4[r] == 3 for r in moved)
