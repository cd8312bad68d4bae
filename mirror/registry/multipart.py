"""Part-size arithmetic for S3 multipart uploads. Pure.

S3's limits: a part is 5 MiB to 5 GiB (the last part may be smaller), an upload has at most
10,000 parts, an object at most 5 TiB. The part size is the configured minimum, raised when the
blob would otherwise need more than 10,000 parts to ``ceil(size / 10000)`` rounded up to a whole
MiB, so every blob up to 5 TiB fits. A blob no larger than one part is sent with one PutObject.
"""

from __future__ import annotations

from mirror.types.errors import BlobTooLarge, InputError

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB
DEFAULT_PART_SIZE = 16 * MiB


def check_part_size(minimum: int) -> int:
    """``minimum`` when it is a valid part size, else InputError saying why."""
    if not MIN_PART_SIZE <= minimum <= MAX_PART_SIZE:
        raise InputError(
            f"S3 part size {minimum} bytes is out of range: parts are {MIN_PART_SIZE} bytes (5 MiB) "
            f"to {MAX_PART_SIZE} bytes (5 GiB)"
        )
    return minimum


def part_size_for(size: int, minimum: int = DEFAULT_PART_SIZE) -> int:
    """The part size for an object of ``size`` bytes: at least ``minimum``, at most 10,000 parts."""
    check_part_size(minimum)
    if size < 0:
        raise ValueError(f"object size must not be negative, got {size}")
    if size > MAX_OBJECT_SIZE:
        raise BlobTooLarge(f"{size} bytes is over the {MAX_OBJECT_SIZE}-byte (5 TiB) S3 object limit")
    needed = -(-size // MAX_PARTS)  # ceil(size / MAX_PARTS)
    needed = -(-needed // MiB) * MiB  # rounded up to a whole MiB
    return max(minimum, needed)


def is_multipart(size: int, part_size: int) -> bool:
    """Whether an object of ``size`` bytes goes through a multipart upload."""
    return size > part_size
