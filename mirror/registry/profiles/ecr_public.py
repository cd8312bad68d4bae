"""Amazon ECR Public (``public.ecr.aws``).

Sources:
- anonymous pulls get a token from the registry's own realm; authenticated access uses
  ``ecr-public:GetAuthorizationToken`` (region ``us-east-1``), whose answer is base64 of
  ``AWS:PASSWORD`` with an ``expiresAt`` (Amazon ECR Public User Guide, "Registry
  authentication");
- a request with an expired or invalid bearer token is answered ``400 Bad Request`` without a
  challenge, not ``401`` (reported in aws/containers-roadmap#2835 and lablup/backend.ai#2549).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mirror.registry.profiles.base import RegistryProfile
from mirror.transport.client import HostOptions
from mirror.types import hosts

EXPIRED_TOKEN_STATUS = 400


@dataclass(frozen=True)
class EcrPublicProfile(RegistryProfile):
    """A 400 to a request with a bearer token may be the token having expired: the transport
    fetches a fresh token and sends the request again, once. Credentials come from
    :class:`mirror.auth.ecrpublic.EcrPublicProvider` (anonymous without AWS credentials)."""

    kind: str = hosts.ECR_PUBLIC

    def host_options(self, configured: HostOptions | None = None) -> HostOptions:
        options = super().host_options(configured)
        statuses = options.expired_token_statuses | {EXPIRED_TOKEN_STATUS}
        return dataclasses.replace(options, expired_token_statuses=statuses)
