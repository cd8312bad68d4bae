"""Progress deadlines of a streamed blob: no side of a transfer may sit still for ``stall_timeout``.

The source must deliver a chunk within ``stall_timeout`` of the last (:func:`within`). Each
destination is watched on its own (:class:`Watch`, :func:`watch`): while bytes are waiting for
it, it must take some within ``stall_timeout``; once it has taken the last byte, it must answer
within ``stall_timeout`` plus one second per :data:`ANSWER_RATE` bytes of the blob (a registry
may copy a finished upload within its storage before it answers, which takes a while for a big
blob). A destination that does not is cancelled with a :class:`~mirror.types.errors.StallError`;
the others go on. aiohttp's own read timeout starts only once a request body is written, so
without this a destination that stops reading would hold every destination of the blob forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mirror.copy.emit import Emitter
from mirror.registry.base import Repository
from mirror.types import events as ev
from mirror.types.errors import StallError
from mirror.types.sizes import human_bytes

if TYPE_CHECKING:
    from mirror.copy.tee import TeeResult

log = logging.getLogger("mirror")

ANSWER_RATE = 32 * 1024 * 1024  # bytes per second a destination is granted to commit a blob
DEFAULT_STALL_TIMEOUT = 60.0
MIN_STALL_TIMEOUT, MAX_STALL_TIMEOUT = 1.0, 86400.0


def check_stall_timeout(seconds: float) -> float:
    """``seconds`` when it is a usable ``stall_timeout`` (1 s to 1 day); ValueError otherwise."""
    if not MIN_STALL_TIMEOUT <= seconds <= MAX_STALL_TIMEOUT:
        raise ValueError(f"stall_timeout {seconds:g}s is out of range: from 1s to 1d")
    return seconds


@dataclass
class Watch:
    """What one destination of a tee has done, in ``time.monotonic()`` seconds."""

    waiting_since: float | None = None  # bytes have been waiting for it, untaken, since
    finished_at: float | None = None  # it took the last byte at
    taken: int = 0
    error: StallError | None = None  # set when it was found stalled
    cancelled_at: float = 0.0

    def queued(self, now: float) -> None:
        if self.waiting_since is None:
            self.waiting_since = now

    def took(self, size: int, now: float, *, more_waiting: bool, last: bool) -> None:
        self.taken += size
        self.waiting_since = now if more_waiting else None
        if last:
            self.finished_at = now

    def late(self, now: float, stall: float, size: int) -> StallError | None:
        """The stall this destination is in at ``now``, if any."""
        if self.finished_at is not None:
            allowed = stall + size / ANSWER_RATE
            if now - self.finished_at > allowed:
                return StallError(
                    f"no answer within {allowed:.1f}s of sending the whole blob ({human_bytes(size)}; "
                    f"stall_timeout {stall:g}s plus 1s per {human_bytes(ANSWER_RATE)})"
                )
            return None
        if self.waiting_since is not None and now - self.waiting_since > stall:
            return StallError(
                f"the destination took no bytes for {stall:g}s (stall_timeout) after "
                f"{human_bytes(self.taken)} of {human_bytes(size)}"
            )
        return None


async def watch(
    watches: list[Watch],
    tasks: list[asyncio.Task[None]],
    *,
    stall: float,
    size: int,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Cancel the task of every destination that stalls (again each ``stall`` seconds until it
    ends: its clean-up must not hang either). Runs until cancelled."""
    interval = max(0.05, min(1.0, stall / 4))
    while True:
        await asyncio.sleep(interval)
        now = clock()
        for item, task in zip(watches, tasks, strict=True):
            if task.done():
                continue
            if item.error is None:
                item.error = item.late(now, stall, size)
                if item.error is None:
                    continue
            if now - item.cancelled_at >= stall:
                item.cancelled_at = now
                task.cancel()


async def within(chunks: AsyncIterator[bytes], stall: float | None, size: int) -> AsyncIterator[bytes]:
    """``chunks``, each of which must arrive within ``stall`` seconds of the one before."""
    if stall is None:
        async for chunk in chunks:
            yield chunk
        return
    source = aiter(chunks)
    received = 0
    while True:
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) swallows a cancellation that comes as
            # the chunk arrives, and an aborted transfer would then go on.
            async with asyncio.timeout(stall):
                chunk = await anext(source)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise StallError(
                f"the source sent no bytes for {stall:g}s (stall_timeout) after "
                f"{human_bytes(received)} of {human_bytes(size)}"
            ) from None
        received += len(chunk)
        yield chunk


def report(
    emit: Emitter, source: Repository, dests: Sequence[Repository], result: TeeResult, digest: str
) -> None:
    """A log line and a ``transfer_stalled`` event for each side of a read that stalled."""
    sides: list[tuple[Repository, str, BaseException | None]] = [(source, "source", result.source_error)]
    sides += [(d, "destination", e) for d, e in zip(dests, result.sink_errors, strict=True)]
    for repo, side, error in sides:
        if isinstance(error, StallError) and (side == "source" or error is not result.source_error):
            emit(ev.TRANSFER_STALLED, repo=repo, digest=digest, detail=side)
            log.warning(
                "transfer of %s stalled at the %s %s: %s",
                digest,
                side,
                repo.name,
                error.message,
                extra={"fields": {"digest": digest, "side": side, "repository": repo.name}},
            )
