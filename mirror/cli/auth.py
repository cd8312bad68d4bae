"""``mirror auth check HOST``: which provider answers for a registry, and until when; never the secret."""

from __future__ import annotations

import argparse
import sys

from mirror.auth.chain import default_chain
from mirror.auth.check import describe, format_description
from mirror.auth.credentials import StaticProvider
from mirror.types.reference import DOCKER_HUB, DOCKER_HUB_API, validate_host


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="auth_command", required=True)
    check = sub.add_parser("check", help="show which credential answers for a registry host")
    check.add_argument("host", help="registry host, e.g. europe-west1-docker.pkg.dev")
    check.add_argument("--config", metavar="FILE", help="also consider the registries of a config file")
    check.add_argument(
        "--min-valid",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="ask providers for a credential valid this much longer (refreshing it)",
    )


async def run_auth(ns: argparse.Namespace) -> int:
    host = validate_host(ns.host)
    if host == DOCKER_HUB:
        host = DOCKER_HUB_API
    static = StaticProvider()
    if ns.config:
        from mirror.jobs.config import load_config

        for name, cred in load_config(ns.config).credentials().items():
            static.add(name, cred)
    description = await describe(host, default_chain(static), min_valid=ns.min_valid)
    print(format_description(description), file=sys.stdout)
    return 1 if description.error else 0
