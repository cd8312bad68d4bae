"""The ``mirror`` command line. Exit codes: 0 success, 1 a copy failed, 2 usage or input error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mirror import __version__
from mirror.cli import auth as authcmd
from mirror.cli import bench as benchcmd
from mirror.cli import copy as copycmd
from mirror.cli import ls as lscmd
from mirror.cli import sync as synccmd
from mirror.cli import verify as verifycmd
from mirror.cli.runtime import run
from mirror.types.errors import InputError, MirrorError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"mirror: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mirror", description="Container image mirroring and replication.")
    parser.add_argument("--version", action="version", version=f"mirror {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    copy = sub.add_parser("copy", help="copy one image (all platforms) between registries/layouts")
    copycmd.add_arguments(copy)
    sync = sub.add_parser("sync", help="mirror the jobs of a config file, once or on their schedules")
    synccmd.add_arguments(sync)
    verify = sub.add_parser("verify", help="compare every destination with its source; copy nothing")
    verifycmd.add_arguments(verify)
    ls = sub.add_parser("ls", help="list a repository's images: digest, tags, platforms, create time")
    lscmd.add_arguments(ls)
    auth = sub.add_parser("auth", help="credentials: which provider answers for a registry")
    authcmd.add_arguments(auth)
    benchcmd.add_arguments(sub.add_parser("bench", help="time a large synthetic copy between registries"))
    demo = sub.add_parser("demo", help="make a small image in an OCI layout, copy it, list it")
    demo.add_argument("--dir", default="demo-out", help="working directory (replaced)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "copy":
            opts = copycmd.options_from(args)
            code, results, stats = run(copycmd.run_copy(opts))
            return copycmd.finish(opts, code, results, stats)
        if args.command == "sync":
            return run(synccmd.run_sync(args))
        if args.command == "verify":
            return run(verifycmd.run_verify(args))
        if args.command == "ls":
            return run(lscmd.run_ls(args))
        if args.command == "auth":
            return run(authcmd.run_auth(args))
        if args.command == "bench":
            return benchcmd.main(args)
        if args.command == "demo":
            from mirror.cli.demo import run_demo

            return run(run_demo(args.dir))
    except InputError as exc:
        print(f"mirror: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except MirrorError as exc:
        print(f"mirror: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("mirror: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE
