"""The ``scale`` scenario: one ``mirror sync --once`` pass over a generated fleet of tiny images.

A synthetic registry (:mod:`benchmarks.synthetic_server` with ``--fleet``) serves REPOS x 100
tags, generated on the fly, nothing on disk. Two passes per size:

- *warm*: the destination is a second synthetic registry serving the same fleet under
  ``mirror/``, so every tag is already there: the pass should cost one manifest HEAD per source
  tag and one per destination tag, plus the listings (catalog, tag lists);
- *cold*: the destination is an empty discarding sink (it keeps manifests, counts blob bytes):
  every image is copied (two tiny layers shared per group or repository, a config per tag).

Sizes 10,000, 30,000 and 100,000 tags (quick: 400 and 1,200) give the slope of peak RSS against
tags. Requests are counted by the servers per route; peak RSS and CPU come from GNU time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import ProcessStats, run_measured
from benchmarks.synthetic_process import SyntheticProcess

MiB = 1024**2
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TAGS = 100
SIZES = [100, 300, 1000]  # repositories of TAGS tags
QUICK_SIZES = [4, 12]
LISTING_ROUTES = ("GET catalog", "GET tags", "GET ping")


class FleetServer(SyntheticProcess):
    """A synthetic registry process serving a generated fleet (or, without one, a sink)."""

    def __init__(self, repos: int = 0, tags: int = TAGS, *, prefix: str = "fleet") -> None:
        argv = ["--fleet", f"{repos}x{tags}", "--fleet-prefix", prefix] if repos else []
        super().__init__(argv, stop_after=4 * 3600, what="synthetic fleet server")


def sync_config(path: Path, source: str, dest: str) -> Path:
    lines = [
        "version: 1",
        "concurrency: 64",
        "registries:",
        f'  "{source}": {{plain_http: true, max_concurrency: 32}}',
        f'  "{dest}": {{plain_http: true, max_concurrency: 32}}',
        "jobs:",
        "  - name: fleet",
        f"    source: {source}/fleet/*",
        f'    destinations: ["{dest}/mirror"]',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def one_pass(
    tmp: Path, source: FleetServer, dest: FleetServer, label: str
) -> tuple[ProcessStats, dict[str, Any]]:
    cfg = sync_config(tmp / f"scale-{label}.yaml", source.host, dest.host)
    report = tmp / f"scale-{label}.json"
    before = source.stats()["routes"], dest.stats()["routes"]
    stats = run_measured(
        [PY, "-m", "mirror", "sync", "--once", "--config", str(cfg), "--report", str(report)],
        timeout=4 * 3600,
        cwd=ROOT,
    )
    src_routes = _diff(source.stats()["routes"], before[0])
    dst_routes = _diff(dest.stats()["routes"], before[1])
    try:
        doc = json.loads(report.read_text())
    except (OSError, ValueError):
        doc = {}
    report.unlink(missing_ok=True)
    return stats, {"source_routes": src_routes, "destination_routes": dst_routes, "report": doc}


def scenario_scale(tmp: Path, quick: bool, say: Any, loadavg: Any) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for repos in QUICK_SIZES if quick else SIZES:
        images = repos * TAGS
        source = FleetServer(repos)
        try:
            for phase in ("warm", "cold"):
                dest = FleetServer(repos, prefix="mirror") if phase == "warm" else FleetServer()
                try:
                    load = loadavg()
                    stats, seen = one_pass(tmp, source, dest, f"{repos}-{phase}")
                finally:
                    dest.close()
                rows.append(_row(phase, repos, images, stats, seen, load, loadavg()))
                r = rows[-1]
                say(
                    f"    {phase} {images} tags: {stats.wall:.1f}s ({r['tags_per_second']:.0f} tags/s), "
                    f"rss {stats.peak_rss / MiB:.0f} MiB, {r['requests']} requests"
                    f"{'' if r['ok'] else ' FAILED: ' + stats.stderr[-400:]}"
                )
        finally:
            source.close()
    return {
        "scale": {
            "workload": {
                "tags_per_repository": TAGS,
                "sizes": [r * TAGS for r in (QUICK_SIZES if quick else SIZES)],
            },
            "rows": rows,
            "slopes": slopes(rows),
        }
    }


def _row(
    phase: str,
    repos: int,
    images: int,
    stats: ProcessStats,
    seen: dict[str, Any],
    load_start: float,
    load_end: float,
) -> dict[str, Any]:
    src, dst = seen["source_routes"], seen["destination_routes"]
    totals = seen["report"].get("totals", {})
    statuses: dict[str, int] = {}
    for image in seen["report"].get("images", []):
        statuses[image.get("status", "?")] = statuses.get(image.get("status", "?"), 0) + 1
    want = "skipped" if phase == "warm" else "copied"
    ok = stats.returncode == 0 and statuses.get(want, 0) == images
    if phase == "cold":
        ok = ok and dst.get("PUT manifest", 0) >= images
    listings = sum(src.get(k, 0) + dst.get(k, 0) for k in LISTING_ROUTES)
    return {
        "phase": phase,
        "repositories": repos,
        "tags": images,
        "ok": ok,
        "statuses": statuses,
        "wall": round(stats.wall, 2),
        "pass_seconds": round(float(totals.get("duration_seconds") or 0), 2),
        "tags_per_second": round(images / stats.wall, 1) if stats.wall else 0.0,
        "peak_rss": stats.peak_rss,
        "cpu": round(stats.cpu, 1),
        "requests": sum(src.values()) + sum(dst.values()),
        "source_manifest_heads": src.get("HEAD manifest", 0),
        "destination_manifest_heads": dst.get("HEAD manifest", 0),
        "listings": listings,
        "other_requests": sum(src.values())
        + sum(dst.values())
        - listings
        - src.get("HEAD manifest", 0)
        - dst.get("HEAD manifest", 0),
        "source_routes": src,
        "destination_routes": dst,
        "load_start_end": [load_start, load_end],
    }


def slopes(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Bytes of peak RSS per tag between the smallest and the largest size, per phase."""
    out: dict[str, float] = {}
    for phase in ("warm", "cold"):
        mine = sorted((r for r in rows if r["phase"] == phase), key=lambda r: r["tags"])
        if len(mine) >= 2 and mine[-1]["tags"] > mine[0]["tags"]:
            out[phase] = round(
                (mine[-1]["peak_rss"] - mine[0]["peak_rss"]) / (mine[-1]["tags"] - mine[0]["tags"]), 1
            )
    return out


def scale_targets(scale: dict[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not scale:
        return out
    for phase, limit in (("warm", 150), ("cold", 250)):
        rows = [r for r in scale["rows"] if r["phase"] == phase]
        if not rows:
            continue
        big = max(rows, key=lambda r: r["tags"])
        rss = big["peak_rss"] / MiB
        ok = big["ok"] and rss <= limit
        got = f"{rss:.0f} MiB{'' if big['ok'] else ' (FAILED)'}"
        out.append(
            {
                "target": f"scale {phase} {big['tags']} tags: peak RSS",
                "want": f"<= {limit} MiB",
                "got": got,
                "met": ok,
            }
        )
        if phase == "warm":
            heads = big["source_manifest_heads"], big["destination_manifest_heads"], big["other_requests"]
            ok = heads[0] <= big["tags"] and heads[1] <= big["tags"] and heads[2] == 0
            out.append(
                {
                    "target": f"scale warm {big['tags']} tags: requests",
                    "want": f"<= {big['tags']} HEADs per side + listings",
                    "got": f"{heads[0]} + {heads[1]} HEADs, {big['listings']} listings, {heads[2]} other",
                    "met": ok,
                }
            )
    return out


def scale_table(scale: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| scale (synthetic fleet, `mirror sync --once`) | tags | wall s | tags/s | peak RSS | CPU s "
        "| requests | source HEADs | destination HEADs | listings | other | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in scale["rows"]:
        load = r.get("load_start_end", [0, 0])
        lines.append(
            f"| {r['phase']}{'' if r['ok'] else ' (FAILED)'} | {r['tags']} | {r['wall']:.1f} | "
            f"{r['tags_per_second']:.0f} | {r['peak_rss'] / MiB:.0f} MiB | {r['cpu']:.1f} | "
            f"{r['requests']} | "
            f"{r['source_manifest_heads']} | {r['destination_manifest_heads']} | {r['listings']} | "
            f"{r['other_requests']} | {load[0]:.1f} -> {load[1]:.1f} |"
        )
    slopes = scale.get("slopes", {})
    if slopes:
        lines += [
            "",
            "peak RSS slope: " + ", ".join(f"{k} {v / 1024:.2f} KiB per tag" for k, v in slopes.items()),
        ]
    return lines
