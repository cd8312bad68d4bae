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

from dataclasses import dataclass

from mirror.registry.profiles.base import RegistryProfile
from mirror.types import hosts


@dataclass(frozen=True)
class EcrPublicProfile(RegistryProfile):
    kind: str = hosts.ECR_PUBLIC
