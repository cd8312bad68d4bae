"""Referrers in an OCI image layout (a directory or an S3 prefix): listed, so they can be found.

A layout has no referrers API. Tools find a referrer in one in two ways, and a manifest with a
``subject`` written to a layout is made findable by both:

- *By scanning* ``index.json``: ORAS (oras-go's OCI store) keeps every manifest pushed to a
  layout as an entry of ``index.json``, an untagged one (no ``org.opencontainers.image.ref.name``)
  when it has no tag, and finds referrers by reading the manifests those entries name and
  matching their ``subject``; regclient's ``ocidir`` does the same on request. The image-layout
  spec allows entries without a reference name. So a referrer gets an entry of its own (with its
  ``artifactType`` and annotations) unless one names its digest already.
- *By the referrers tag schema*: regclient's ``ocidir`` keeps, and by default reads, the OCI
  image index under the subject's referrers tag (``sha256-<hex>``), as a client of a registry
  without the referrers API does (:mod:`mirror.types.referrers`). That index is updated too.

:func:`add_referrer` is the change to ``index.json`` (pure; the stores read and write the
index blob and hold their lock or condition around it). :class:`SubjectScan` is the reading
side: the referrers of a digest among the entries of ``index.json``, each manifest read once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mirror.registry.layoutindex import REF_NAME, tag_of
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.manifest import Descriptor
from mirror.types.referrers import referrers_tag, subject_of, with_referrer

Entries = list[dict[str, Any]]
SCAN_READS = 8  # manifests read at once while scanning


def tagged_digest(entries: Entries, tag: str) -> Digest | None:
    """The digest the last entry carrying reference name ``tag`` names, if any."""
    for entry in reversed(entries):
        if tag_of(entry) == tag:
            return Digest.parse(str(entry["digest"]))
    return None


def add_referrer(
    entries: Entries, subject: Digest, entry: dict[str, Any], index: bytes | None, where: str
) -> tuple[Entries, bytes | None]:
    """``entries`` with the referrer ``entry`` listed, and the new referrers index to store first
    (None when the one under the subject's referrers tag, ``index``, lists it already).

    The referrer gets an untagged entry unless an entry names its digest; the referrers tag then
    names the new index. ManifestError when the tag names something other than an OCI index."""
    updated = list(entries)
    if not any(e.get("digest") == entry["digest"] for e in updated):
        own = dict(entry)
        annotations = {k: v for k, v in (entry.get("annotations") or {}).items() if k != REF_NAME}
        if annotations:
            own["annotations"] = annotations
        else:
            own.pop("annotations", None)
        updated.append(own)
    tag = referrers_tag(subject)
    new_index = with_referrer(index, entry, f"{where}:{tag}")
    if new_index is not None:
        updated = [e for e in updated if tag_of(e) != tag]
        updated.append(
            {
                "mediaType": mt.OCI_INDEX,
                "digest": str(Digest.of(new_index)),
                "size": len(new_index),
                "annotations": {REF_NAME: tag},
            }
        )
    return updated, new_index


class SubjectScan:
    """Finds referrers among a layout's ``index.json`` entries by reading the manifests they name.

    ``read(digest)`` returns a manifest's verified bytes. What each manifest's subject is, is
    kept for the life of this object (content does not change under its digest).
    """

    def __init__(self, read: Callable[[Digest], Awaitable[bytes]]) -> None:
        self._read = read
        self._subjects: dict[Digest, Digest | None] = {}

    async def _subject(self, digest: Digest, limit: asyncio.Semaphore) -> None:
        if digest in self._subjects:
            return
        async with limit:
            raw = await self._read(digest)
        self._subjects[digest] = subject_of(raw)

    async def referrers(self, entries: Entries, subject: Digest) -> list[Descriptor]:
        """The manifests the entries name whose ``subject`` is ``subject``, each once, in order."""
        named: dict[Digest, dict[str, Any]] = {}
        for entry in entries:
            media_type = str(entry.get("mediaType", ""))
            if media_type and not mt.is_manifest(media_type):
                continue
            named.setdefault(Digest.parse(str(entry["digest"])), entry)
        limit = asyncio.Semaphore(SCAN_READS)
        await asyncio.gather(*(self._subject(d, limit) for d in named if d != subject))
        return [
            Descriptor(str(e.get("mediaType", "")), d, int(e.get("size", 0)))
            for d, e in named.items()
            if d != subject and self._subjects.get(d) == subject
        ]
