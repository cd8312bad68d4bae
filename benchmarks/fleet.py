"""The ``fleet`` scenario: tens of repositories x several tags sharing base layers, registry to
registry, ``mirror sync --once`` vs ``skopeo sync``: cold (an empty destination), then warm (the
same again, nothing to do), and the warm pass of a resident daemon (serve mode)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.measure import TrafficWatch, run_measured, terminate
from benchmarks.registries import Registry
from benchmarks.tools import (
    as_mirror_repo,
    check_copied,
    mirror_report,
    mirror_sync_config,
    skopeo_sync_argv,
    skopeo_sync_config,
)
from benchmarks.trials import Context, Sample, alternate, sample, say, summary

MiB = 1024**2
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def fleet_spec(quick: bool) -> w.FleetSpec:
    if quick:
        return w.FleetSpec(
            repos=8, tags=2, bases=2, base_size=8 * MiB, repo_size=2 * MiB, tag_size=512 * 1024
        )
    return w.FleetSpec()


def scenario_fleet(ctx: Context) -> dict[str, Any]:
    spec = fleet_spec(ctx.quick)
    images = spec.images()
    src = ctx.regs.start()
    seeded = w.push(src.host, images)
    say(
        f"  fleet: {len(images)} images in {spec.repos} repositories, unique "
        f"{w.unique_bytes(images) / MiB:.0f} MiB, referenced {w.referenced_bytes(images) / MiB:.0f} MiB "
        f"(seeded in {seeded:.1f}s)"
    )
    skopeo_cfg = skopeo_sync_config(ctx.tmp / "skopeo-fleet.yaml", src, images)
    cold: list[Sample] = []
    warm: list[Sample] = []
    passes: list[float] = []
    floor: dict[str, list[float]] = {"import": [], "lean": [], "lean_requests": []}
    for i, tool in enumerate(alternate(["mirror", "skopeo sync"], ctx.runs)):
        dst = ctx.regs.start()
        for phase, into in (("cold", cold), ("warm", warm)):
            watch = TrafficWatch(src, [dst])
            cpu0 = src.cpu_seconds() + dst.cpu_seconds()
            if tool == "mirror":
                cfg = mirror_sync_config(ctx.tmp / f"fleet-{i}.yaml", src, [dst], spec.prefix)
                report = ctx.tmp / f"fleet-{i}-{phase}.json"
                stats = run_measured(
                    [PY, "-m", "mirror", "sync", "--once", "--config", str(cfg), "--report", str(report)],
                    timeout=1800,
                    cwd=ROOT,
                )
                doc = mirror_report(report).get("totals", {})
                extra = {
                    "own_requests": doc.get("requests", 0),
                    "bytes_read_reported": doc.get("bytes_read", 0),
                }
            else:
                argv = skopeo_sync_argv(skopeo_cfg, dst.host)
                stats = run_measured(ctx.skopeo.wrap(argv, f"fleet-{i}"), timeout=3600)
                extra = {}
            traffic = watch.collect()
            extra["registry_cpu"] = round(src.cpu_seconds() + dst.cpu_seconds() - cpu0, 2)
            ok = stats.returncode == 0 and (phase == "warm" or check_copied(dst, images, as_mirror_repo))
            into.append(sample(tool, stats, traffic, ok, **extra))
            say(
                f"    {phase} {tool}: {stats.wall:.2f}s, {traffic.requests} requests, "
                f"rss {stats.peak_rss / MiB:.0f} MiB"
            )
        if tool == "mirror":
            # The same warm pass from a resident daemon (serve mode): no start-up per pass.
            cfg = mirror_sync_config(ctx.tmp / f"fleet-{i}-serve.yaml", src, [dst], spec.prefix, every="2s")
            got = serve_passes(cfg, ctx.tmp / f"fleet-{i}-serve.json", count=4)
            passes.extend(got)
            say(f"    warm mirror (serve): passes of {', '.join(f'{p:.2f}' for p in got)}s")
            measure_floor(floor, src, dst, spec.prefix)
        dst.destroy()
    src.destroy()
    workload = {
        "images": len(images),
        "repositories": spec.repos,
        "tags": spec.tags,
        "bases": spec.bases,
        "unique_bytes": w.unique_bytes(images),
        "referenced_bytes": w.referenced_bytes(images),
        "sizes": {"base": spec.base_size, "repo": spec.repo_size, "tag": spec.tag_size},
    }
    warm_summary = summary(warm, workload, "skopeo sync")
    if passes:
        warm_summary["serve_passes"] = {"median": round(statistics.median(passes), 3), "passes": passes}
    if floor["lean"]:
        warm_summary["floor"] = {
            "import_asyncio_aiohttp": round(statistics.median(floor["import"]), 3),
            "lean_check": round(statistics.median(floor["lean"]), 3),
            "lean_check_requests": round(statistics.median(floor["lean_requests"]), 3),
            "runs": floor,
        }
    return {"fleet-cold": summary(cold, workload, "skopeo sync"), "fleet-warm": warm_summary}


def measure_floor(into: dict[str, list[float]], src: Registry, dst: Registry, prefix: str) -> None:
    """One sample of each floor: the interpreter importing asyncio and aiohttp, and the lean check
    (its whole run, and its request phase as it timed it) against the same, now warm, pair."""
    stats = run_measured([PY, "-c", "import asyncio, aiohttp"], timeout=60)
    into["import"].append(round(stats.wall, 3))
    argv = [PY, str(ROOT / "benchmarks" / "lean_check.py"), src.host, dst.host, prefix, "mirror", "32"]
    stats = run_measured(argv, timeout=120)
    if stats.returncode != 0:
        raise RuntimeError(f"lean check failed: {stats.stdout} {stats.stderr[-500:]}")
    into["lean"].append(round(stats.wall, 3))
    into["lean_requests"].append(json.loads(stats.stdout)["seconds"])
    say(f"    floor: import asyncio+aiohttp {into['import'][-1]:.2f}s, lean check {stats.wall:.2f}s")


def serve_passes(config: Path, report: Path, *, count: int, timeout: float = 300.0) -> list[float]:
    """Run ``mirror sync`` in serve mode until it has written ``count`` reports; each report's
    ``duration_seconds`` is one pass, timed by mirror from planning to the last manifest."""
    proc = subprocess.Popen(
        [PY, "-m", "mirror", "sync", "--config", str(config), "--report", str(report)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    durations: list[float] = []
    seen: int | None = None
    deadline = time.monotonic() + timeout
    try:
        while len(durations) < count and time.monotonic() < deadline and proc.poll() is None:
            stamp = report.stat().st_mtime_ns if report.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                doc = json.loads(report.read_text())
                if doc.get("ok"):
                    durations.append(float(doc["totals"]["duration_seconds"]))
            time.sleep(0.02)
    finally:
        terminate(proc)
    return durations
