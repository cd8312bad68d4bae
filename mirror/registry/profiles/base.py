"""The profile every kind of registry starts from: a CNCF distribution registry.

The other kinds (:mod:`.artifact_registry`, :mod:`.docker_hub`, :mod:`.ecr`, :mod:`.ecr_public`)
refine it where their registry behaves differently. Callers ask the profile; they never test a
host name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mirror.transport.client import HostOptions, Transport
from mirror.types import hosts
from mirror.types.errors import MirrorError, RegistryError

# Answers to a tag PUT that are never an immutability refusal: credentials, a missing
# repository, throttling (and every 5xx).
_NOT_A_TAG_REFUSAL = frozenset({401, 404, 408, 429})


@dataclass
class RepositoryListing:
    """The repositories a registry lists (``HOST``-relative paths), and the tags of each when the
    listing gave them (a registry API that lists images with their tags), with the manifest
    digest of each tag where the listing named one."""

    repositories: list[str]
    tags: dict[str, list[str]] = field(default_factory=dict)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)  # repository -> tag -> digest


@dataclass(frozen=True)
class RegistryProfile:
    """What mirror knows about the registry at ``host`` and how it adapts to it."""

    host: str
    kind: str = hosts.DISTRIBUTION
    max_blob_size: int | None = None
    """Bytes; ``None`` when no limit is known."""
    requests_per_second: float | None = None
    """The per-host request rate used when the config sets none (a registry quota)."""
    counts_pulls: bool = False
    """Manifest GETs are counted against a pull limit (see :mod:`mirror.registry.pulls`)."""

    def host_options(self, configured: HostOptions | None = None) -> HostOptions:
        """Transport options for this host: the configured ones, completed by the profile's
        defaults where the config left a field unset."""
        options = configured or HostOptions()
        if options.requests_per_second is None and self.requests_per_second is not None:
            options = dataclasses.replace(options, requests_per_second=self.requests_per_second)
        return options

    def describe(self) -> str:
        """One line for logs and ``mirror auth check``."""
        return f"{self.host}: {self.kind}"

    # -- listing -----------------------------------------------------------------------------

    async def list_repositories(self, transport: Transport, prefix: str) -> RepositoryListing | None:
        """The repositories under ``prefix`` (a path, ``""`` for all) when this kind lists them
        another way than ``_catalog``; ``None``: use the registry's ``_catalog``."""
        return None

    async def complete_tags(self, transport: Transport, repository: str, listed: list[str]) -> list[str]:
        """The tags of ``repository``, given what its Docker tag listing returned (which some
        registries cut short)."""
        return listed

    # -- writing -----------------------------------------------------------------------------

    async def ensure_repository(self, transport: Transport, repository: str) -> bool:
        """Create what must exist before ``repository`` can be pushed to; True when something was
        created. Registries that create repositories on push need nothing."""
        return False

    async def delete_tag(self, transport: Transport, repository: str, tag: str) -> bool:
        """Remove ``tag`` from ``repository`` through the registry's own API, when it has one that
        removes a tag only; True when done. False: use the distribution API (``DELETE`` of the
        manifest by tag, see :mod:`mirror.registry.untag`)."""
        return False

    def upload_refusal(self, error: MirrorError, size: int) -> MirrorError | None:
        """The error to raise instead of ``error`` when a blob upload of ``size`` bytes failed in
        a way this registry never accepts (so it is not retried); ``None`` otherwise."""
        return None

    def creation_key(self, repository: str) -> str:
        """What :meth:`ensure_repository` creates for ``repository``: repositories sharing a key
        need it done once."""
        return repository

    def may_be_tag_refusal(self, error: RegistryError) -> bool:
        """Whether a refused tag PUT may be the registry keeping the tag where it is (an
        immutable tag). Registries do not agree on the status or code, so any other client error
        is checked by re-reading the tag: it names another digest (a conflict) or the same one
        (nothing to do)."""
        return 400 <= error.status < 500 and error.status not in _NOT_A_TAG_REFUSAL
