"""Shared fixtures: real registries on loopback (see tests/support/fixtures.py); moto's server, once
per session, and a fake AWS environment (tests/support/aws.py); the interop suite's outside tools
and the content they build, once per session (tests/support/interop.py).

Property tests check behaviour, not speed: no per-example deadline, so a first example that
pays a lazy import, or a machine busy with registries, is not reported as a failure.
"""

from hypothesis import settings

from tests.support.aws import aws_env, bucket, moto_url, s3
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
    "aws_env",
    "bucket",
    "containerd",
    "htpasswd_registry",
    "interop_destination",
    "interop_registries",
    "interop_source",
    "moto_url",
    "podman",
    "proxy_factory",
    "registry",
    "registry_factory",
    "registry_pair",
    "s3",
    "token_registry",
    "umoci",
]

settings.register_profile("mirror", deadline=None)
settings.load_profile("mirror")
