"""The ``mirror`` process: ``python -m mirror`` and the installed ``mirror`` command."""

from __future__ import annotations


def main() -> int:
    from mirror.cli import collector

    collector.starting()  # before the command line's imports
    from mirror.cli.main import main as command

    try:
        return command()
    finally:
        collector.ending()


if __name__ == "__main__":
    raise SystemExit(main())
