"""Shared fixtures: real registries on loopback (see tests/support/fixtures.py); the interop
suite's outside tools and the content they build, once per session (tests/support/interop.py).

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
from tests.support.interop import (
    containerd,
    interop_destination,
    interop_registries,
    interop_source,
    podman,
    umoci,
)

__all__ = [
    "containerd",
    "htpasswd_registry",
    "interop_destination",
    "interop_registries",
    "interop_source",
    "podman",
    "proxy_factory",
    "registry",
    "registry_factory",
    "registry_pair",
    "token_registry",
    "umoci",
]

settings.register_profile("mirror", deadline=None)
settings.load_profile("mirror")
