"""``mirror sync``: run the jobs of a config file, once (``--once``, ``--dry-run``) or as a service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from mirror.copy.results import RunStats
from mirror.jobs.config import load_config
from mirror.jobs.pruning import PLANNED, PruneResult
from mirror.jobs.report import summary_lines
from mirror.jobs.syncrun import SyncResult
from mirror.service.daemon import Daemon, new_metrics, redactor_for
from mirror.service.logs import setup_logging
from mirror.service.shard import parse_shard
from mirror.service.signals import exit_code
from mirror.types.sizes import human_bytes

log = logging.getLogger("mirror")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE", help="YAML config (see config/README.md)")
    p.add_argument("--once", action="store_true", help="run every job once and exit")
    p.add_argument("--dry-run", action="store_true", help="print the plan; write nothing (with --once)")
    p.add_argument("--report", metavar="FILE", help="write a JSON report (each run, in serve mode)")
    p.add_argument("--job", action="append", default=[], metavar="NAME", help="run only these jobs")
    p.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="own only this shard of the source repositories; INDEX may be 'auto' "
        "(the StatefulSet ordinal from the host name)",
    )
    p.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve /metrics, /healthz, /readyz, /shard and the status page (/, /status.json) here "
        "(overrides metrics.address)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long moving transfers may take to finish",
    )


def print_plan(result: SyncResult) -> None:
    out = sys.stdout
    planned = sum(j.statuses.get("planned", 0) for j in result.jobs)  # counted as results were kept
    print(f"plan: {planned} of {len(result.images)} images to copy", file=out)
    for image in result.images:
        for dest in image.destinations:
            if dest.status != "planned":
                continue
            print(
                f"  {image.source} -> {dest.destination}  blobs: {dest.blobs_pushed} to send "
                f"({human_bytes(dest.bytes_written)}), {dest.blobs_mounted} to mount, "
                f"{dest.blobs_skipped} present",
                file=out,
            )
        if image.error:  # not resolved: failed, or deferred to a later pass
            print(f"  {image.status.upper()} {image.source}: {image.error}", file=out)
        for dest in image.destinations:
            if dest.status in ("conflict", "failed", "deferred") and dest.error != image.error:
                print(f"  {dest.status.upper()} {dest.destination}: {dest.error}", file=out)
    # Totals count each blob once per destination repository, however many images share it.
    stats = result.stats
    moved, unique = stats.bytes_written, stats.unique_blob_bytes
    print(
        f"blobs: {stats.blobs_pushed} sends, {stats.blobs_mounted} mounts, {stats.blobs_skipped} "
        f"already present; {human_bytes(moved)} to write from {human_bytes(unique)} of unique blobs "
        f"read once (dedup saves {human_bytes(max(0, moved - unique))} of source reads)",
        file=out,
    )


def print_prune(results: list[PruneResult]) -> None:
    """What prune would delete (and what it refuses), for ``--dry-run``."""
    for result in results:
        doomed = [o for o in result.outcomes if o.outcome == PLANNED]
        print(f"prune {result.job}: {len(doomed)} tag(s) would be deleted", file=sys.stdout)
        for o in doomed:
            print(f"  DELETE {o.destination}:{o.tag} ({o.reason})", file=sys.stdout)
        for o in result.outcomes:
            if o.outcome != PLANNED:
                print(f"  KEEP   {o.destination}:{o.tag}: {o.reason}", file=sys.stdout)
        for refusal in result.plan.refusals:
            print(f"  REFUSED {refusal.where}: {refusal.message}", file=sys.stdout)


async def run_sync(ns: argparse.Namespace) -> int:
    config = load_config(ns.config)
    jobs = config.select_jobs(ns.job)
    shard = parse_shard(ns.shard, hostname=os.environ.get("HOSTNAME")) if ns.shard else None
    daemon = Daemon(
        config,
        jobs,
        shard=shard,
        report_path=ns.report,
        dry_run=ns.dry_run,
        grace=ns.grace,
        metrics_address=ns.metrics_address,
        metrics=None if ns.once or ns.dry_run else new_metrics(),
        redactor=redactor_for(config),
    )
    setup_logging(config.log.format, config.log.level, redactor=daemon.redactor)
    if ns.once or ns.dry_run:
        result = await daemon.once()
        if ns.dry_run:
            print_plan(result)
            print_prune(daemon.last_prune)
        else:
            for line in summary_lines((), result.stats):  # the totals line (not one per image)
                log.info(line, extra={"fields": _totals(result.stats)})
        if daemon.stopped_by is not None:  # stopped by a signal: the pass is not whole
            return exit_code(daemon.stopped_by)
        return 0 if result.ok else 1
    return await daemon.serve()


def _totals(stats: RunStats) -> dict[str, Any]:
    return {
        "bytes_read": stats.bytes_read,
        "bytes_written": stats.bytes_written,
        "blobs_pushed": stats.blobs_pushed,
        "blobs_mounted": stats.blobs_mounted,
        "blobs_skipped": stats.blobs_skipped,
        "requests": stats.requests,
    }
