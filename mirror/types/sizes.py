"""Byte sizes as people write them: ``1048576``, ``512MB`` (10^6), ``512MiB`` (2^20), ``5TB``."""

from __future__ import annotations

import re

from mirror.types.errors import InputError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgtp", start=1):
    _UNITS[_p] = _UNITS[_p + "b"] = 1000**_i
    _UNITS[_p + "i"] = _UNITS[_p + "ib"] = 1024**_i

HINT = "write a number of bytes or a size like 512MiB, 10GB or 5TiB (KB = 1000 bytes, KiB = 1024)"


def parse_size(value: object, *, error: type[InputError] = InputError) -> int:
    """Bytes from an int or a text such as ``"1.5GiB"``; at least 1. Raise ``error`` (an
    :class:`InputError` kind) saying what is accepted."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error(f"expected a size, got {type(value).__name__}; {HINT}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value.strip())
        if not match:
            raise error(f"{value!r} is not a size; {HINT}")
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 1:
        raise error(f"a size must be at least 1 byte, got {value!r}; {HINT}")
    return size


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``: binary units, one decimal (whole bytes below 1 KiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"
