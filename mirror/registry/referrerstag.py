"""Adding a referrer to its subject's referrers tag on a registry without the referrers API.

One read-modify-write of the index the tag names (:mod:`mirror.types.referrers`): read it (none
yet: start empty), add the referrer's descriptor unless it is listed, write it back, and read it
again. The write is conditional (``If-Match`` on the ETag read, ``If-None-Match: *`` when there
was no index) so a registry that honours conditions refuses it (412) when another writer got
there first; the read after the write notices an update lost to a writer on a registry that
ignores conditions (distribution 2.8 does). Either way the update is redone on what is there
now, up to :data:`ATTEMPTS` times, then it fails saying so. The spec leaves that race to clients
("Referrers Tag Schema", note): a writer that overwrites *another's* entry after that one read
its own back cannot be caught by anyone; a lost entry of this referrer is never reported done.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from mirror.types.errors import MirrorError
from mirror.types.referrers import listed, with_referrer

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
