"""The store protocol the copy engine speaks.

A *repository* is where manifests and blobs live: a repository of a registry, an OCI layout
directory, or an OCI layout under an S3 prefix. The engine sees only this protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from mirror.types.digest import Digest
from mirror.types.manifest import Descriptor

ChunkSource = Callable[[], AsyncIterator[bytes]]
"""Opens the bytes of a blob from the start; may be called again to re-read them."""


@dataclass(frozen=True)
class ManifestInfo:
    """What a manifest HEAD tells: digest, media type and size."""

    digest: Digest
    media_type: str
    size: int


@dataclass(frozen=True)
class FetchedManifest:
    raw: bytes
    media_type: str
    digest: Digest  # verified against the bytes when fetched by digest


class BlobReader(Protocol):
    """An open blob: its size (when known) and its chunks, read once."""

    size: int | None

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Repository(Protocol):
    """One repository of a store."""

    @property
    def name(self) -> str:
        """A display name: ``host/path``, ``oci:DIR`` or ``s3://bucket/prefix``."""
        ...

    @property
    def registry(self) -> str:
        """Repositories with the same ``registry`` can mount blobs from each other."""
        ...

    @property
    def max_blob_size(self) -> int | None:
        """The largest blob this store accepts, when known."""
        ...

    async def head_manifest(self, reference: str) -> ManifestInfo | None:
        """The manifest a tag or digest names, or None when there is none."""
        ...

    async def get_manifest(self, reference: str) -> FetchedManifest:
        """Manifest bytes; verified when ``reference`` is a digest. Raises NotFound."""
        ...

    async def put_manifest(self, reference: str, raw: bytes, media_type: str) -> None:
        """Store a manifest under a tag or its digest."""
        ...

    async def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        """Whether the blob is there (with ``size`` bytes, when given: a store that holds a
        truncated copy answers False, so it is written again)."""
        ...

    async def open_blob(self, desc: Descriptor) -> BlobReader:
        """Start reading a blob. Raises NotFound."""
        ...

    async def put_blob(self, desc: Descriptor, source: ChunkSource, *, replayable: bool) -> None:
        """Store a blob of ``desc.size`` bytes whose digest must be ``desc.digest``.

        ``source`` yields the bytes; when ``replayable`` it may be called again to retry.
        Nothing is kept unless the bytes match the digest and size.
        """
        ...

    async def mount_blob(self, digest: Digest, from_repository: str) -> bool:
        """Link a blob from another repository of the same registry; False when not mounted."""
        ...

    async def list_tags(self, limit: int | None = None) -> list[str]:
        """The repository's tags (NotFound when it does not exist); with ``limit``, at most that
        many, from as few requests as the store allows (``limit=1``: is there any tag?)."""
        ...

    async def delete_manifest(self, reference: str) -> None: ...
