"""Trials: the context a scenario runs in, the alternating run order of tools, one sample per
run of a tool, and their medians and ratios to the peer."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.machine import loadavg
from benchmarks.measure import ProcessStats, Traffic
from benchmarks.registries import Registries
from benchmarks.tools import SkopeoCache


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Context:
    regs: Registries
    tmp: Path
    runs: int
    quick: bool
    skopeo: SkopeoCache
    tb_size: int
    intrinsic_sizes: list[int]


@dataclass
class Sample:
    """One run of one tool."""

    tool: str
    wall: float
    peak_rss: int
    cpu: float
    ok: bool
    traffic: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    load: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "wall": round(self.wall, 3),
            "peak_rss": self.peak_rss,
            "cpu": round(self.cpu, 3),
            "ok": self.ok,
            "traffic": self.traffic,
            "extra": self.extra,
            "load": self.load,
        }


def sample(
    tool: str, stats: ProcessStats, traffic: Traffic | None = None, ok: bool | None = None, **extra: Any
) -> Sample:
    good = stats.returncode == 0 if ok is None else ok
    if not good:
        say(f"    {tool} FAILED (exit {stats.returncode}): {stats.stderr[-800:]}")
    return Sample(
        tool,
        stats.wall,
        stats.peak_rss,
        stats.cpu,
        good,
        traffic.as_dict() if traffic else {},
        extra,
        loadavg(),
    )


def medians(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per tool: medians of wall, RSS, CPU and every numeric traffic/extra field."""
    out: dict[str, dict[str, Any]] = {}
    for tool in dict.fromkeys(s.tool for s in samples):
        mine = [s for s in samples if s.tool == tool]
        row: dict[str, Any] = {
            "runs": len(mine),
            "ok": all(s.ok for s in mine),
            "wall": round(statistics.median(s.wall for s in mine), 3),
            "wall_min": round(min(s.wall for s in mine), 3),
            "wall_max": round(max(s.wall for s in mine), 3),
            "peak_rss": int(statistics.median(s.peak_rss for s in mine)),
            "peak_rss_max": max(s.peak_rss for s in mine),
            "cpu": round(statistics.median(s.cpu for s in mine), 3),
        }
        for key in mine[0].traffic:
            values = [s.traffic.get(key) for s in mine]
            if all(isinstance(v, int | float) for v in values):
                row[key] = statistics.median(values)  # type: ignore[type-var]
        for key in mine[0].extra:
            values = [s.extra.get(key) for s in mine]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                row[key] = statistics.median(values)  # type: ignore[type-var]
        out[tool] = row
    return out


def alternate(tools: list[str], runs: int) -> list[str]:
    """Run order: every tool once per round, the order rotating from round to round."""
    order: list[str] = []
    for r in range(runs):
        k = r % len(tools)
        order.extend(tools[k:] + tools[:k])
    return order


def summary(samples: list[Sample], workload: dict[str, Any], peer: str) -> dict[str, Any]:
    rows = medians(samples)
    ratios: dict[str, float] = {}
    base = rows.get(peer)
    if base:
        for tool, row in rows.items():
            if tool != peer and base["wall"]:
                ratios[f"{tool} / {peer} wall"] = round(row["wall"] / base["wall"], 3)
    return {"workload": workload, "tools": rows, "ratios": ratios, "samples": [s.as_dict() for s in samples]}
