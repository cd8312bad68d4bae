"""The ``mirror`` command line. Exit codes: 0 success, 1 a copy failed, 2 usage or input error.

Start-up is paid by every one-shot run (a CronJob pays it each time), so only the module of the
command being run is imported, and that module imports what its own path uses: ``--version``
and ``--help`` load no command at all, ``copy`` never loads the config models, and nothing loads
a cloud SDK or the metrics library unless the run uses them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence

from mirror import __version__
from mirror.cli import collector
from mirror.service.signals import remembered_stop_signals
from mirror.types.errors import InputError, MirrorError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# name -> (module, one-line help); each module has ``add_arguments(parser)``.
COMMANDS: dict[str, tuple[str, str]] = {
    "copy": ("mirror.cli.copy", "copy one image (all platforms) between registries/layouts"),
    "sync": ("mirror.cli.sync", "mirror the jobs of a config file, once or on their schedules"),
    "verify": ("mirror.cli.verify", "compare every destination with its source; copy nothing"),
    "ls": ("mirror.cli.ls", "list a repository's images: digest, tags, platforms, create time"),
    "auth": ("mirror.cli.auth", "credentials: which provider answers for a registry"),
    "bench": ("mirror.cli.bench", "time a large synthetic copy between registries"),
    "demo": ("", "make a small image in an OCI layout, copy it, list it"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"mirror: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level parser
    has no option taking a value), if it is a command."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The parser with every command's arguments; with ``command``, only that command's module is
    imported to add its arguments (None: no command's)."""
    parser = _Parser(prog="mirror", description="Container image mirroring and replication.")
    parser.add_argument("--version", action="version", version=f"mirror {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if not module:
            p.add_argument("--dir", default="demo-out", help="working directory (replaced)")
        elif command in (name, "*"):
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = command_in(words)
    # The commands that copy stop in order on SIGTERM/SIGINT, even one received while starting.
    with remembered_stop_signals() if command in ("copy", "sync") else contextlib.nullcontext():
        parser = build_parser(command)  # imports the command's path
        collector.started()
        return _main(parser, words)


def _main(parser: argparse.ArgumentParser, words: list[str]) -> int:
    args = parser.parse_args(words)
    try:
        return _dispatch(args)
    except InputError as exc:
        print(f"mirror: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except MirrorError as exc:
        print(f"mirror: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("mirror: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from mirror.cli.runtime import run

    if args.command == "copy":
        from mirror.cli import copy as copycmd

        opts = copycmd.options_from(args)
        code, results, stats = run(copycmd.run_copy(opts))
        return copycmd.finish(opts, code, results, stats)
    if args.command == "sync":
        from mirror.cli.sync import run_sync

        return run(run_sync(args))
    if args.command == "verify":
        from mirror.cli.verify import run_verify

        return run(run_verify(args))
    if args.command == "ls":
        from mirror.cli.ls import run_ls

        return run(run_ls(args))
    if args.command == "auth":
        from mirror.cli.auth import run_auth

        return run(run_auth(args))
    if args.command == "bench":
        from mirror.cli import bench as benchcmd

        return benchcmd.main(args)
    from mirror.cli.demo import run_demo

    return run(run_demo(args.dir))
