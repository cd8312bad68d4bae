"""Shared fixtures: real registries on loopback (see tests/support/fixtures.py).

Property tests check behaviour, not speed: no per-example deadline, so a first example that
pays a lazy import, or a machine busy with registries, is not reported as a failure.
"""

from hypothesis import settings

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

settings.register_profile("mirror", deadline=None)
settings.load_profile("mirror")
