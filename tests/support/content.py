"""Deterministic synthetic blob content, generated in chunks so large blobs never sit in memory.

A `BlobSpec(seed, size)` always yields the same bytes: chunk i is `Random(f"{seed}:{i}").randbytes`.
Its digest is computed by one streaming pass and cached.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BlobSpec:
    seed: str
    size: int

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        remaining, index = self.size, 0
        while remaining > 0:
            n = min(chunk_size, remaining)
            yield random.Random(f"{self.seed}:{chunk_size}:{index}").randbytes(n)
            remaining -= n
            index += 1

    @cached_property
    def digest(self) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks():
            h.update(chunk)
        return "sha256:" + h.hexdigest()

    def read(self) -> bytes:
        """The whole content; meant for small blobs only."""
        return b"".join(self.chunks())

    def stream(self) -> SizedStream:
        return SizedStream(self.chunks, self.size)


class SizedStream:
    """An iterable request body that also reports its length, so `requests` sends a
    `Content-Length` header instead of `Transfer-Encoding: chunked`. Each iteration restarts."""

    def __init__(self, factory: Callable[[], Iterable[bytes]], length: int) -> None:
        self._factory = factory
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._factory())
