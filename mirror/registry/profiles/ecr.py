"""Amazon ECR private registries (``ACCOUNT.dkr.ecr.REGION.amazonaws.com`` and its variants).

Sources (Amazon ECR User Guide unless said otherwise):
- a repository must exist before a push (``NAME_UNKNOWN`` otherwise); ``CreateRepository``
  creates it;
- ``BatchDeleteImage`` given an ``imageTag`` removes that tag only (the image goes with its last
  tag) (ECR API Reference);
- an immutable repository refuses to move a tag with ``TAG_INVALID`` "The image tag '...'
  already exists in the '...' repository and cannot be overwritten because the repository is
  immutable", even for the same digest (the message as reported in aws/containers-roadmap#862);
- cross-repository blob mounting is an account setting (``BLOB_MOUNTING``), off by default; a
  mount then answers 202 with an upload session;
- a failed upload session cannot be continued from its start: ``416 BLOB_UPLOAD_INVALID`` "First
  byte of the layer part is 0 instead of N" (reported in apple/containerization#790); a retry
  needs a fresh session;
- an upload that carries no bytes is refused: ``400 BLOB_UPLOAD_INVALID`` "... cannot be
  completed because it does not have any parts" (reported in radius-project/radius#7855; the ECR
  API documents ``EmptyUploadException`` for a layer upload without parts);
- repositories are listed with ``DescribeRepositories`` (``maxResults`` 1 to 1000, ``nextToken``)
  (ECR API Reference); ECR's ``_catalog`` is not documented (see :mod:`mirror.registry.ecr`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.registry.profiles.base import RegistryProfile, RepositoryListing
from mirror.transport.client import Transport
from mirror.types import hosts
from mirror.types.errors import MirrorError, RegistryError


@dataclass(frozen=True)
class EcrProfile(RegistryProfile):
    kind: str = hosts.ECR

    async def list_repositories(self, transport: Transport, prefix: str) -> RepositoryListing:
        """Every repository of the registry, through ``DescribeRepositories`` (credentials from the
        AWS chain; the region from the host, or the AWS configuration for ECR under another name):
        the job keeps those under its prefix, as it does with a ``_catalog``. The tags of each come
        from its tag listing. A failure fails the job, naming the permission needed."""
        from mirror.registry.ecr import list_repositories

        return RepositoryListing(await list_repositories(self.host, any_name=True))

    async def ensure_repository(self, transport: Transport, repository: str) -> bool:
        """``CreateRepository`` (credentials from the AWS chain), unless it exists."""
        from mirror.registry.ecr import ensure_repository

        return await ensure_repository(self.host, repository, any_name=True)

    async def delete_tag(self, transport: Transport, repository: str, tag: str) -> bool:
        """``BatchDeleteImage`` with the tag (credentials from the AWS chain): ECR removes that tag
        only, whatever the host's name (the config's ``kind: ecr``)."""
        from mirror.registry.ecr import delete_tag

        await delete_tag(self.host, repository, tag, any_name=True)
        return True

    def upload_refusal(self, error: MirrorError, size: int) -> MirrorError | None:
        """ECR completes no upload without a part, so a 0-byte blob cannot be stored: a final
        error (not retried) that says so."""
        if size != 0 or not isinstance(error, RegistryError) or "any parts" not in error.message:
            return None
        return RegistryError(
            f"ECR does not store a blob of 0 bytes (an upload without any part); the image cannot "
            f"be mirrored there as it is: {error.message}",
            status=error.status,
            code=error.code,
            temporary=False,
        )
