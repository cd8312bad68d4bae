"""Shared fixtures: real registries on loopback (see tests/support/fixtures.py)."""

from tests.support.fixtures import (
    htpasswd_registry,
    proxy_factory,
    registry,
    registry_factory,
    registry_pair,
    token_registry,
)

__all__ = [
    "htpasswd_registry",
    "proxy_factory",
    "registry",
    "registry_factory",
    "registry_pair",
    "token_registry",
]
