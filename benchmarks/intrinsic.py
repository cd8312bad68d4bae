"""The ``intrinsic`` scenario: ``mirror copy`` from a synthetic source server to a discarding sink
(real HTTP on loopback, the same client code path) at 1, 8 and 64 GiB: mirror's own ceiling.
Also the handle on a synthetic registry process (:mod:`benchmarks.synthetic_server`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.measure import ProcessStats, run_measured
from benchmarks.synthetic_process import SyntheticProcess
from benchmarks.tools import mirror_report
from benchmarks.trials import Context, Sample, medians, sample, say

GiB = 1024**3
MiB = 1024**2
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


class SyntheticServer(SyntheticProcess):
    """A synthetic registry serving one generated layer ``seed`` of ``size`` bytes (a sink
    when the size is tiny: it receives and discards uploads)."""

    def __init__(
        self, seed: str, size: int, *, token_ttl: float | None = None, stop_after: float = 6 * 3600
    ) -> None:
        self.digest = w.cached_digest(seed, size)
        argv = ["--seed", seed, "--size", str(size), "--digest", str(self.digest)]
        if token_ttl:
            argv += ["--token-ttl", str(token_ttl)]
        super().__init__(argv, stop_after=stop_after)


def synthetic_copy(
    source: SyntheticProcess, sink: SyntheticProcess, tag: str, report: Path, timeout: float
) -> tuple[ProcessStats, dict[str, Any]]:
    """``mirror copy`` of the synthetic source's layer image to ``sink/TAG:v1``, measured, with its
    report (empty when there is none)."""
    stats = run_measured(
        [
            PY,
            "-m",
            "mirror",
            "copy",
            f"{source.host}/synthetic/blob:latest",
            f"{sink.host}/sink/{tag}:v1",
            "-q",
            "--report",
            str(report),
        ],
        timeout=timeout,
        cwd=ROOT,
    )
    return stats, mirror_report(report)


def scenario_intrinsic(ctx: Context) -> dict[str, Any]:
    samples: list[Sample] = []
    for size in ctx.intrinsic_sizes:
        source = SyntheticServer("intrinsic", size)
        sink = SyntheticServer("sink", 1)
        try:
            for i in range(ctx.runs):
                c0 = source.cpu_seconds() + sink.cpu_seconds()
                stats, doc = synthetic_copy(
                    source, sink, f"i{size}-{i}", ctx.tmp / "intrinsic.json", timeout=max(600, size / 50e6)
                )
                seconds = float(doc.get("duration_seconds") or 0) or stats.wall
                rate = doc.get("bytes_read", 0) / seconds if seconds else 0.0
                ok = stats.returncode == 0 and doc.get("status") == "copied"
                s = sample(
                    f"{size // GiB} GiB",
                    stats,
                    None,
                    ok,
                    bytes_per_second=round(rate),
                    copy_seconds=round(seconds, 3),
                    requests=doc.get("requests", 0),
                    servers_cpu=round(source.cpu_seconds() + sink.cpu_seconds() - c0, 2),
                )
                samples.append(s)
                say(
                    f"    {size // GiB} GiB: {rate / 1e6:.0f} MB/s, rss {stats.peak_rss / MiB:.1f} MiB, "
                    f"cpu {stats.cpu:.1f}s"
                )
        finally:
            source.close()
            sink.close()
    rows = medians(samples)
    rss = [r["peak_rss"] for r in rows.values()]
    return {
        "intrinsic": {
            "workload": {
                "sizes": ctx.intrinsic_sizes,
                "path": "synthetic source -> mirror copy -> discarding sink",
            },
            "tools": rows,
            "samples": [s.as_dict() for s in samples],
            "rss_spread": max(rss) - min(rss) if rss else 0,
            "best_rate": max((r.get("bytes_per_second", 0) for r in rows.values()), default=0),
        }
    }
