"""What differs per kind of registry, in one place, below the copy engine.

A :class:`RegistryProfile` holds what mirror knows about one kind of registry (today: the
largest blob it accepts). :func:`profile_for` picks the profile from the host name
(:mod:`mirror.types.hosts`); the engine and the commands ask the profile, never test a host
name themselves.

Sources of each value:
- Artifact Registry accepts blobs up to 5 TB (Google Cloud's Artifact Registry quotas and limits
  page, "Maximum artifact size").
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.types import hosts

FIVE_TB = 5 * 10**12


@dataclass(frozen=True)
class RegistryProfile:
    kind: str
    max_blob_size: int | None = None  # bytes; None when no limit is known


PROFILES: dict[str, RegistryProfile] = {
    hosts.ARTIFACT_REGISTRY: RegistryProfile(hosts.ARTIFACT_REGISTRY, max_blob_size=FIVE_TB),
    hosts.DOCKER_HUB: RegistryProfile(hosts.DOCKER_HUB),
    hosts.ECR: RegistryProfile(hosts.ECR),
    hosts.ECR_PUBLIC: RegistryProfile(hosts.ECR_PUBLIC),
    hosts.DISTRIBUTION: RegistryProfile(hosts.DISTRIBUTION),
}


def profile_for(host: str) -> RegistryProfile:
    """The profile of the registry at ``host`` (``HOST[:PORT]``)."""
    return PROFILES[hosts.registry_kind(host)]


def known_max_blob_size(host: str) -> int | None:
    """The largest blob ``host`` is known to accept, or ``None``."""
    return profile_for(host).max_blob_size
