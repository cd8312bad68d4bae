"""``index.json`` of an OCI image layout in S3, read-modify-written with conditional writes.

One writer per layout is the supported setup. Writes are conditional (``If-Match`` on the ETag
read, ``If-None-Match: *`` when creating), so a concurrent writer's change is detected and the
update is redone on the new document instead of being lost; without conditional writes the last
writer wins. Parsing and validation are :mod:`mirror.registry.layoutindex`'s.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any

from mirror.registry.aws import PreconditionFailed
from mirror.registry.layoutindex import MAX_INDEX_BYTES, index_bytes, parse_index
from mirror.registry.s3bucket import S3Bucket
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError, NotFound
from mirror.types.manifest import parse_manifest

INDEX_ATTEMPTS = 5

Entries = list[dict[str, Any]]


class S3Index:
    """The ``index.json`` at ``key``; ``create``: a missing one reads as empty (not NotFound)."""

    def __init__(self, bucket: S3Bucket, key: str, *, create: bool) -> None:
        self._bucket = bucket
        self._key = key
        self._create = create
        self._lock = asyncio.Lock()
        self.entries: Entries | None = None  # the index.json read (or written) last

    @property
    def _name(self) -> str:
        return self._bucket.name

    async def read(self) -> tuple[Entries, str | None]:
        """The entries of ``index.json`` and its ETag (None when it does not exist yet)."""
        where = f"{self._name}/index.json"
        try:
            raw, etag = await self._bucket.get_small(self._key, MAX_INDEX_BYTES, where)
        except NotFound as exc:
            if self._create and exc.code != "NoSuchBucket":
                return [], None
            raise NotFound(
                f"{self._name} is not an OCI image layout: {exc.message}", status=404, code=exc.code
            ) from None
        entries = parse_index(raw, where)
        self.entries = entries
        return entries, etag

    async def update(self, change: Callable[[Entries], Entries | Awaitable[Entries]]) -> None:
        """Read-modify-write of ``index.json``, redone when another writer changed it meanwhile
        (``change`` may be a coroutine function: it runs again on each new reading)."""
        async with self._lock:
            for attempt in range(INDEX_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
                entries, etag = await self.read()
                changed = change(list(entries))
                updated = await changed if inspect.isawaitable(changed) else changed
                try:
                    await self._bucket.put(
                        self._key,
                        index_bytes(updated),
                        mt.OCI_INDEX,
                        if_match=etag,
                        if_absent=etag is None,
                    )
                except PreconditionFailed:
                    continue
                self.entries = updated
                return
        raise MirrorError(
            f"{self._name}/index.json changed under us {INDEX_ATTEMPTS} times in a row: another "
            "writer is updating this layout; one writer per layout is supported"
        )

    async def media_type(self, digest: Digest, raw: bytes | None = None) -> str:
        """The media type ``index.json`` gives ``digest``, else what the manifest says it is."""
        for entry in reversed(self.entries or []):
            if entry.get("digest") == str(digest) and entry.get("mediaType"):
                return str(entry["mediaType"])
        if raw is None:
            return ""
        try:
            return parse_manifest(raw).media_type
        except MirrorError:
            return ""
