"""The results of a pass, packed: what a pass over 100,000 tags keeps of each image.

:class:`ImageResults` is a sequence of :class:`~mirror.copy.results.ImageResult` that stores
each one as compact JSON (its field values, in order, no keys; a destination's digest left out
when it is the image's) in one growing buffer, and makes the object again when it is read. A
result kept this way costs its text (about 200 bytes for an image found in place) instead of
two dataclass instances, their strings and lists, spread over the heap between the pass's
short-lived objects.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from mirror.copy.results import DestinationResult, ImageResult

_IMAGE = ("source", "digest", "source_digest", "job", "note", "error", "error_kind")
_IMAGE_TAIL = ("blobs", "bytes_total")
_DEST = (
    "destination",
    "status",
    "digest",
    "error",
    "error_kind",
    "blobs_pushed",
    "blobs_mounted",
    "blobs_skipped",
    "bytes_written",
    "manifests_pushed",
)
_DIGEST = _DEST.index("digest")


def pack(result: ImageResult) -> bytes:
    dests = []
    for dest in result.destinations:
        values: list[Any] = [getattr(dest, name) for name in _DEST]
        if values[_DIGEST] == result.digest:
            values[_DIGEST] = None  # the image's own digest
        dests.append(values)
    values = [getattr(result, name) for name in _IMAGE]
    values.append(dests)
    values.extend(getattr(result, name) for name in _IMAGE_TAIL)
    return json.dumps(values, separators=(",", ":")).encode()


def unpack(data: bytes | bytearray) -> ImageResult:
    values = json.loads(data)
    image: dict[str, Any] = dict(zip(_IMAGE, values, strict=False))
    image.update(zip(_IMAGE_TAIL, values[len(_IMAGE) + 1 :], strict=True))
    destinations = []
    for dest in values[len(_IMAGE)]:
        fields: dict[str, Any] = dict(zip(_DEST, dest, strict=True))
        if fields["digest"] is None:
            fields["digest"] = image["digest"]
        destinations.append(DestinationResult(**fields))
    return ImageResult(**image, destinations=destinations)


class _Pack:
    """Packed results: their text, one after the other, and where each ends."""

    __slots__ = ("data", "ends")

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("Q")

    def __len__(self) -> int:
        return len(self.ends)

    def get(self, index: int) -> ImageResult:
        start = self.ends[index - 1] if index else 0
        return unpack(self.data[start : self.ends[index]])


class ImageResults(Sequence[ImageResult]):
    """A packed, append-only list of image results (see the module).

    ``extend`` with another :class:`ImageResults` shares its packs as they are, without a copy
    (what either gets later is its own)."""

    def __init__(self, results: Iterable[ImageResult] = ()) -> None:
        self._packs: list[_Pack] = [_Pack()]
        self.extend(results)

    def append(self, result: ImageResult) -> None:
        pack_ = self._packs[-1]
        pack_.data += pack(result)
        pack_.ends.append(len(pack_.data))

    def extend(self, results: Iterable[ImageResult]) -> None:
        if isinstance(results, ImageResults):
            if not len(self._packs[-1]):
                self._packs.pop()
            self._packs.extend(p for p in results._packs if len(p))
            self._packs.append(_Pack())
            results._packs.append(_Pack())  # what it gets later is its own
            return
        for result in results:
            self.append(result)

    def __len__(self) -> int:
        return sum(len(p) for p in self._packs)

    @overload
    def __getitem__(self, index: int) -> ImageResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[ImageResult]: ...

    def __getitem__(self, index: int | slice) -> ImageResult | list[ImageResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if index >= 0:
            for pack_ in self._packs:
                if index < len(pack_):
                    return pack_.get(index)
                index -= len(pack_)
        raise IndexError("image result index out of range")

    def __iter__(self) -> Iterator[ImageResult]:
        # By index, not over a memoryview: results may be appended while an iteration is under
        # way, and are seen by it, as a list's iterator sees them.
        part = 0
        while part < len(self._packs):
            pack_, index = self._packs[part], 0
            while index < len(pack_):
                yield pack_.get(index)
                index += 1
            part += 1

    @property
    def size(self) -> int:
        """Bytes of packed text."""
        return sum(len(p.data) for p in self._packs)

    def __repr__(self) -> str:
        return f"ImageResults({len(self)} images, {self.size} bytes)"
