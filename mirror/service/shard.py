"""Sharding source repositories across replicas with rendezvous (highest random weight) hashing.

``--shard INDEX/COUNT`` makes a replica handle only the repositories it owns; ``--shard auto/COUNT``
takes INDEX from the StatefulSet ordinal at the end of the host name (``mirror-3`` -> 3). Every key
(a source repository, ``host/path``) is owned by exactly one of ``COUNT`` shards: the shard whose
weight ``H(index, key)`` is highest. Growing from N to N+1 shards moves a key only when the new
shard's weight beats all others, which happens for about 1/(N+1) of the keys, and only onto the
new shard. No replica needs to know about any other: no leader, no shared state.

The weight is a 64-bit BLAKE2b of the shard index (4 bytes, big-endian) followed by the UTF-8 key,
personalised with ``mirror-shard-v1``. It is part of the on-the-wire contract between replicas
running different versions during a rollout, so it never changes; Python's ``hash()`` is salted
per process and would make replicas disagree.

Keys are compared exactly: callers pass canonical repository names (the same normalisation on
every replica).
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from mirror.types.errors import InputError

__all__ = [
    "SINGLE",
    "Shard",
    "describe",
    "ordinal",
    "owned",
    "owner",
    "owns",
    "parse_shard",
    "weight",
]

ALGORITHM = "rendezvous-blake2b64-v1"
_PERSON = b"mirror-shard-v1"
MAX_COUNT = 65536

_NUMBER = re.compile(r"^[0-9]+$")
_ORDINAL = re.compile(r"-([0-9]+)$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise InputError(f"shard count must be between 1 and {MAX_COUNT}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise InputError(
                f"shard index {self.index} is out of range for {self.count} shard(s): "
                f"it must be between 0 and {self.count - 1}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, key: str) -> bool:
        return owns(self, key)


SINGLE = Shard(0, 1)
"""The whole keyspace: what a replica without ``--shard`` handles."""


def ordinal(hostname: str) -> int:
    """The StatefulSet ordinal of a pod's host name: the trailing ``-N`` of its first label."""
    name = hostname.strip().split(".", 1)[0]
    match = _ORDINAL.search(name)
    if not name or match is None:
        raise InputError(
            f"cannot take a shard index from host name {hostname!r}: expected a StatefulSet pod "
            "name ending in -N (such as mirror-3); give the index explicitly as INDEX/COUNT"
        )
    return int(match.group(1))


def parse_shard(text: str, *, hostname: str | None = None) -> Shard:
    """Parse ``INDEX/COUNT`` or ``auto/COUNT``.

    For ``auto`` the index is the ordinal of ``hostname`` (by default this machine's host name,
    which in a StatefulSet pod is the pod name).
    """
    spec = text.strip()
    where = f"--shard {spec!r}"
    index_text, sep, count_text = spec.partition("/")
    index_text, count_text = index_text.strip(), count_text.strip()
    if not sep or not index_text or not count_text:
        raise InputError(f"{where}: expected INDEX/COUNT (such as 2/5) or auto/COUNT (such as auto/5)")
    if not _NUMBER.match(count_text):
        raise InputError(f"{where}: COUNT must be a whole number, not {count_text!r}")
    count = int(count_text)
    if not 1 <= count <= MAX_COUNT:
        raise InputError(f"{where}: COUNT must be between 1 and {MAX_COUNT}")
    if index_text.lower() == "auto":
        host = socket.gethostname() if hostname is None else hostname
        try:
            index = ordinal(host)
        except InputError as exc:
            raise InputError(f"{where}: {exc.message}") from None
        if index >= count:
            raise InputError(
                f"{where}: host {host!r} has ordinal {index}, but only indexes 0..{count - 1} exist; "
                "the replica count and the shard count must match (scale both together)"
            )
        return Shard(index, count)
    if not _NUMBER.match(index_text):
        raise InputError(f"{where}: INDEX must be a whole number or 'auto', not {index_text!r}")
    index = int(index_text)
    if index >= count:
        raise InputError(f"{where}: INDEX must be between 0 and {count - 1}")
    return Shard(index, count)


def weight(index: int, key: str) -> int:
    """The rendezvous weight of shard ``index`` for ``key``: a stable 64-bit number."""
    digest = hashlib.blake2b(
        index.to_bytes(4, "big") + key.encode("utf-8", "surrogatepass"), digest_size=8, person=_PERSON
    ).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, count: int) -> int:
    """The index of the shard (of ``count``) that owns ``key``; ties go to the lower index."""
    if not 1 <= count <= MAX_COUNT:
        raise InputError(f"shard count must be between 1 and {MAX_COUNT}, not {count}")
    if count == 1:
        return 0
    best, best_weight = 0, -1
    for index in range(count):
        w = weight(index, key)
        if w > best_weight:
            best, best_weight = index, w
    return best


def owns(shard: Shard, key: str) -> bool:
    """Whether ``shard`` owns ``key``."""
    return shard.count == 1 or owner(key, shard.count) == shard.index


def owned(shard: Shard, keys: Iterable[str]) -> list[str]:
    """The keys ``shard`` owns, sorted and without duplicates."""
    return sorted({key for key in keys if owns(shard, key)})


def describe(shard: Shard, keys: Iterable[str]) -> dict[str, object]:
    """A JSON-ready account of what ``shard`` owns among ``keys`` (served at ``/shard``)."""
    all_keys = set(keys)
    mine = owned(shard, all_keys)
    return {
        "shard": str(shard),
        "index": shard.index,
        "count": shard.count,
        "algorithm": ALGORITHM,
        "total": len(all_keys),
        "owned": len(mine),
        "repositories": mine,
    }
