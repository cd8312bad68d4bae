"""Run many image copies through one mirror CopyEngine, in its own process (for fleet scenarios).

    python -m benchmarks.drive PLAN.json REPORT.json

PLAN is ``{"tasks": [{"source": "HOST/REPO:TAG", "destinations": ["HOST/REPO:TAG", ...]}]}``.
This is the engine's Python API as ``mirror sync`` drives it: one transport, one engine run, so
a blob shared by many images is read from its source once. The report has the same shape as
``mirror copy --report``.
"""

from __future__ import annotations

import json
import sys
import time

from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.daemon.report import build_report, write_report
from mirror.daemon.runtime import run
from mirror.daemon.stores import open_repository
from mirror.registry.base import Repository
from mirror.transport.client import Transport
from mirror.types.reference import parse_reference


async def main(plan: dict[str, list[dict[str, object]]], report: str) -> int:
    started = time.monotonic()
    async with Transport() as transport:
        repos: dict[str, Repository] = {}

        def repo(text: str, create: bool) -> tuple[Repository, str]:
            ref = parse_reference(text)
            key = ref.name
            if key not in repos:
                repos[key] = open_repository(ref, transport, create=create)
            return repos[key], ref.reference

        tasks = []
        for item in plan["tasks"]:
            source, reference = repo(str(item["source"]), False)
            dests = [Destination(*repo(str(d), True)) for d in item["destinations"]]  # type: ignore[attr-defined]
            tasks.append(CopyTask(source, reference, dests))
        engine = CopyEngine()
        try:
            results = await engine.run(tasks)
        finally:
            await engine.aclose()
        stats = engine.stats
        stats.requests = transport.request_count
        stats.duration_seconds = time.monotonic() - started
    write_report(report, build_report("sync", results, stats))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    sys.exit(run(main(doc, sys.argv[2])))
