"""Run the benchmarks: mirror and its peers on the same workloads, alternating, medians and ratios.

    python -m benchmarks.run [--scenario NAME ...] [--quick] [--runs N] [--json FILE]

Scenarios (default: all but ``multi-tb``):

- ``fleet``: tens of repositories x several tags sharing base layers, registry to registry.
  Cold (empty destination) and warm (the same again, nothing to do), ``mirror sync --once`` vs
  ``skopeo sync`` (:mod:`benchmarks.fleet`).
- ``fan-out``: the fleet to three destination registries at once: one ``mirror sync`` job with
  three destinations vs three ``skopeo sync`` runs (:mod:`benchmarks.fanout`).
- ``big-blob``: one image with a 2 GiB+ layer: ``mirror copy`` vs ``skopeo copy`` vs a raw
  ``curl GET | curl PUT`` pipe between the same two registries (:mod:`benchmarks.big_blob`).
- ``intrinsic``: ``mirror copy`` from a synthetic source server to a discarding sink (real
  HTTP on loopback, the same client code path) at 1, 8 and 64 GiB: mirror's own ceiling
  (:mod:`benchmarks.intrinsic`).
- ``scale``: ``mirror sync --once`` over a generated fleet of tiny images (10,000, 30,000 and
  100,000 tags) served by the synthetic registry, warm (the destination holds the same content)
  and cold (an empty discarding sink): peak RSS against tags, requests per tag, tags per second
  (:mod:`benchmarks.scale`).
- ``events``: a resident ``mirror sync`` notified of every push by the source registry: the lag
  from push to copy under a push storm (p50/p99), and how soon everything is there when one
  event in five is lost (:mod:`benchmarks.events`).
- ``resume``: ``mirror copy`` of a 2 GiB blob from the synthetic source, whose connection is
  reset at 90%, 50%, 25%, and twice (25% and 75%), into a verifying sink: source bytes read, PUTs
  (:mod:`benchmarks.resume`).
- ``multi-tb``: the synthetic path once at ``--tb-size`` (default 1 TiB) with short-lived
  tokens; long, so never part of the default set. Its latest result is kept in
  ``results/multitb.json`` and shown with every table (:mod:`benchmarks.multitb`).

Every run of a tool gets a fresh destination registry. Requests and source bytes are counted
from the registries' access logs, identically for every tool. Results go to
``benchmarks/results/latest.json`` and ``latest.md`` (and ``--json FILE``); the targets and
tables are :mod:`benchmarks.tables`.
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.big_blob import scenario_big_blob
from benchmarks.events import scenario_events
from benchmarks.fanout import scenario_fanout
from benchmarks.fleet import scenario_fleet
from benchmarks.intrinsic import scenario_intrinsic
from benchmarks.machine import git_commit, loadavg, machine
from benchmarks.multitb import scenario_multi_tb
from benchmarks.registries import Registries
from benchmarks.resume import scenario_resume
from benchmarks.scale import scenario_scale
from benchmarks.tables import markdown, targets
from benchmarks.tools import SkopeoCache
from benchmarks.trials import Context, say

GiB = 1024**3
RESULTS = w.RESULTS
ROOT = Path(__file__).resolve().parent.parent


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "fleet": scenario_fleet,
    "fan-out": scenario_fanout,
    "big-blob": scenario_big_blob,
    "intrinsic": scenario_intrinsic,
    "multi-tb": scenario_multi_tb,
    "scale": lambda ctx: scenario_scale(ctx.tmp, ctx.quick, say, loadavg),
    "resume": lambda ctx: scenario_resume(ctx.tmp, ctx.quick, say),
    "events": lambda ctx: scenario_events(ctx.regs, ctx.quick, say),
}
DEFAULT = ["fleet", "fan-out", "big-blob", "intrinsic"]


def _size(text: str) -> int:
    from mirror.types.sizes import parse_size

    return parse_size(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default: all but multi-tb"
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes, one run each (a smoke run, not a result)"
    )
    p.add_argument("--runs", type=int, default=None, help="runs per tool (default 3, quick 1)")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    p.add_argument(
        "--tb-size", type=_size, default=2**40, help="size for multi-tb (default 1TiB; up to 5TiB)"
    )
    p.add_argument("--intrinsic-sizes", default=None, help="comma-separated GiB (default 1,8,64; quick 1,2)")
    p.add_argument("--no-save", action="store_true", help="do not overwrite results/latest.*")
    p.add_argument(
        "--merge",
        action="store_true",
        help="replace only the scenarios run here in results/latest.* (the rest keep their run)",
    )
    args = p.parse_args(argv)
    if args.merge and (args.quick or args.no_save):
        p.error("--merge replaces scenarios in the saved full results: not with --quick or --no-save")
    if args.tb_size > 5 * 2**40:
        p.error("--tb-size: at most 5TiB")
    scenarios = args.scenario or DEFAULT
    runs = args.runs or (1 if args.quick else 3)
    sizes_text = args.intrinsic_sizes or ("1,2" if args.quick else "1,8,64")
    intrinsic_sizes = [int(float(x) * GiB) for x in sizes_text.split(",")]
    if not shutil.which("skopeo") and any(s in scenarios for s in ("fleet", "fan-out", "big-blob")):
        p.error("skopeo is needed (apt-get install skopeo)")
    # An installed mirror has its bytecode (pip compiles it); a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would recompile every module at each start. Measure the former.
    compileall.compile_dir(str(ROOT / "mirror"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-run-"))
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": machine(),
        "runs": runs,
        "quick": args.quick,
        "scenarios": scenarios,
        "load_start": loadavg(),
        "results": {},
    }
    began = time.monotonic()
    try:
        with Registries() as regs:
            ctx = Context(
                regs, tmp, runs, args.quick, SkopeoCache(tmp / "skopeo"), args.tb_size, intrinsic_sizes
            )
            doc["skopeo_private_cache"] = ctx.skopeo.private
            for name in scenarios:
                say(f"== {name}")
                doc["results"].update(SCENARIOS[name](ctx))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc["load_end"] = loadavg()
    doc["seconds"] = round(time.monotonic() - began, 1)
    if args.merge and (RESULTS / "latest.json").exists():
        doc = merge_into(json.loads((RESULTS / "latest.json").read_text()), doc)
    doc["targets"] = targets(doc["results"])
    table = markdown(doc)
    print(table)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "latest.json").write_text(json.dumps(doc, indent=1) + "\n")
        (RESULTS / "latest.md").write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def merge_into(base: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a saved run) with the scenarios of ``run`` replaced, and a note saying so."""
    merged = dict(base)
    merged["results"] = {**base["results"], **run["results"]}
    note = {k: run[k] for k in ("scenarios", "date", "commit", "runs", "load_start", "load_end")}
    merged["merged"] = [
        m for m in base.get("merged", []) if not set(m["scenarios"]) <= set(run["scenarios"])
    ] + [note]
    return merged


if __name__ == "__main__":
    sys.exit(main())
