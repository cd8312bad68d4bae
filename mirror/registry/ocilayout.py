"""An OCI image layout directory as a repository (``oci:DIR[:REF]``).

Layout: ``oci-layout``, ``index.json`` (tagged manifests carry the
``org.opencontainers.image.ref.name`` annotation), ``blobs/<alg>/<hex>``. Blobs are written to a
temporary file while hashed, and renamed into place only when size and digest match, so a
reader never sees a partial or unverified blob. ``index.json`` is replaced atomically, each
read-modify-write under an exclusive lock on ``index.json.lock`` shared with every other
process (:mod:`mirror.registry.filelock`), so parallel writers keep each other's tags. Paths are
built from parsed digests only, so a hostile ``index.json`` cannot point outside the layout.

Reference names are opaque strings (a tag, ``127.0.0.1:5000/app:v1``, ``1.0+build.5``): any
name an ``index.json`` holds can be read; a name written must follow the image-layout grammar.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from mirror.registry.base import BlobReader, ChunkSource, FetchedManifest, ManifestInfo
from mirror.registry.completeness import require_content
from mirror.registry.filelock import run_locked
from mirror.registry.layoutindex import MAX_INDEX_BYTES, REF_NAME, index_bytes, parse_index, tag_of
from mirror.registry.layoutreferrers import SubjectScan, add_referrer, tagged_digest
from mirror.registry.resume import Reopened, ResumingReader
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest, is_digest
from mirror.types.errors import (
    DigestMismatch,
    ManifestError,
    MirrorError,
    NotFound,
    SizeMismatch,
    TransportError,
)
from mirror.types.manifest import Descriptor, parse_manifest
from mirror.types.reference import validate_ref_name
from mirror.types.referrers import referrer_entry, referrers_tag, subject_of

READ_CHUNK = 1024 * 1024
LOCK_FILE = "index.json.lock"
LOCK_TIMEOUT = 60.0  # seconds another process may hold the index lock before a write gives up


class FileBlobReader:
    """A blob file read from ``offset``; a read that fails part-way (an I/O error on a network
    or removable disk) is a temporary error, so the read can be resumed from where it stopped."""

    def __init__(self, path: Path, size: int, offset: int = 0) -> None:
        self._path = path
        self.size: int | None = size
        self._offset = offset
        self._file: Any = None

    async def chunks(self) -> AsyncIterator[bytes]:
        self._file = await asyncio.to_thread(open, self._path, "rb")
        if self._offset:
            await asyncio.to_thread(self._file.seek, self._offset)
        read = 0
        while True:
            try:
                chunk = await asyncio.to_thread(self._file.read, READ_CHUNK)
            except OSError as exc:
                raise TransportError(
                    f"reading {self._path} broke after {self._offset + read} bytes: {exc.strerror or exc}"
                ) from None
            if not chunk:
                return
            read += len(chunk)
            yield chunk

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class OciLayout:
    """One OCI image layout directory; every tag in it is a tag of this repository."""

    def __init__(self, path: str | Path, *, create: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.path = Path(path)
        self._create = create
        self._index_lock = asyncio.Lock()  # this object's writers; the lock file, every process's
        self.lock_timeout = lock_timeout
        self._scan = SubjectScan(self._manifest_bytes)

    @property
    def name(self) -> str:
        return f"oci:{self.path}"

    @property
    def registry(self) -> str:
        return self.name

    @property
    def max_blob_size(self) -> int | None:
        return None

    # -- layout files ------------------------------------------------------------------------

    def _blob_path(self, digest: Digest) -> Path:
        return self.path / "blobs" / digest.algorithm / digest.hex

    def _ensure_layout(self) -> None:
        if (self.path / "oci-layout").exists():
            return
        if not self._create:
            raise NotFound(f"{self.name} is not an OCI image layout (no oci-layout file)", status=404)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode()
        _atomic_write(self.path / "oci-layout", layout)
        if not (self.path / "index.json").exists():
            _atomic_write(self.path / "index.json", index_bytes([]))

    def _read_index(self) -> list[dict[str, Any]]:
        path = self.path / "index.json"
        if not path.exists():
            if self._create:
                return []
            raise NotFound(f"{self.name} has no index.json", status=404)
        with path.open("rb") as f:
            raw = f.read(MAX_INDEX_BYTES + 1)
        return parse_index(raw, f"{self.name}/index.json")

    def _lookup(self, reference: str) -> Descriptor | None:
        if is_digest(reference):
            digest = Digest.parse(reference)
            path = self._blob_path(digest)
            if not path.exists():
                return None
            media_type = ""
            for entry in self._read_index():
                if entry.get("digest") == reference:
                    media_type = str(entry.get("mediaType", ""))
            if not media_type:
                media_type = _sniff_media_type(path)
            return Descriptor(media_type, digest, path.stat().st_size)
        for entry in reversed(self._read_index()):
            if tag_of(entry) == reference:
                digest = Digest.parse(str(entry["digest"]))
                return Descriptor(str(entry.get("mediaType", "")), digest, int(entry.get("size", 0)))
        return None

    # -- manifests ---------------------------------------------------------------------------

    async def head_manifest(self, reference: str) -> ManifestInfo | None:
        desc = await asyncio.to_thread(self._lookup, reference)
        if desc is None:
            return None
        return ManifestInfo(desc.digest, desc.media_type, desc.size)

    async def get_manifest(self, reference: str) -> FetchedManifest:
        desc = await asyncio.to_thread(self._lookup, reference)
        if desc is None:
            raise NotFound(f"{self.name}: no manifest {reference}", status=404)
        path = self._blob_path(desc.digest)
        raw = await asyncio.to_thread(_read_bounded, path, mt.MAX_MANIFEST_BYTES)
        actual = Digest.of(raw, desc.digest.algorithm)
        if actual != desc.digest:
            raise DigestMismatch(str(desc.digest), str(actual), what=f"{self.name} manifest")
        media_type = desc.media_type or parse_manifest(raw).media_type
        return FetchedManifest(raw, media_type, actual)

    async def put_manifest(self, reference: str, raw: bytes, media_type: str) -> None:
        """Store a manifest (by digest: its blob only); one with a ``subject`` is listed in
        ``index.json`` so it can be found (:mod:`mirror.registry.layoutreferrers`)."""
        await require_content(self.name, reference, raw, media_type, self._holds)
        digest = Digest.of(raw)
        if is_digest(reference) and Digest.parse(reference) != digest:
            raise DigestMismatch(reference, str(digest), what="manifest")
        await asyncio.to_thread(self._ensure_layout)
        path = self._blob_path(digest)
        if not path.exists():
            await asyncio.to_thread(_atomic_write, path, raw)
        tag = None if is_digest(reference) else validate_ref_name(reference)
        subject = subject_of(raw)
        if tag is None and subject is None:
            return
        entry = {"mediaType": media_type, "digest": str(digest), "size": len(raw)}

        def change() -> None:
            entries = self._read_index()
            if tag is not None:
                entries = [e for e in entries if tag_of(e) != tag]
                entries.append({**entry, "annotations": {REF_NAME: tag}})
            if subject is not None:
                entries = self._with_referrer(entries, subject, referrer_entry(raw, media_type, digest))
            _atomic_write(self.path / "index.json", index_bytes(entries))

        await self._update(change)

    def _with_referrer(
        self, entries: list[dict[str, Any]], subject: Digest, entry: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``entries`` listing the referrer ``entry``; the new referrers index is stored first."""
        current = tagged_digest(entries, referrers_tag(subject))
        index = None if current is None else self._verified(current)
        updated, new_index = add_referrer(entries, subject, entry, index, self.name)
        if new_index is not None:
            index_path = self._blob_path(Digest.of(new_index))
            if not index_path.exists():
                _atomic_write(index_path, new_index)
        return updated

    async def referrers(self, digest: Digest) -> list[Descriptor]:
        """Manifests ``index.json`` names (tagged or not) whose ``subject`` is ``digest``."""
        entries = await asyncio.to_thread(self._read_index)
        return await self._scan.referrers(entries, digest)

    async def list_referrers(self, subject: Digest, digests: list[Digest]) -> None:
        """Make sure the referrers ``digests`` of ``subject``, stored here already (by an earlier
        run whose listing failed, or one that did not list them), are listed in ``index.json``;
        nothing is written when they are."""

        def change() -> None:
            entries = self._read_index()
            updated = entries
            for digest in digests:
                raw = self._verified(digest)
                if subject_of(raw) == subject:
                    updated = self._with_referrer(updated, subject, referrer_entry(raw, "", digest))
            if updated != entries:
                _atomic_write(self.path / "index.json", index_bytes(updated))

        await self._update(change)

    async def _manifest_bytes(self, digest: Digest) -> bytes:
        return await asyncio.to_thread(self._verified, digest)

    def _verified(self, digest: Digest) -> bytes:
        """The bytes of the manifest ``digest`` (NotFound, DigestMismatch)."""
        try:
            raw = _read_bounded(self._blob_path(digest), mt.MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise NotFound(
                f"{self.name}: index.json names {digest}, which is not in blobs/", status=404
            ) from None
        if Digest.of(raw, digest.algorithm) != digest:
            raise DigestMismatch(
                str(digest), str(Digest.of(raw, digest.algorithm)), what=f"{self.name} manifest"
            )
        return raw

    async def _update(self, change: Callable[[], None]) -> None:
        """One read-modify-write of index.json, under this object's and every process's lock."""
        if not await asyncio.to_thread(self.path.is_dir):
            raise NotFound(f"{self.name} is not an OCI image layout (no such directory)", status=404)
        async with self._index_lock:
            await run_locked(
                self.path / LOCK_FILE, change, max_wait=self.lock_timeout, what=f"{self.name}/index.json"
            )

    async def delete_manifest(self, reference: str) -> None:
        await self._update(lambda: self._untag(reference))

    def _untag(self, reference: str) -> None:
        entries = self._read_index()
        if is_digest(reference):
            kept = [e for e in entries if e.get("digest") != reference]
        else:
            kept = [e for e in entries if tag_of(e) != reference]
        _atomic_write(self.path / "index.json", index_bytes(kept))

    # -- blobs -------------------------------------------------------------------------------

    async def _holds(self, desc: Descriptor) -> bool:
        return await self.has_blob(desc.digest, desc.size)

    async def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        try:
            found = (await asyncio.to_thread(self._blob_path(digest).stat)).st_size
        except FileNotFoundError:
            return False
        return size is None or found == size

    async def open_blob(self, desc: Descriptor) -> BlobReader:
        path = self._blob_path(desc.digest)
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            raise NotFound(f"{self.name}: blob {desc.digest} not found", status=404) from None

        async def rest(offset: int) -> Reopened:
            now = await asyncio.to_thread(path.stat)
            if (now.st_size, now.st_mtime_ns, now.st_ino) != (stat.st_size, stat.st_mtime_ns, stat.st_ino):
                return Reopened(FileBlobReader(path, now.st_size), offset, "the file changed")
            return Reopened(FileBlobReader(path, stat.st_size, offset))

        return ResumingReader(FileBlobReader(path, stat.st_size), desc.size, rest)

    async def put_blob(self, desc: Descriptor, source: ChunkSource, *, replayable: bool) -> None:
        await asyncio.to_thread(self._ensure_layout)
        final = self._blob_path(desc.digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{desc.digest.hex[:16]}-{secrets.token_hex(6)}"
        hasher = desc.digest.hasher()
        written = 0
        f = await asyncio.to_thread(open, tmp, "wb")
        try:
            async for chunk in source():
                written += len(chunk)
                if written > desc.size:
                    raise SizeMismatch(desc.size, written, what=f"blob {desc.digest.short}")
                hasher.update(chunk)
                await asyncio.to_thread(f.write, chunk)
            if written != desc.size:
                raise SizeMismatch(desc.size, written, what=f"blob {desc.digest.short}")
            actual = hasher.hexdigest()
            if actual != desc.digest.hex:
                raise DigestMismatch(str(desc.digest), f"{desc.digest.algorithm}:{actual}")
            await asyncio.to_thread(_flush_and_sync, f)
            f.close()
            await asyncio.to_thread(os.replace, tmp, final)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise

    async def mount_blob(self, digest: Digest, from_repository: str) -> bool:
        return False

    async def list_tags(self, limit: int | None = None) -> list[str]:
        entries = await asyncio.to_thread(self._read_index)
        return sorted({t for t in map(tag_of, entries) if t})[:limit]


def _flush_and_sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def _read_bounded(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ManifestError(f"{path.name}: manifest larger than {limit} bytes")
    return raw


def _sniff_media_type(path: Path) -> str:
    try:
        return parse_manifest(_read_bounded(path, mt.MAX_MANIFEST_BYTES)).media_type
    except MirrorError:
        return ""


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
