"""Adding a referrer to its subject's referrers tag on a registry without the referrers API.

:class:`ReferrersTag` does it for one repository of a registry: whether the registry has the API
is learnt from ``OCI-Subject`` answers (or asked), and one writer per tag at a time in this
process. :func:`add_referrer` is one read-modify-write of the index the tag names
(:mod:`mirror.types.referrers`): read it (none yet: start empty), add the referrer's descriptor
unless it is listed, write it back, and read it again. The write is conditional (``If-Match`` on
the ETag read, ``If-None-Match: *`` when there was no index) so a registry that honours
conditions refuses it (412) when another writer got there first; the read after the write
notices an update lost to a writer on a registry that ignores conditions (distribution 2.8
does). Either way the update is redone on what is there now, up to :data:`ATTEMPTS` times, then
it fails saying so. The spec leaves that race to clients ("Referrers Tag Schema", note): a
writer that overwrites *another's* entry after that one read its own back cannot be caught by
anyone; a lost entry of this referrer is never reported done.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError, NotFound, RegistryError
from mirror.types.referrers import (
    is_referrers_tag,
    listed,
    referrer_entry,
    referrers_tag,
    subject_of,
    with_referrer,
)

if TYPE_CHECKING:
    from mirror.registry.distribution import RegistryRepository

ATTEMPTS = 5

Read = Callable[[], Awaitable[tuple[bytes | None, str | None]]]
"""The index the tag names now and its ETag (None, None when the tag does not exist)."""

Write = Callable[[bytes, "str | None"], Awaitable[None]]
"""Put the new index under the tag, conditional on the ETag read (None: on there being none);
raises :class:`Stale` when the registry refused it because the tag changed."""


class Stale(MirrorError):
    """The tag changed since it was read (a conditional write answered 412)."""


async def add_referrer(
    read: Read,
    write: Write,
    entry: dict[str, Any],
    where: str,
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """List ``entry`` in the referrers index at ``where`` (nothing is written when it is listed
    already). MirrorError when another writer kept replacing the index."""
    digest = entry["digest"]
    for attempt in range(attempts):
        if attempt:
            await sleep(random.uniform(0, 0.05 * 2**attempt))
        raw, etag = await read()
        updated = with_referrer(raw, entry, where)
        if updated is None:
            return  # listed already
        try:
            await write(updated, etag)
        except Stale:
            continue
        again, _ = await read()
        if listed(again, digest):
            return
    raise MirrorError(
        f"{where}: another writer replaced the referrers index {attempts} times while {digest} was "
        "being added to it; the referrer is stored but not listed there (run the copy again)"
    )


class ReferrersTag:
    """The referrers tags of one registry repository."""

    def __init__(self, repo: RegistryRepository) -> None:
        self._repo = repo
        self._locks: dict[str, asyncio.Lock] = {}
        # Whether the registry has the referrers API: from the last manifest PUT with a subject
        # (answered ``OCI-Subject`` or not), else asked when needed; None until known.
        self.api: bool | None = None

    def lock(self, tag: str) -> AbstractAsyncContextManager[Any]:
        """Writers of one referrers tag in this process take turns (other processes are met by
        the conditional write and the read-back); other tags need no turn."""
        if not is_referrers_tag(tag):
            return contextlib.nullcontext()
        return self._locks.setdefault(tag, asyncio.Lock())

    async def _read(self, tag: str) -> tuple[bytes | None, str | None]:
        repo = self._repo
        try:
            if repo.pulls is not None:  # a registry counting pulls counts this GET too
                reply = await repo._pull_manifest(tag, repo.pulls)
            else:
                reply = await repo._get_manifest(tag)
        except NotFound:
            return None, None
        return reply.body, reply.headers.get("ETag")

    async def _write(self, tag: str, body: bytes, etag: str | None) -> None:
        repo = self._repo
        condition = {"If-Match": etag} if etag else {"If-None-Match": "*"}
        try:
            await repo.transport.request(
                "PUT",
                repo.host,
                repo._path("manifests", tag),
                scopes=(f"repository:{repo.repository}:pull,push",),
                headers={"Content-Type": mt.OCI_INDEX, **condition},
                body=body,
                content_length=len(body),
                ok=(200, 201, 202, 204),
            )
        except RegistryError as exc:
            if exc.status == 412:
                raise Stale(f"{repo.name}:{tag} changed since it was read") from None
            raise

    async def add(self, subject: Digest, entry: dict[str, Any]) -> None:
        """List ``entry`` in the index under ``subject``'s referrers tag."""
        tag = referrers_tag(subject)
        async with self.lock(tag):
            await add_referrer(
                lambda: self._read(tag),
                lambda body, etag: self._write(tag, body, etag),
                entry,
                f"{self._repo.name}:{tag}",
            )

    async def ensure(self, subject: Digest, digests: list[Digest]) -> None:
        """Referrers of ``subject`` found here already (an earlier run stored them, and perhaps
        failed to list them, or did not list them at all) are listed: nothing to do with the
        referrers API; otherwise one GET of the tag, and an update for each one it lacks."""
        if self.api is None:
            self.api = await self._repo.referrers(subject) is not None
        if self.api:
            return
        current, _ = await self._read(referrers_tag(subject))
        for digest in digests:
            if listed(current, str(digest)):
                continue
            fetched = await self._repo.get_manifest(str(digest))
            if subject_of(fetched.raw) == subject:
                await self.add(subject, referrer_entry(fetched.raw, fetched.media_type, digest))
