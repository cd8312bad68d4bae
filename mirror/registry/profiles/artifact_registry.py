"""Artifact Registry (Google Cloud, and Trusted Cloud by S3NS).

Sources of each value (Google Cloud documentation unless said otherwise):
- hosts ``LOCATION-docker.pkg.dev`` (Google Cloud) and ``LOCATION-docker.s3nsregistry.fr``
  (S3NS); repository paths are ``PROJECT/REPOSITORY/IMAGE`` ("Repository and image names");
- the Artifact Registry API is ``https://artifactregistry.googleapis.com``, and on S3NS
  ``https://artifactregistry.s3nsapis.fr`` (the service endpoint of the universe domain,
  ``s3nsapis.fr``), answering with the same credentials as the registry;
- quotas per project and region: 60,000 requests per minute, 18,000 write or delete requests per
  minute; beyond them ``429 TOOMANYREQUESTS: Quota exceeded ...`` ("Quotas and limits"; the
  message as reported in kubernetes/k8s.io#6431 and kubernetes-sigs/promo-tools#637). The default
  per-host limit, 250 requests per second, stays under the write quota even if every request
  were a write (15,000 per minute);
- the largest artifact is 5 TB ("Quotas and limits", "Maximum artifact size");
- ``_catalog`` is not a usable listing ("Docker Registry API": list repositories through the
  Artifact Registry API instead); images are listed with ``dockerImages.list``;
- chunked uploads are not supported, only monolithic ones ("Docker Registry API" note);
- a Docker tag listing of one image is incomplete past 10,000 tags (reported by users; the
  count is what the registry is known to cut at);
- repositories must exist before a push; they are created with ``repositories.create``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from mirror.registry.arapi import ArtifactRegistryApi, DockerImage
from mirror.registry.profiles.base import RegistryProfile, RepositoryListing
from mirror.transport.client import Transport
from mirror.types import hosts
from mirror.types.digest import Digest
from mirror.types.errors import ConfigError, InputError, InvalidReference

FIVE_TB = 5 * 10**12
GOOGLE_API = "https://artifactregistry.googleapis.com"
S3NS_API = "https://artifactregistry.s3nsapis.fr"
DEFAULT_REQUESTS_PER_SECOND = 250.0
TAG_LIST_LIMIT = 10_000
LIST_CONCURRENCY = 8  # Artifact Registry repositories listed at the same time

_HOST_SUFFIXES = {"-docker.pkg.dev": GOOGLE_API, "-docker.s3nsregistry.fr": S3NS_API}


def location_of(host: str) -> str | None:
    """``europe-west1`` from ``europe-west1-docker.pkg.dev``; ``None`` when the name does not say."""
    name = hosts.host_name(host)
    for suffix in _HOST_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def api_endpoint_of(host: str) -> str | None:
    """The Artifact Registry API of the universe ``host`` belongs to; ``None`` for other hosts."""
    name = hosts.host_name(host)
    for suffix, api in _HOST_SUFFIXES.items():
        if name.endswith(suffix):
            return api
    return None


def listed_digests(images: Iterable[DockerImage]) -> dict[str, dict[str, str]]:
    """The manifest digest of each listed tag (repository -> tag -> digest): the digest of the
    image that lists it, as its ``name`` says and its ``uri`` (``...@sha256:...``) confirms when
    it names one. A tag listed on two images (it moved while the pages were read) or an image whose
    two fields disagree names no digest: such a tag is looked up by tag, as any other."""
    digests: dict[str, dict[str, str]] = {}
    ambiguous: set[tuple[str, str]] = set()
    for image in images:
        _, at, named = image.uri.rpartition("@")
        if not _well_formed(image.digest) or (at and named != image.digest):
            ambiguous.update((image.repository, tag) for tag in image.tags)
            continue
        by_tag = digests.setdefault(image.repository, {})
        for tag in image.tags:
            if by_tag.setdefault(tag, image.digest) != image.digest:
                ambiguous.add((image.repository, tag))
    for repository, tag in ambiguous:
        digests.get(repository, {}).pop(tag, None)
    return digests


def _well_formed(digest: str) -> bool:
    try:
        Digest.parse(digest)
    except InvalidReference:
        return False
    return True


@dataclass(frozen=True)
class ArtifactRegistryProfile(RegistryProfile):
    kind: str = hosts.ARTIFACT_REGISTRY
    max_blob_size: int | None = FIVE_TB
    requests_per_second: float | None = DEFAULT_REQUESTS_PER_SECOND
    location: str = ""
    api_endpoint: str = ""

    @classmethod
    def build(
        cls, host: str, *, location: str | None = None, api_endpoint: str | None = None
    ) -> ArtifactRegistryProfile:
        """The profile of ``host``; ``location`` and ``api_endpoint`` default from the host name.
        Raises ConfigError (its ``path`` the setting to add) when neither says."""
        where = location or location_of(host)
        if not where:
            raise ConfigError(
                f"{host}: the host name does not say the Artifact Registry location; set location "
                "(e.g. europe-west1) for this registry",
                "location",
            )
        api = (api_endpoint or api_endpoint_of(host) or "").rstrip("/")
        if not api:
            raise ConfigError(
                f"{host}: no Artifact Registry API is known for this host; set api_endpoint "
                f"(e.g. {GOOGLE_API}) for this registry",
                "api_endpoint",
            )
        return cls(host, location=where, api_endpoint=api)

    def describe(self) -> str:
        return f"{self.host}: {self.kind} in {self.location}, API {self.api_endpoint}"

    def api(self, transport: Transport) -> ArtifactRegistryApi:
        """The Artifact Registry API of this location, called with this registry's credential."""
        return ArtifactRegistryApi(
            transport, host=self.host, location=self.location, api_endpoint=self.api_endpoint
        )

    async def list_repositories(self, transport: Transport, prefix: str) -> RepositoryListing:
        """Images under ``PROJECT/*`` (every Docker repository of the project, through
        ``repositories.list``) or ``PROJECT/REPOSITORY[/PATH]/*``, with their tags, through
        ``dockerImages.list``: ``_catalog`` lists nothing here."""
        parts = [p for p in prefix.split("/") if p]
        if not parts:
            raise InputError(
                f"{self.host}/*: Artifact Registry lists repositories per project; name one: "
                f"{self.host}/PROJECT/* or {self.host}/PROJECT/REPOSITORY/*"
            )
        api = self.api(transport)
        project = parts[0]
        repositories = await api.repositories(project) if len(parts) == 1 else [parts[1]]
        limit = asyncio.Semaphore(LIST_CONCURRENCY)

        async def images(repository: str) -> list[DockerImage]:
            async with limit:
                return await api.images(project, repository)

        listing = RepositoryListing([])
        tags: dict[str, set[str]] = {}
        listed = await asyncio.gather(*(images(r) for r in repositories))
        for found in listed:
            for image in found:
                tags.setdefault(image.repository, set()).update(image.tags)
        listing.repositories = sorted(tags)
        listing.tags = {repo: sorted(names) for repo, names in tags.items()}
        listing.digests = listed_digests(image for found in listed for image in found)
        return listing

    async def complete_tags(self, transport: Transport, repository: str, listed: list[str]) -> list[str]:
        """The Docker tag listing is cut at 10,000 tags: past that, the API gives them all."""
        parts = repository.split("/", 2)
        if len(listed) < TAG_LIST_LIMIT or len(parts) < 3:
            return listed
        found = await self.api(transport).images(parts[0], parts[1])
        more = {t for image in found if image.repository == repository for t in image.tags}
        return listed + sorted(more.difference(listed))

    def creation_key(self, repository: str) -> str:
        return "/".join(repository.split("/")[:2])

    async def ensure_repository(self, transport: Transport, repository: str) -> bool:
        """Create the Artifact Registry repository (``PROJECT/REPOSITORY``) that holds
        ``repository`` (``PROJECT/REPOSITORY/IMAGE``) unless it exists."""
        parts = repository.split("/")
        if len(parts) < 3:
            raise InputError(
                f"{self.host}/{repository}: an Artifact Registry image is PROJECT/REPOSITORY/IMAGE; "
                "the destination needs a project and a repository"
            )
        return await self.api(transport).create_repository(parts[0], parts[1])
