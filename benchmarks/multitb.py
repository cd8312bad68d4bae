"""The ``multi-tb`` scenario: the synthetic path once at ``--tb-size`` (default 1 TiB) with
short-lived tokens: throughput, memory sampled over time, token fetches, a 5 TB projection. Long,
so never part of the default set; its result is also kept in ``results/multitb.json``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.intrinsic import SyntheticServer
from benchmarks.machine import git_commit, loadavg
from benchmarks.measure import GNU_TIME
from benchmarks.tools import mirror_report
from benchmarks.trials import Context, say

MiB = 1024**2
RESULTS = w.RESULTS
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


class RssSampler:
    """Samples a process's resident memory every ``interval`` seconds (for long runs)."""

    def __init__(self, pid: int, interval: float = 5.0, *, child: bool = False) -> None:
        self.pid, self.interval, self.child = pid, interval, child
        self.values: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                pid = self.pid
                if self.child:  # the process started by the one we launched (under GNU time)
                    pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.values.append(int(line.split()[1]) * 1024)
            except (IndexError, ValueError):
                continue  # not started yet
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def scenario_multi_tb(ctx: Context) -> dict[str, Any]:
    size = ctx.tb_size
    ttl = 600.0
    say(f"  multi-TB: {size / 2**40:.2f} TiB through the synthetic path, token TTL {ttl:.0f}s")
    source = SyntheticServer("multitb", size, token_ttl=ttl, stop_after=24 * 3600)
    sink = SyntheticServer("sink", 1, token_ttl=ttl, stop_after=24 * 3600)
    report = ctx.tmp / "multitb.json"
    load_start = loadavg()
    try:
        timing = ctx.tmp / "multitb.time"
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", str(timing)]  # see measure.py on peak RSS
        argv += [PY, "-m", "mirror", "copy", f"{source.host}/synthetic/blob:latest"]
        argv += [f"{sink.host}/sink/multitb:v1", "-q", "--report", str(report)]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = RssSampler(proc.pid, interval=10.0, child=True)
        began = time.monotonic()
        proc.wait()
        wall = time.monotonic() - began
        sampler.stop()
        stderr = proc.stderr.read() if proc.stderr else ""
        rss_kib, user, system = timing.read_text().strip().splitlines()[-1].split()
        doc = mirror_report(report)
        src_stats, sink_stats = source.stats(), sink.stats()
    finally:
        source.close()
        sink.close()
    seconds = float(doc.get("duration_seconds") or 0) or wall
    rate = doc.get("bytes_read", 0) / seconds if seconds else 0.0
    performed = src_stats["tokens_issued"] + sink_stats["tokens_issued"]
    # The fewest token fetches this request sequence allows: one per scope at the start (source
    # pull; sink pull for HEADs; sink push for POST/PUT) and one more for the sink push scope
    # when the manifest PUT comes after that token has expired.
    minimum = 3 + (1 if seconds > ttl else 0)
    rss = sampler.values
    result = {
        "size": size,
        "ok": proc.returncode == 0 and doc.get("status") == "copied",
        "error": stderr[-500:] if proc.returncode else "",
        "seconds": round(seconds, 1),
        "wall": round(wall, 1),
        "bytes_per_second": round(rate),
        "peak_rss": int(rss_kib) * 1024,
        "rss_samples": len(rss),
        "rss_min": min(rss) if rss else 0,
        "rss_max": max(rss) if rss else 0,
        "cpu": round(float(user) + float(system), 1),
        "requests": doc.get("requests", 0),
        "token_ttl": ttl,
        "token_fetches_performed": performed,
        "token_fetches_minimum": minimum,
        "token_scopes": {
            **src_stats["token_scopes"],
            **{f"sink {k}": v for k, v in sink_stats["token_scopes"].items()},
        },
        "expired_tokens_presented": src_stats["expired_rejected"] + sink_stats["expired_rejected"],
        "projected_5tb_seconds": round(5e12 / rate) if rate else None,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "load_start_end": [load_start, loadavg()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multitb.json").write_text(json.dumps(result, indent=1) + "\n")
    return {"multi-tb": result}
