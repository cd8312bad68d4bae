"""A blob read that survives a broken source connection by continuing from the offset reached.

When the body of a blob read breaks off (a reset, a stall past the read timeout: a temporary
``TransportError``), :class:`ResumingReader` asks its store for the rest, from the offset it
had reached: a registry or object store with an HTTP ``Range`` request, a layout on disk by
seeking. The consumer sees one uninterrupted stream of the blob's bytes, so the running hash
continues and a destination upload that is being fed never notices: a monolithic PUT survives a
source reset, and a reset at 90% of a 5 TB blob costs 10% more reading, not the whole blob again.

Each store's ``reopen(offset)`` answers a :class:`Reopened`:

- the rest of the blob (``skip == 0``) after it checked that the answer is the range asked for
  (HTTP ``206`` with ``Content-Range: bytes OFFSET-LAST/SIZE`` for exactly this blob's size) and
  that the validators the first answer carried (``ETag``) still match, and sent ``If-Range`` so a
  changed object comes back whole instead of spliced;
- or the whole blob again (``skip == offset``) when the source ignores ranges, refused them, or
  answered with other validators: a fresh read, of which the first ``offset`` bytes are read
  and dropped. Nothing reaches the consumer twice.

Neither answer is trusted on its own: the bytes that follow are hashed with the ones before,
and the blob is accepted only when the digest of the whole stream is its digest (the tee's
check). A resumed stream whose digest does not match is never accepted; it fails as a temporary
error (:func:`mismatch_after_resume`), so the engine's next attempt is a fresh full read.

Resumes are bounded: :data:`MAX_RESUMES` per read, and :data:`MAX_STALLED` in a row that
received no byte. Each one is recorded in :attr:`ResumingReader.resumes` for the run's report
and metrics.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from mirror.registry.base import BlobReader
from mirror.types.errors import DigestMismatch, TransportError

MAX_RESUMES = 16  # per blob read
MAX_STALLED = 3  # resumes in a row after which no byte arrived

RANGE = "range"  # the rest was read with a range request
REREAD = "reread"  # the source sent the whole blob again; its first ``offset`` bytes were dropped


@dataclass(frozen=True)
class Reopened:
    """What a store answered when asked for the rest of a blob from ``offset``."""

    reader: BlobReader
    skip: int = 0  # bytes to drop first: 0 for a range answer, the offset for a whole new read
    reason: str = ""  # why the whole blob was read again (a refused or mismatching range)


@dataclass(frozen=True)
class Resume:
    """One resume of a blob read."""

    offset: int  # where the stream continued
    how: str  # RANGE or REREAD
    error: str  # what broke the previous connection
    reason: str = ""  # for REREAD: why no range answer was used


Reopen = Callable[[int], Awaitable[Reopened]]


class ResumingReader:
    """A :class:`~mirror.registry.base.BlobReader` that continues a broken read (see the module).

    ``size`` is the blob's size from its descriptor: a read is resumed only before that many
    bytes have arrived.
    """

    def __init__(
        self, first: BlobReader, size: int, reopen: Reopen, *, max_resumes: int = MAX_RESUMES
    ) -> None:
        self._reader = first
        self.size: int | None = size
        self._reopen = reopen
        self._max_resumes = max_resumes
        self.resumes: list[Resume] = []
        self.bytes_reread = 0  # bytes read again and dropped (REREAD resumes)

    async def chunks(self) -> AsyncIterator[bytes]:
        size = self.size or 0
        offset = 0
        stalled = 0
        skip = 0
        while True:
            began = offset
            try:
                async for chunk in self._reader.chunks():
                    if skip:
                        dropped = min(skip, len(chunk))
                        skip -= dropped
                        self.bytes_reread += dropped
                        chunk = chunk[dropped:]
                        if not chunk:
                            continue
                    offset += len(chunk)
                    yield chunk
                if skip:
                    raise TransportError(f"the source ended {skip} bytes before the offset it was resumed at")
                return
            except TransportError as exc:
                if not exc.temporary or offset >= size or len(self.resumes) >= self._max_resumes:
                    raise
                stalled = stalled + 1 if offset == began else 0
                if stalled >= MAX_STALLED:
                    raise
                error = exc.message
            await self._reader.close()
            answer = await self._reopen(offset)
            self._reader, skip = answer.reader, answer.skip
            self.resumes.append(Resume(offset, REREAD if skip else RANGE, error, answer.reason))

    async def close(self) -> None:
        await self._reader.close()


def mismatch_after_resume(reader: object, error: DigestMismatch) -> DigestMismatch:
    """``error`` made temporary when ``reader`` was resumed: the source's content may have changed
    between its reads, so a fresh full read (the engine's retry) decides, never the spliced one."""
    if getattr(reader, "resumes", None):
        error.temporary = True
        error.message += " (after resuming the read: the next attempt reads the whole blob again)"
    return error


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def range_mismatch(content_range: str | None, offset: int, size: int) -> str:
    """Why a ``206`` answer's ``Content-Range`` is not ``bytes OFFSET-(SIZE-1)/SIZE``; "" when it is."""
    m = _CONTENT_RANGE.match(content_range or "")
    if m is None:
        return f"a partial answer with Content-Range {content_range!r}"
    first, last, total = int(m[1]), int(m[2]), m[3]
    if first != offset or last != size - 1:
        return f"bytes {first}-{last} instead of {offset}-{size - 1}"
    if total != str(size):
        return f"a blob of {total} bytes instead of {size}"
    return ""


def strong_etag(value: str | None) -> str | None:
    """An ``ETag`` usable in ``If-Range`` (a strong one), or None."""
    if not value or value.startswith("W/"):
        return None
    return value
