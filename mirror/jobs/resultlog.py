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
from dataclasses import fields
from typing import Any, overload

from mirror.copy.results import DestinationResult, ImageResult
from mirror.jobs.tally import PassTally

# Field values in the dataclasses' order, so that a result is made again from them by position.
_IMAGE = tuple(f.name for f in fields(ImageResult))
_DEST = tuple(f.name for f in fields(DestinationResult))
_DESTINATIONS = _IMAGE.index("destinations")
_IMAGE_DIGEST = _IMAGE.index("digest")
_DIGEST = _DEST.index("digest")


def pack(result: ImageResult) -> bytes:
    values: list[Any] = [getattr(result, name) for name in _IMAGE]
    dests = []
    for dest in result.destinations:
        dest_values: list[Any] = [getattr(dest, name) for name in _DEST]
        if dest_values[_DIGEST] == result.digest:
            dest_values[_DIGEST] = None  # the image's own digest
        dests.append(dest_values)
    values[_DESTINATIONS] = dests
    return json.dumps(values, separators=(",", ":")).encode()


def unpack(data: bytes | bytearray) -> ImageResult:
    values = json.loads(data)
    digest = values[_IMAGE_DIGEST]
    destinations = []
    for dest in values[_DESTINATIONS]:
        if dest[_DIGEST] is None:
            dest[_DIGEST] = digest
        destinations.append(DestinationResult(*dest))
    values[_DESTINATIONS] = destinations
    return ImageResult(*values)


class _Pack:
    """Packed results: their text, one after the other, where each ends, and which of them
    need attention (their indexes)."""

    __slots__ = ("data", "ends", "marked")

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("Q")
        self.marked = array("Q")

    def __len__(self) -> int:
        return len(self.ends)

    def get(self, index: int) -> ImageResult:
        start = self.ends[index - 1] if index else 0
        return unpack(self.data[start : self.ends[index]])


class ImageResults(Sequence[ImageResult]):
    """A packed, append-only list of image results (see the module).

    ``tally`` counts each job's results as they are stored (:mod:`.tally`), and
    :meth:`attention` reads only the results that need attention: what a pass's outcomes, log
    lines and status page need, without unpacking every result again.

    ``extend`` with another :class:`ImageResults` shares its packs as they are, without a copy
    (what either gets later is its own)."""

    def __init__(self, results: Iterable[ImageResult] = ()) -> None:
        self._packs: list[_Pack] = [_Pack()]
        self.tally = PassTally()
        self.extend(results)

    def append(self, result: ImageResult) -> None:
        pack_ = self._packs[-1]
        pack_.data += pack(result)
        if self.tally.add(result):
            pack_.marked.append(len(pack_))
        pack_.ends.append(len(pack_.data))

    def extend(self, results: Iterable[ImageResult]) -> None:
        if isinstance(results, ImageResults):
            if not len(self._packs[-1]):
                self._packs.pop()
            self._packs.extend(p for p in results._packs if len(p))
            self._packs.append(_Pack())
            self.tally.merge(results.tally)
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

    def attention(self) -> Iterator[ImageResult]:
        """The results that need attention (see :meth:`~.tally.JobTally.add`), in order; the
        others are not unpacked."""
        for pack_ in self._packs:
            for index in pack_.marked:
                yield pack_.get(index)

    @property
    def size(self) -> int:
        """Bytes of packed text."""
        return sum(len(p.data) for p in self._packs)

    def __repr__(self) -> str:
        return f"ImageResults({len(self)} images, {self.size} bytes)"
