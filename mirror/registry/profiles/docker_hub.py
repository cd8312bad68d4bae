"""Docker Hub (``docker.io``, ``index.docker.io``, ``registry-1.docker.io``).

Sources (Docker documentation, "Docker Hub usage and limits" / "Pull usage and limits", unless
said otherwise):
- a pull is a manifest GET; HEAD requests are not counted;
- limits per 6 hours: 10 pulls per IPv4 address or IPv6 /64 anonymously, 100 for a personal
  authenticated account; paid plans are not limited that way;
- manifest answers carry ``RateLimit-Limit: 100;w=21600`` and ``RateLimit-Remaining: 76;w=21600``
  (``w`` = the window in seconds); accounts without a limit get no such headers, and the values
  have been reported empty;
- past the limit, ``429`` with the OCI code ``TOOMANYREQUESTS`` ("You have reached your pull rate
  limit");
- registry tokens from ``auth.docker.io`` last 300 s (``expires_in: 300``);
- HEAD and GET must send the same ``Accept``: the registry converts manifests to what is
  accepted, and a different representation has a different digest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mirror.registry.profiles.base import RegistryProfile
from mirror.transport.client import HostOptions
from mirror.types import hosts

PULL_LIMIT_CODE = "TOOMANYREQUESTS"


@dataclass(frozen=True)
class DockerHubProfile(RegistryProfile):
    """Manifest GETs go through a pull budget (:mod:`mirror.registry.pulls`); the pull limit's
    429 is final for the pass, not retried (its window refills in hours)."""

    kind: str = hosts.DOCKER_HUB
    counts_pulls: bool = True

    def host_options(self, configured: HostOptions | None = None) -> HostOptions:
        options = super().host_options(configured)
        return dataclasses.replace(options, final_codes=options.final_codes | {PULL_LIMIT_CODE})
