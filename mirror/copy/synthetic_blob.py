"""A large synthetic layer, generated on the fly: the bench's and the benchmarks' content.

The layer bytes are never held whole in memory: a gzip member header, then 1 MiB blocks drawn
from a seeded PRNG, varied per block by an 8-byte big-endian block counter in their first bytes.
The same (seed, size) always gives the same bytes and digest. The digest needs one hashing pass.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mirror.copy.synthetic import CONFIG_TYPE, LAYER_TYPE
from mirror.registry.base import ChunkSource
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.manifest import Descriptor

BLOCK = 1024 * 1024
CHUNK = 4 * BLOCK
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # magic, deflate, no flags, mtime 0, OS unknown


@lru_cache(maxsize=8)
def _tail(seed: str) -> bytes:
    return random.Random(seed).randbytes(BLOCK)[8:]


def synthetic_chunks(seed: str, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The synthetic blob of ``size`` bytes for ``seed``, in pieces of about ``chunk`` bytes.

    It starts with a gzip member header, like every real (gzip-compressed) layer, so tools that
    sniff a layer's compression pass it through as compressed instead of compressing it.
    """
    if chunk % BLOCK:
        raise ValueError("chunk must be a multiple of 1 MiB")
    header = GZIP_HEADER[:size]
    rest = _stream(seed, size - len(header), chunk)
    first = next(rest, b"")
    yield header + first
    yield from rest


def _stream(seed: str, size: int, chunk: int) -> Iterator[bytes]:
    tail = _tail(seed)
    per = chunk // BLOCK
    block = 0
    remaining = size
    while remaining > 0:
        blocks = min(per, -(-remaining // BLOCK))
        parts: list[bytes] = []
        for i in range(block, block + blocks):
            parts.append(i.to_bytes(8, "big"))
            parts.append(tail)
        block += blocks
        data = b"".join(parts)
        if len(data) > remaining:
            data = data[:remaining]
        remaining -= len(data)
        yield data


def synthetic_digest(seed: str, size: int) -> Digest:
    """The sha256 of the synthetic blob (one full pass over it)."""
    hasher = hashlib.sha256()
    for data in synthetic_chunks(seed, size):
        hasher.update(data)
    return Digest("sha256", hasher.hexdigest())


def synthetic_source(seed: str, size: int, chunk: int = CHUNK) -> ChunkSource:
    """A replayable upload body for the synthetic blob."""

    async def chunks() -> AsyncIterator[bytes]:
        for data in synthetic_chunks(seed, size, chunk):
            yield data

    return chunks


@dataclass(frozen=True)
class SyntheticImage:
    layer: Descriptor
    config: bytes
    config_desc: Descriptor
    manifest: bytes
    manifest_digest: Digest


def synthetic_image(layer_digest: Digest, size: int, note: str = "mirror bench") -> SyntheticImage:
    """A single-layer OCI image whose layer is the synthetic blob of ``size`` bytes."""
    layer = Descriptor(LAYER_TYPE, layer_digest, size)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.title": note}},
            "rootfs": {"type": "layers", "diff_ids": [str(layer_digest)]},
        },
        sort_keys=True,
    ).encode()
    config_desc = Descriptor(CONFIG_TYPE, Digest.of(config), len(config))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": _desc(config_desc),
            "layers": [_desc(layer)],
        },
        indent=2,
    ).encode()
    return SyntheticImage(layer, config, config_desc, manifest, Digest.of(manifest))


def _desc(d: Descriptor) -> dict[str, Any]:
    return {"mediaType": d.media_type, "digest": str(d.digest), "size": d.size}
