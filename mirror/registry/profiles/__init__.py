"""What differs per kind of registry, in one place per kind, below the copy engine.

A :class:`RegistryProfile` holds what mirror knows about one registry and how it adapts to it;
each kind refines the distribution registry's profile (:mod:`.base`) in its own module:
:mod:`.artifact_registry`, :mod:`.docker_hub`, :mod:`.ecr`, :mod:`.ecr_public`. The kind comes
from the host name (:func:`mirror.types.hosts.registry_kind`) unless the config names it
(``registries.HOST.kind``). The engine, the jobs and the commands ask the profile; none of them
tests a host name. ``docs/REGISTRIES.md`` lists what each kind changes.
"""

from __future__ import annotations

from mirror.registry.profiles.artifact_registry import ArtifactRegistryProfile
from mirror.registry.profiles.base import RegistryProfile
from mirror.registry.profiles.docker_hub import DockerHubProfile
from mirror.registry.profiles.ecr import EcrProfile
from mirror.registry.profiles.ecr_public import EcrPublicProfile
from mirror.types import hosts
from mirror.types.errors import ConfigError

__all__ = [
    "ArtifactRegistryProfile",
    "DockerHubProfile",
    "EcrProfile",
    "EcrPublicProfile",
    "RegistryProfile",
    "known_max_blob_size",
    "profile_for",
]

_SIMPLE: dict[str, type[RegistryProfile]] = {
    hosts.DOCKER_HUB: DockerHubProfile,
    hosts.ECR: EcrProfile,
    hosts.ECR_PUBLIC: EcrPublicProfile,
    hosts.DISTRIBUTION: RegistryProfile,
}


def profile_for(
    host: str,
    kind: str | None = None,
    *,
    location: str | None = None,
    api_endpoint: str | None = None,
) -> RegistryProfile:
    """The profile of the registry at ``host`` (``HOST[:PORT]``): of ``kind`` when given, else of
    the kind its name says. ``location`` and ``api_endpoint`` apply to Artifact Registry.
    Raises ConfigError (``path``: the setting at fault) for an unknown kind, Artifact Registry
    settings on another kind, or an Artifact Registry whose location or API is neither given nor
    known from its name."""
    kind = kind or hosts.registry_kind(host)
    if kind == hosts.ARTIFACT_REGISTRY:
        return ArtifactRegistryProfile.build(host, location=location, api_endpoint=api_endpoint)
    if location or api_endpoint:
        raise ConfigError(
            f"{host}: location and api_endpoint apply to Artifact Registry only, not to {kind}; "
            "remove them, or set kind: artifact-registry",
            "location" if location else "api_endpoint",
        )
    cls = _SIMPLE.get(kind)
    if cls is None:
        raise ConfigError(f"unknown registry kind {kind!r}; use one of {', '.join(hosts.KINDS)}", "kind")
    return cls(host)


def known_max_blob_size(host: str) -> int | None:
    """The largest blob ``host`` is known to accept, or ``None``."""
    try:
        return profile_for(host).max_blob_size
    except ConfigError:
        return None
