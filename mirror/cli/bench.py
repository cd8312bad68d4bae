"""``mirror bench SRC-REPO DST-REPO --size 10GiB``: measure a large-image transfer between registries.

The measuring is :func:`mirror.copy.bench.run_bench`; this module parses the arguments, builds the
transports, prints the summary and writes the report.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from mirror.auth.chain import default_chain
from mirror.auth.credentials import StaticProvider
from mirror.cli.options import add_plain_http, parse_creds, plain_http_options
from mirror.cli.runtime import run
from mirror.copy.bench import BenchPlan, TransportFactory, run_bench
from mirror.jobs.report import write_report
from mirror.transport.client import Transport
from mirror.types import sizes
from mirror.types.errors import InputError
from mirror.types.events import EventSink
from mirror.types.reference import ImageRef, parse_reference
from mirror.types.sizes import human_bytes


def parse_size(text: str) -> int:
    """Bytes from ``10GiB``, ``5TB``, ``512MiB``, ``1.5GiB`` or a plain number of bytes."""
    return sizes.parse_size(text)


@dataclass
class BenchOptions:
    source: str
    destination: str
    size: int
    seed: str = "mirror-bench"
    src_creds: str | None = None
    dest_creds: str | None = None
    plain_http: list[str] = field(default_factory=list)
    keep: bool = False
    report: str | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC-REPO", help="HOST/PATH: where the synthetic image is pushed")
    p.add_argument("destination", metavar="DST-REPO", help="HOST/PATH: where it is copied to")
    p.add_argument(
        "--size", required=True, type=_size_arg, help="size of the synthetic layer, e.g. 512MiB, 10GiB, 5TB"
    )
    p.add_argument("--seed", default="mirror-bench", help="seed of the synthetic content")
    p.add_argument("--src-creds", metavar="USER:PASS", help="credentials for SRC (or $MIRROR_SRC_CREDS)")
    p.add_argument("--dest-creds", metavar="USER:PASS", help="credentials for DST (or $MIRROR_DEST_CREDS)")
    add_plain_http(p)
    p.add_argument("--keep", action="store_true", help="leave the scratch tags in place")
    p.add_argument("--report", metavar="FILE", help="write the results as JSON")


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def options_from(ns: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        source=ns.source,
        destination=ns.destination,
        size=ns.size,
        seed=ns.seed,
        src_creds=ns.src_creds or os.environ.get("MIRROR_SRC_CREDS"),
        dest_creds=ns.dest_creds or os.environ.get("MIRROR_DEST_CREDS"),
        plain_http=ns.plain_http,
        keep=ns.keep,
        report=ns.report,
    )


def _repository_ref(text: str, what: str) -> ImageRef:
    ref = parse_reference(text, default_tag=False)
    if not isinstance(ref, ImageRef):
        raise InputError(f"{what} {text!r}: expected a registry repository HOST/PATH")
    return ref


def _transport(opts: BenchOptions, src: ImageRef, dst: ImageRef) -> TransportFactory:
    static = StaticProvider()
    if opts.src_creds:
        static.add(src.api_host, parse_creds(opts.src_creds, "--src-creds"))
    if opts.dest_creds:
        static.add(dst.api_host, parse_creds(opts.dest_creds, "--dest-creds"))
    options = plain_http_options(opts.plain_http)

    def make(events: EventSink) -> Transport:
        return Transport(default_chain(static), options=options, events=events)

    return make


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def summary(doc: dict[str, Any]) -> list[str]:
    copy = doc.get("copy", {})
    lines = [f"bench {doc['source']} -> {doc['destination']} ({human_bytes(doc['size'])})"]
    push = doc.get("push")
    if push:
        lines.append(
            f"  push to source: {_duration(push['seconds'])}, {human_bytes(push['bytes_per_second'])}/s"
        )
    if copy:
        lines.append(
            f"  copy: {copy['status']} in {_duration(copy['seconds'])}, "
            f"{human_bytes(copy['bytes_per_second'])}/s ({copy['bytes_per_second'] / 1e6:.0f} MB/s)"
        )
        if copy.get("error"):
            lines.append(f"  error: {copy['error']}")
        lines.append(
            f"  requests {copy['requests']}, retries {copy['retries']}, "
            f"registry token fetches {copy['token_fetches']}"
        )
        if copy.get("projected_5tb_seconds"):
            lines.append(f"  a 5 TB artifact at this rate: {_duration(copy['projected_5tb_seconds'])}")
    for where, outcome in (doc.get("cleanup") or {}).items():
        lines.append(f"  cleanup {where}: {outcome}")
    return lines


def finish(opts: BenchOptions, code: int, doc: dict[str, Any]) -> int:
    if opts.report:
        write_report(opts.report, doc)
    for line in summary(doc):
        print(line)
    return code


def main(ns: argparse.Namespace) -> int:
    """``mirror bench``: parsed arguments in, exit code out."""
    opts = options_from(ns)
    src = _repository_ref(opts.source, "SRC-REPO")
    dst = _repository_ref(opts.destination, "DST-REPO")
    plan = BenchPlan(src, dst, opts.size, seed=opts.seed, keep=opts.keep)
    code, doc = run(run_bench(plan, _transport(opts, src, dst), _say))
    return finish(opts, code, doc)
