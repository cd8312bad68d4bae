"""``mirror verify``: the drift of every destination against its source, copying nothing.

Prints one row per image or tag that is not in sync (missing, different digest, extra at the
destination, source or destination unreadable) and the counts per job; ``--report`` writes every
row as JSON. Exit code 0 when everything is in sync, 1 on any drift, 2 on a usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from mirror import __version__
from mirror.jobs.config import load_config
from mirror.jobs.drift import IN_SYNC, STATES, DriftEntry
from mirror.jobs.report import write_report
from mirror.jobs.survey import Verification
from mirror.service.daemon import Daemon, redactor_for
from mirror.service.logs import setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE", help="YAML config (see config/README.md)")
    p.add_argument("--job", action="append", default=[], metavar="NAME", help="verify only these jobs")
    p.add_argument("--report", metavar="FILE", help="write every row (in sync or not) as JSON")


def _row(entry: DriftEntry) -> list[str]:
    detail = entry.error
    if not detail and entry.state != IN_SYNC:
        if entry.source_digest and entry.destination_digest:
            detail = f"source {entry.source_digest[:19]}, destination {entry.destination_digest[:19]}"
        elif entry.source_digest or entry.destination_digest:
            detail = (entry.source_digest or entry.destination_digest)[:19]
    return [entry.state.upper(), entry.job, entry.source, entry.destination or "-", detail]


def print_table(result: Verification, out: TextIO) -> None:
    rows = [_row(e) for e in result.rows if e.state != IN_SYNC]
    if rows:
        header = ["STATE", "JOB", "SOURCE", "DESTINATION", "DETAIL"]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        for r in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1], file=out)
    for job, found in result.jobs.items():
        parts = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in found.items() if n)
        print(f"{job}: {parts or 'nothing to compare'}", file=out)
    print("in sync" if result.ok else "drift found", file=out)


def report_document(result: Verification) -> dict[str, object]:
    totals = {state: sum(c[state] for c in result.jobs.values()) for state in STATES}
    return {
        "mirror_version": __version__,
        "command": "verify",
        "ok": result.ok,
        "totals": totals,
        "jobs": [
            {"name": name, "counts": found, "error": result.errors.get(name, "")}
            for name, found in result.jobs.items()
        ],
        "rows": [row.to_dict() for row in result.rows],
    }


async def run_verify(ns: argparse.Namespace) -> int:
    config = load_config(ns.config)
    daemon = Daemon(config, config.select_jobs(ns.job), metrics=None, redactor=redactor_for(config))
    setup_logging(config.log.format, config.log.level, redactor=daemon.redactor)
    result = await daemon.verify()
    print_table(result, sys.stdout)
    if ns.report:
        write_report(ns.report, report_document(result), redact=daemon.redactor.redact)
    return 0 if result.ok else 1
