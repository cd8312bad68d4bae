"""Arguments shared by the commands that talk to registries: credentials and plain HTTP."""

from __future__ import annotations

import argparse

from mirror.auth.credentials import Credential
from mirror.transport.client import HostOptions
from mirror.types.errors import InputError
from mirror.types.reference import validate_host


def parse_creds(text: str, flag: str) -> Credential:
    """``USER:PASSWORD`` (the password may contain ':') from the option ``flag``."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise InputError(f"{flag} must be USER:PASSWORD (the password may contain ':')")
    return Credential(username=user, password=password, provider=flag)


def add_plain_http(p: argparse.ArgumentParser) -> None:
    """``--plain-http HOST`` (repeatable)."""
    p.add_argument(
        "--plain-http",
        action="append",
        default=[],
        metavar="HOST",
        help="talk plain HTTP to HOST (repeatable); loopback hosts may without it",
    )


def plain_http_options(hosts: list[str]) -> dict[str, HostOptions]:
    """Transport options for the hosts named by ``--plain-http`` (validated)."""
    return {validate_host(host): HostOptions(plain_http=True) for host in hosts}
