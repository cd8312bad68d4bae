"""``mirror copy SRC DST``: one image, every platform unless filtered, byte for byte."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from mirror.auth.chain import default_chain
from mirror.auth.credentials import StaticProvider
from mirror.auth.redact import RedactingProvider, Redactor
from mirror.cli.options import add_plain_http, parse_creds, plain_http_options
from mirror.cli.terminal import ProgressLine
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.results import ImageResult, RunStats
from mirror.copy.stall import DEFAULT_STALL_TIMEOUT, check_stall_timeout
from mirror.jobs.progress import Progress
from mirror.jobs.referrers import copy_referrers
from mirror.jobs.report import build_report, summary_lines, write_report
from mirror.jobs.schedule import parse_duration
from mirror.jobs.stores import close_stores, open_repository, store_requests
from mirror.registry.profiles import profile_for
from mirror.service.signals import exit_code, on_stop_signals
from mirror.transport.client import Transport
from mirror.types.errors import ConfigError
from mirror.types.events import Fanout
from mirror.types.manifest import Platform
from mirror.types.reference import ImageRef, LayoutRef, parse_reference


@dataclass
class CopyOptions:
    source: str
    destination: str
    src_creds: str | None = None
    dest_creds: str | None = None
    platforms: list[str] = field(default_factory=list)
    plain_http: list[str] = field(default_factory=list)
    overwrite: bool = False
    report: str | None = None
    quiet: bool = False
    concurrency: int = 8
    more_destinations: list[str] = field(default_factory=list)
    create_repository: bool = False
    referrers: bool = False
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    oci_media_types: bool = False
    # Learns every credential and token used, so the report and summary never repeat one
    # (a registry may quote them back in an error message).
    redactor: Redactor = field(default_factory=Redactor, repr=False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        help="HOST/PATH[:TAG|@DIGEST], oci:DIR[:REF] or s3://BUCKET/PREFIX[:REF] (REF: after the first ':')",
    )
    p.add_argument(
        "destination",
        nargs="+",
        help="one or more destinations, same forms as SOURCE; no tag means latest. "
        "The source is read once for all of them",
    )
    p.add_argument(
        "--src-creds", metavar="USER:PASS", help="credentials for the source registry (or $MIRROR_SRC_CREDS)"
    )
    p.add_argument(
        "--dest-creds",
        metavar="USER:PASS",
        help="credentials for the destination registry (or $MIRROR_DEST_CREDS)",
    )
    p.add_argument(
        "--platform",
        action="append",
        default=[],
        dest="platforms",
        metavar="OS/ARCH[/VARIANT]",
        help="copy only these platforms of an index (repeatable); the index pushed then has a new digest",
    )
    add_plain_http(p)
    p.add_argument(
        "--overwrite", action="store_true", help="allow moving a destination tag that names another digest"
    )
    p.add_argument("--report", metavar="FILE", help="write a JSON report of the copy")
    p.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="blob transfers at the same time (default 8)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line, no summary")
    p.add_argument(
        "--stall-timeout",
        type=_stall_timeout,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="DURATION",
        help="fail a transfer whose source or any destination makes no progress this long "
        "(each destination on its own; e.g. 30s, 5m; default 60s)",
    )
    p.add_argument(
        "--referrers",
        action="store_true",
        help="also copy what refers to the image (signatures, SBOMs, attestations): by the "
        "referrers API and the sha256-<hex>[.suffix] fallback tags, and their referrers in turn",
    )
    p.add_argument(
        "--oci-media-types",
        action="store_true",
        help="write Docker images into oci:/s3:// layouts with OCI media types, which skopeo, "
        "podman and umoci need there (the manifests get new digests, and the report says so)",
    )
    p.add_argument(
        "--create-repository",
        action="store_true",
        help="create the destination repository first where pushing does not (Amazon ECR: "
        "CreateRepository with the standard AWS credentials; Artifact Registry: the "
        "PROJECT/REPOSITORY, through its API)",
    )


def _stall_timeout(text: str) -> float:
    try:
        return check_stall_timeout(parse_duration(text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def options_from(ns: argparse.Namespace) -> CopyOptions:
    return CopyOptions(
        source=ns.source,
        destination=ns.destination[0],
        more_destinations=ns.destination[1:],
        src_creds=ns.src_creds or os.environ.get("MIRROR_SRC_CREDS"),
        dest_creds=ns.dest_creds or os.environ.get("MIRROR_DEST_CREDS"),
        platforms=ns.platforms,
        plain_http=ns.plain_http,
        overwrite=ns.overwrite,
        report=ns.report,
        quiet=ns.quiet,
        concurrency=ns.concurrency,
        create_repository=ns.create_repository,
        referrers=ns.referrers,
        stall_timeout=ns.stall_timeout,
        oci_media_types=ns.oci_media_types,
    )


async def run_copy(opts: CopyOptions) -> tuple[int, list[ImageResult], RunStats]:
    src = parse_reference(opts.source)
    dsts = [parse_reference(d) for d in [opts.destination, *opts.more_destinations]]
    platforms = tuple(Platform.parse(p) for p in opts.platforms)
    static = StaticProvider()
    hosts = plain_http_options(opts.plain_http)
    for ref in (src, *dsts):
        if isinstance(ref, ImageRef):  # a registry's own defaults (e.g. a request rate under quotas)
            hosts[ref.api_host] = profile_for(ref.host).host_options(hosts.get(ref.api_host))
    if opts.src_creds and isinstance(src, ImageRef):
        static.add(src.api_host, parse_creds(opts.src_creds, "--src-creds"))
    for dst in dsts:
        if opts.dest_creds and isinstance(dst, ImageRef):
            static.add(dst.api_host, parse_creds(opts.dest_creds, "--dest-creds"))
    for flag, text in (("--src-creds", opts.src_creds), ("--dest-creds", opts.dest_creds)):
        if text:
            opts.redactor.add_credential(parse_creds(text, flag))
    progress = Progress()
    ticker = ProgressLine(progress)
    sink = Fanout()
    if not opts.quiet:
        sink.add(progress)
    started = time.monotonic()
    provider = RedactingProvider(default_chain(static), opts.redactor)
    async with Transport(provider, options=hosts, events=sink, on_secret=opts.redactor.add) as transport:
        for dst in dsts:  # before anything is sent there: ECR and Artifact Registry repositories
            if opts.create_repository and isinstance(dst, ImageRef):
                await profile_for(dst.host).ensure_repository(transport, dst.repository)
        source = open_repository(src, transport)
        destinations = [
            Destination(
                open_repository(d, transport, create=True),
                d.reference,
                layout=isinstance(d, LayoutRef),
                oci_media_types=opts.oci_media_types and isinstance(d, LayoutRef),
            )
            for d in dsts
        ]
        engine = CopyEngine(events=sink, transfers=opts.concurrency, stall_timeout=opts.stall_timeout)
        task = CopyTask(source, src.reference, destinations, platforms, opts.overwrite)
        if not opts.quiet:
            ticker.start()
        stopped: list[signal.Signals] = []

        def on_signal(sig: signal.Signals) -> None:  # stop now: moving transfers are aborted
            stopped.append(sig)
            engine.abort()

        try:
            with on_stop_signals(on_signal):
                results = await engine.run([task])
                if opts.referrers and not stopped:
                    results.extend(await copy_referrers(engine, [(task, results[0])]))
        finally:
            await ticker.stop()
            await engine.aclose()
            await close_stores([source, *(d.repo for d in destinations)])
        stats = engine.stats
        stats.requests = transport.request_count + store_requests([source, *(d.repo for d in destinations)])
        stats.duration_seconds = time.monotonic() - started
    code = exit_code(stopped[0]) if stopped else 0 if all(r.ok for r in results) else 1
    return code, results, stats


def finish(opts: CopyOptions, code: int, results: list[ImageResult], stats: RunStats) -> int:
    if opts.report:
        write_report(opts.report, build_report("copy", results, stats), redact=opts.redactor.redact)
    if not opts.quiet or code:
        for line in summary_lines(results, stats):
            print(opts.redactor.redact(line), file=sys.stderr)
    return code
