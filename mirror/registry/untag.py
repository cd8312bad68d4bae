"""Deleting one tag from a repository, the way its store allows, without taking other tags along.

- OCI layouts (``oci:``, ``s3://``): the tag's entry leaves ``index.json``; blobs stay.
- A registry whose own API removes a tag only (ECR: ``BatchDeleteImage``): its profile does it
  (:meth:`mirror.registry.profiles.RegistryProfile.delete_tag`), whatever the host's name.
- Other registries: ``DELETE /v2/<name>/manifests/<tag>`` first (the OCI distribution spec lets a
  registry support deleting a tag). A registry that refuses it (distribution 2.8 answers 400
  ``DIGEST_INVALID``; others 404 or 405) deletes manifests by digest only, and a manifest
  deleted by digest takes every tag naming it along, and breaks any index listing it. So the
  digest is deleted only when no other tag of the repository names it or an index it names
  lists it; otherwise :class:`DeleteRefused` says which tags hold it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mirror.registry.base import Repository
from mirror.registry.distribution import RegistryRepository
from mirror.types import mediatypes as mt
from mirror.types.errors import MirrorError, RegistryError
from mirror.types.manifest import parse_manifest

LOOKUPS = 8
_REFUSALS = (400, 404, 405)  # a registry that does not delete by tag


class DeleteRefused(MirrorError):
    """The tag can only go with its manifest, and something else still uses that manifest."""

    kind = "delete_refused"


TAG, DIGEST, API, GONE = "tag", "digest", "api", "gone"


class Untagger:
    """Deletes tags; remembers what it learnt of each repository's other tags for one pass."""

    def __init__(self) -> None:
        self._uses: dict[str, dict[str, set[str]]] = {}  # repository -> digest -> tags using it

    async def delete(self, repo: Repository, tag: str, *, kept: Sequence[str]) -> str:
        """Delete ``tag`` from ``repo``; ``kept`` are its other tags, which must survive. Returns
        how: ``tag``, ``digest``, ``api`` (the registry's own API: ECR), or ``gone`` (already
        absent)."""
        if not isinstance(repo, RegistryRepository):
            await repo.delete_manifest(tag)
            return TAG
        if await repo.profile.delete_tag(repo.transport, repo.repository, tag):
            return API
        try:
            await repo.delete_manifest(tag)
            return TAG
        except RegistryError as exc:
            if exc.status not in _REFUSALS:
                raise
        info = await repo.head_manifest(tag)
        if info is None:
            return GONE
        users = (await self._users(repo, kept)).get(str(info.digest), set())
        if users:
            raise DeleteRefused(
                f"{repo.name}:{tag}: the registry deletes manifests, not tags, and {info.digest} is also "
                f"used by {', '.join(sorted(users))}; left in place"
            )
        await repo.delete_manifest(str(info.digest))
        return DIGEST

    async def _users(self, repo: RegistryRepository, kept: Sequence[str]) -> dict[str, set[str]]:
        """For each digest, the kept tags naming it or naming an index that lists it."""
        found = self._uses.get(repo.name)
        if found is not None:
            return found
        limit = asyncio.Semaphore(LOOKUPS)
        uses: dict[str, set[str]] = {}

        async def look(tag: str) -> None:
            async with limit:
                info = await repo.head_manifest(tag)
                if info is None:
                    return
                uses.setdefault(str(info.digest), set()).add(tag)
                if mt.is_index(info.media_type):
                    fetched = await repo.get_manifest(str(info.digest))
                    index = parse_manifest(fetched.raw, fetched.media_type, digest=info.digest)
                    for child in index.manifests:
                        uses.setdefault(str(child.digest), set()).add(f"{tag} (an index listing it)")

        await asyncio.gather(*(look(tag) for tag in kept))
        self._uses[repo.name] = uses
        return uses
