"""The profile every kind of registry starts from: a CNCF distribution registry.

The other kinds (:mod:`.artifact_registry`, :mod:`.docker_hub`, :mod:`.ecr`, :mod:`.ecr_public`)
refine it where their registry behaves differently. Callers ask the profile; they never test a
host name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mirror.transport.client import HostOptions
from mirror.types import hosts


@dataclass(frozen=True)
class RegistryProfile:
    """What mirror knows about the registry at ``host`` and how it adapts to it."""

    host: str
    kind: str = hosts.DISTRIBUTION
    max_blob_size: int | None = None
    """Bytes; ``None`` when no limit is known."""
    requests_per_second: float | None = None
    """The per-host request rate used when the config sets none (a registry quota)."""

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
