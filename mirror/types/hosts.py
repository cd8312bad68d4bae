"""Which registry a host name belongs to, from the name alone. Pure.

Hosts are matched case-insensitively and without their port:
- Artifact Registry: ``LOCATION-docker.pkg.dev`` (Google Cloud) and
  ``LOCATION-docker.s3nsregistry.fr`` (Trusted Cloud by S3NS);
- Docker Hub: ``docker.io``, ``index.docker.io``, ``registry-1.docker.io``;
- Amazon ECR: ``ACCOUNT.dkr.ecr.REGION.amazonaws.com`` (also ``-fips``, ``.com.cn``, ``on.aws``
  and the isolated partitions); ECR Public: ``public.ecr.aws``;
- anything else: a distribution registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ARTIFACT_REGISTRY = "artifact-registry"
DOCKER_HUB = "docker-hub"
ECR = "ecr"
ECR_PUBLIC = "ecr-public"
DISTRIBUTION = "distribution"
KINDS = (ARTIFACT_REGISTRY, DOCKER_HUB, ECR, ECR_PUBLIC, DISTRIBUTION)

_AR_SUFFIXES = ("-docker.pkg.dev", "-docker.s3nsregistry.fr")
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_ECR_PUBLIC_HOSTS = frozenset({"public.ecr.aws"})
_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr[.-]ecr(?P<fips>-fips)?\.(?P<region>[a-z]{2}(?:-[a-z0-9]+)+)\."
    r"(?P<domain>amazonaws\.com(?:\.cn)?|on\.aws|sc2s\.sgov\.gov|c2s\.ic\.gov)$"
)


@dataclass(frozen=True)
class EcrHost:
    account: str
    region: str
    fips: bool
    domain: str


def host_name(host: str) -> str:
    """``Host:5000`` -> ``host``; ``[::1]:5000`` -> ``[::1]``."""
    host = host.lower()
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]


def parse_ecr_host(host: str) -> EcrHost | None:
    """The account, region and flavour of an ECR registry host; ``None`` for any other host."""
    m = _ECR_HOST.match(host.lower())
    if m is None:
        return None
    return EcrHost(m["account"], m["region"], bool(m["fips"]), m["domain"])


def registry_kind(host: str) -> str:
    """The kind of registry ``host`` names (one of :data:`KINDS`)."""
    name = host_name(host)
    if name.endswith(_AR_SUFFIXES):
        return ARTIFACT_REGISTRY
    if name in _HUB_HOSTS:
        return DOCKER_HUB
    if name in _ECR_PUBLIC_HOSTS:
        return ECR_PUBLIC
    if parse_ecr_host(name) is not None:
        return ECR
    return DISTRIBUTION
