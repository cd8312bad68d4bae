"""A prefix sync through a mix of faults on both sides, drawn from a seed: every image arrives,
and the source is read again only as often as the faults explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirror.cli.main import main
from tests.support.check import check_complete
from tests.support.faultmix import FaultMix
from tests.support.images import fetch_manifest, layer, push_image, push_index

KiB = 1024
SEED = 20241212


def test_prefix_sync_through_the_fault_mix(registry_factory: Any, proxy_factory: Any, tmp_path: Path) -> None:
    """Source: 15% of blob reads come back with a flipped byte, 10% of requests are reset, 5%
    answered 503, 5% 429. Destination: 8% 503, 5% 429. Before the re-read of a mismatched blob,
    every digest mismatch was final and such a run copied 5 of 12 images."""
    src, dst = registry_factory.start(), registry_factory.start()
    base = [layer(96 * KiB, "mix-base-os"), layer(48 * KiB, "mix-base-rt")]
    expected: dict[str, str] = {}
    for i in range(9):
        img = push_image(src, f"apps/svc{i}", "v1", (16 * KiB + i,), seed=f"svc{i}", base_layers=base)
        expected[f"svc{i}"] = img.digest
    for i in range(3):
        idx = push_index(
            src, f"apps/multi{i}", "v1", ["linux/amd64", "linux/arm64"], seed=f"m{i}", base_layers=base
        )
        expected[f"multi{i}"] = idx.digest
    source = proxy_factory.start(src)
    destination = proxy_factory.start(dst)
    src_mix = source.add_fault(FaultMix(SEED, flip=0.15, reset=0.10, error=0.05, throttle=0.05))
    dst_mix = destination.add_fault(FaultMix(SEED + 1, error=0.08, throttle=0.05))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: apps
    source: {source.host}/apps/*
    destinations: [{destination.host}/mirror]
"""
    )
    report = tmp_path / "r.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert sorted(i["status"] for i in doc["images"]) == ["copied"] * 12
    for name, digest in expected.items():
        assert fetch_manifest(dst, f"mirror/{name}", "v1").digest == digest
        assert check_complete(dst, f"mirror/{name}") == []
    # The faults fired, each kind, on both sides.
    assert all(src_mix.counts[k] > 0 for k in ("flip", "reset", "error", "throttle")), src_mix.counts
    assert all(dst_mix.counts[k] > 0 for k in ("error", "throttle")), dst_mix.counts
    # Every blob GET beyond the first of each blob is explained by a fault: one on that GET
    # (answered, reset, or flipped: read again), or one on an upload that fed from a read.
    gets = [r.path.rsplit("/", 1)[1] for r in source.select("GET", "/blobs/sha256:")]
    unique = len(set(gets))
    on_gets = sum(1 for _k, m, p in src_mix.fired_on if m == "GET" and "/blobs/sha256:" in p)
    on_uploads = sum(1 for _k, m, p in dst_mix.fired_on if m in ("POST", "PUT") and "/blobs/uploads/" in p)
    assert len(gets) <= unique + on_gets + on_uploads, (len(gets), unique, on_gets, on_uploads)
    assert src_mix.counts["flip"] > 0 and len(gets) > unique  # the re-reads did happen
