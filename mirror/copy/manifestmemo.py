"""Verified manifests kept across passes, by (source repository, digest).

A manifest named by its digest cannot change, and every manifest mirror reads is verified
against its digest. A resident daemon therefore keeps one memo for its lifetime and hands it to
each pass: a manifest it already read by digest is answered from here, without a request (an
Artifact Registry job filtered to platforms reads each listed index by digest, to filter it, on
every pass). A one-shot run gets a fresh memo. Only verified manifests go in; a failure never
does. The memo only spares a repeated read of identical bytes: which tag names which digest is
still asked of the source (or its listing) on every pass.

Bounded by count and by total raw bytes, so memory stays flat; the least recently used go first.
"""

from __future__ import annotations

from collections import OrderedDict

from mirror.types.digest import Digest
from mirror.types.manifest import Manifest

MEMO_MANIFESTS = 4096
MEMO_BYTES = 16 * 1024 * 1024


class ManifestMemo:
    def __init__(self, *, keep: int = MEMO_MANIFESTS, max_bytes: int = MEMO_BYTES) -> None:
        self._keep = keep
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], Manifest] = OrderedDict()  # oldest first
        self.bytes = 0  # total raw bytes held

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, repo: str, digest: Digest) -> Manifest | None:
        """The manifest ``digest`` names in ``repo``, when it was read and verified before."""
        key = (repo, str(digest))
        manifest = self._entries.get(key)
        if manifest is not None:
            self._entries.move_to_end(key)
        return manifest

    def put(self, repo: str, manifest: Manifest) -> None:
        """Remember ``manifest`` (verified against its digest) as read from ``repo``."""
        if manifest.size > self._max_bytes or self._keep <= 0:
            return
        key = (repo, str(manifest.digest))
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = manifest
        self.bytes += manifest.size
        while len(self._entries) > self._keep or self.bytes > self._max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size
