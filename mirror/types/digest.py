"""Content digests (``algorithm:hex``) and streaming hashers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mirror.types.errors import InvalidReference

# Algorithms mirror can verify, with the exact hex length each one produces.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
# One string per algorithm name, shared by every digest parsed (a pass holds a digest per blob).
_NAMES: dict[str, str] = {name: name for name in ALGORITHMS}
_HEX = re.compile(r"^[a-f0-9]+$")


def is_digest(reference: str) -> bool:
    """Whether a manifest reference names a digest (``sha256:...``) rather than a tag or an OCI
    layout's reference name, which may hold ':' too (``127.0.0.1:5000/app:v1``, ``app:v1``).
    A reference starting with a known algorithm is a digest, to be parsed (and refused when
    malformed) by :meth:`Digest.parse`."""
    algorithm, sep, _ = reference.partition(":")
    return bool(sep) and algorithm in ALGORITHMS


@dataclass(frozen=True, order=True, slots=True)  # a pass over 100,000 images holds many
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hexpart = text.partition(":")
        if not sep:
            raise InvalidReference(f"digest {text!r} has no algorithm: expected sha256:<64 hex>")
        if algorithm not in ALGORITHMS:
            raise InvalidReference(
                f"digest {text!r} uses unsupported algorithm {algorithm!r}: "
                f"use one of {', '.join(sorted(ALGORITHMS))}"
            )
        want = ALGORITHMS[algorithm]
        if len(hexpart) != want or not _HEX.match(hexpart):
            raise InvalidReference(
                f"digest {text!r} is not valid: {algorithm} needs exactly {want} lowercase hex digits"
            )
        return cls(_NAMES[algorithm], hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"
