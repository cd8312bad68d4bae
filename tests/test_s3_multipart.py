"""Part-size arithmetic for S3 multipart uploads, from 1 byte to 5 TiB. No network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.registry.multipart import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    GiB,
    MiB,
    TiB,
    check_part_size,
    is_multipart,
    part_size_for,
)
from mirror.types.errors import BlobTooLarge, InputError


def part_count(size: int, part_size: int) -> int:
    """The parts of a ``size``-byte upload cut at ``part_size`` (the last may be shorter)."""
    return max(1, -(-size // part_size))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, DEFAULT_PART_SIZE),
        (1, DEFAULT_PART_SIZE),
        (DEFAULT_PART_SIZE, DEFAULT_PART_SIZE),
        (DEFAULT_PART_SIZE + 1, DEFAULT_PART_SIZE),
        (MAX_PARTS * DEFAULT_PART_SIZE, DEFAULT_PART_SIZE),  # 156.25 GiB: exactly 10,000 parts
        (MAX_PARTS * DEFAULT_PART_SIZE + 1, DEFAULT_PART_SIZE + MiB),
        (1 * TiB, 105 * MiB),  # ceil(1 TiB / 10,000) = 104.86 MiB -> 105 MiB
        (5 * 10**12, 477 * MiB),  # 5 TB
        (MAX_OBJECT_SIZE, 525 * MiB),  # 5 TiB: 524.29 MiB -> 525 MiB
    ],
)
def test_part_size_table(size: int, expected: int) -> None:
    assert part_size_for(size) == expected


@pytest.mark.parametrize("minimum", [MIN_PART_SIZE, 8 * MiB, DEFAULT_PART_SIZE, 64 * MiB, MAX_PART_SIZE])
@pytest.mark.parametrize("size", [1, 5 * MiB, 12 * MiB, 10 * GiB, 5 * 10**12, MAX_OBJECT_SIZE])
def test_every_size_fits_within_limits(size: int, minimum: int) -> None:
    part = part_size_for(size, minimum)
    assert part >= minimum
    assert MIN_PART_SIZE <= part <= MAX_PART_SIZE
    assert part_count(size, part) <= MAX_PARTS
    assert part % MiB == 0 or part == minimum


@given(st.integers(min_value=0, max_value=MAX_OBJECT_SIZE))
def test_any_size_up_to_5_tib(size: int) -> None:
    part = part_size_for(size)
    assert MIN_PART_SIZE <= part <= MAX_PART_SIZE
    assert part_count(size, part) <= MAX_PARTS
    # the smallest whole-MiB size that fits: one MiB less would need more than 10,000 parts
    if part > DEFAULT_PART_SIZE:
        assert part_count(size, part - MiB) > MAX_PARTS


def test_single_put_or_multipart() -> None:
    assert not is_multipart(0, DEFAULT_PART_SIZE)
    assert not is_multipart(DEFAULT_PART_SIZE, DEFAULT_PART_SIZE)
    assert is_multipart(DEFAULT_PART_SIZE + 1, DEFAULT_PART_SIZE)


def test_limits() -> None:
    with pytest.raises(BlobTooLarge, match="5 TiB"):
        part_size_for(MAX_OBJECT_SIZE + 1)
    with pytest.raises(ValueError):
        part_size_for(-1)
    for bad in (MIN_PART_SIZE - 1, MAX_PART_SIZE + 1, 0):
        with pytest.raises(InputError, match="5 MiB"):
            check_part_size(bad)
