"""The ``fan-out`` scenario: the fleet to three destination registries at once, one ``mirror
sync`` job with three destinations vs three ``skopeo sync`` runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.fleet import fleet_spec
from benchmarks.measure import TrafficWatch, run_measured
from benchmarks.tools import (
    as_mirror_repo,
    check_copied,
    mirror_sync_config,
    sh,
    skopeo_sync_argv,
    skopeo_sync_config,
)
from benchmarks.trials import Context, Sample, alternate, sample, say, summary

MiB = 1024**2
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def scenario_fanout(ctx: Context) -> dict[str, Any]:
    spec = fleet_spec(ctx.quick)
    images = spec.images()
    src = ctx.regs.start()
    w.push(src.host, images)
    skopeo_cfg = skopeo_sync_config(ctx.tmp / "skopeo-fanout.yaml", src, images)
    samples: list[Sample] = []
    for i, tool in enumerate(alternate(["mirror", "skopeo sync x3"], ctx.runs)):
        dests = [ctx.regs.start() for _ in range(3)]
        watch = TrafficWatch(src, dests)
        cpu0 = sum(r.cpu_seconds() for r in [src, *dests])
        if tool == "mirror":
            cfg = mirror_sync_config(ctx.tmp / f"fanout-{i}.yaml", src, dests, spec.prefix)
            stats = run_measured(
                [PY, "-m", "mirror", "sync", "--once", "--config", str(cfg)], timeout=3600, cwd=ROOT
            )
        else:
            parts = []
            for d in dests:
                argv = skopeo_sync_argv(skopeo_cfg, d.host)
                parts.append(" ".join(sh(a) for a in ctx.skopeo.wrap(argv, f"fanout-{i}")))
            stats = run_measured(["sh", "-c", " && ".join(parts)], timeout=3600)
        traffic = watch.collect()
        registry_cpu = round(sum(r.cpu_seconds() for r in [src, *dests]) - cpu0, 2)
        ok = stats.returncode == 0 and all(check_copied(d, images, as_mirror_repo) for d in dests)
        samples.append(sample(tool, stats, traffic, ok, registry_cpu=registry_cpu))
        say(f"    {tool}: {stats.wall:.2f}s, source bytes {traffic.source_blob_get_bytes / MiB:.0f} MiB")
        for d in dests:
            d.destroy()
    src.destroy()
    workload = {"images": len(images), "destinations": 3, "unique_bytes": w.unique_bytes(images)}
    return {"fan-out": summary(samples, workload, "skopeo sync x3")}
