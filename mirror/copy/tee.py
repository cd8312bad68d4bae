"""Stream one source read to several sinks while hashing it.

The reader's bytes are hashed and counted as they pass. The last chunk is held back until the
whole stream has been verified (size and digest): a sink therefore never receives the final
byte of an unverified blob, and every sink's request is aborted when verification fails. Memory
is bounded by ``depth`` chunks per sink. A sink that fails is dropped; the others go on. With a
``stall_timeout``, neither the source nor any sink may sit still that long (:mod:`.stall`): a
stalled sink is cancelled and dropped, a stalled source fails the read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from mirror.copy.stall import Watch, watch, within
from mirror.registry.base import BlobReader, ChunkSource
from mirror.registry.resume import mismatch_after_resume
from mirror.types.errors import DigestMismatch, SizeMismatch
from mirror.types.manifest import Descriptor

Sink = Callable[[ChunkSource], Awaitable[None]]

_END = object()
# Hash in a worker thread when chunks are this large (hashlib releases the GIL), so hashing
# overlaps the event loop's network work on another core.
THREADED_HASH_MIN = 256 * 1024


class _Pipe:
    def __init__(self, depth: int) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue(depth)
        self.closed = False
        self.error: BaseException | None = None
        self.consumed = False
        self.watch = Watch()

    async def send(self, item: object) -> None:
        if not self.closed:
            self.watch.queued(time.monotonic())
            await self.queue.put(item)

    def fail(self, error: BaseException) -> None:
        self.error = error
        if not self.closed:
            # When the queue is full the consumer sees ``error`` on its next read anyway.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(_END)

    def close(self) -> None:
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()

    def source(self) -> AsyncIterator[bytes]:
        if self.consumed:
            raise RuntimeError("a tee stream can be read only once")
        self.consumed = True
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.queue.get()
            size = len(item) if isinstance(item, bytes) else 0
            self.watch.took(size, time.monotonic(), more_waiting=not self.queue.empty(), last=item is _END)
            if self.error is not None:
                raise self.error
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item


@dataclass
class TeeResult:
    source_error: BaseException | None
    sink_errors: list[BaseException | None]
    bytes_read: int


async def _update(hasher: hashlib._Hash, chunk: bytes) -> None:
    if len(chunk) >= THREADED_HASH_MIN:
        await asyncio.to_thread(hasher.update, chunk)
    else:
        hasher.update(chunk)


async def tee(
    reader: BlobReader,
    desc: Descriptor,
    sinks: list[Sink],
    *,
    on_bytes: Callable[[int], None] | None = None,
    depth: int = 8,
    stall_timeout: float | None = None,
) -> TeeResult:
    """Read ``reader`` once, verify it against ``desc``, and feed every sink."""
    pipes = [_Pipe(depth) for _ in sinks]

    async def run(pipe: _Pipe, sink: Sink) -> None:
        try:
            await sink(pipe.source)
        finally:
            pipe.close()

    tasks = [asyncio.create_task(run(p, s)) for p, s in zip(pipes, sinks, strict=True)]
    watcher = None
    if stall_timeout is not None:
        watches = [p.watch for p in pipes]
        watcher = asyncio.create_task(watch(watches, tasks, stall=stall_timeout, size=desc.size))
    source_error: BaseException | None = None
    cut_off = [False] * len(pipes)  # sinks still reading when the source failed
    count = 0
    try:
        hasher = desc.digest.hasher()
        pending: bytes | None = None
        async for chunk in within(reader.chunks(), stall_timeout, desc.size):
            count += len(chunk)
            if count > desc.size:
                raise SizeMismatch(desc.size, count, what=f"blob {desc.digest.short}")
            await _update(hasher, chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
            if pending is not None:
                await _send_all(pipes, pending)
            pending = chunk
            if all(p.closed for p in pipes):
                break  # every sink has failed: stop reading
        else:
            if count != desc.size:
                raise SizeMismatch(desc.size, count, what=f"blob {desc.digest.short}")
            actual = hasher.hexdigest()
            if actual != desc.digest.hex:
                mismatch = DigestMismatch(str(desc.digest), f"{desc.digest.algorithm}:{actual}")
                raise mismatch_after_resume(reader, mismatch)
            if pending is not None:
                await _send_all(pipes, pending)
            await _send_all(pipes, _END)
    except Exception as exc:
        source_error = exc
        cut_off = [not p.closed for p in pipes]
        for pipe in pipes:
            pipe.fail(exc)
    except BaseException as exc:  # cancellation: abort every sink, then propagate
        for pipe in pipes:
            pipe.fail(exc)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _stop(watcher)
        await reader.close()
        raise
    await reader.close()
    try:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await _stop(watcher)
    errors: list[BaseException | None] = []
    for pipe, outcome in zip(pipes, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            errors.append(pipe.watch.error or outcome)  # a stalled sink ends cancelled
        else:
            errors.append(None)
    if source_error is not None:
        # A sink cut off by the source's failure reports that failure, not its own aborted request.
        errors = [source_error if cut or e is None else e for e, cut in zip(errors, cut_off, strict=True)]
    return TeeResult(source_error, errors, count)


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _send_all(pipes: list[_Pipe], item: object) -> None:
    live = [p for p in pipes if not p.closed]
    if len(live) == 1:
        await live[0].send(item)
    elif live:
        await asyncio.gather(*(p.send(item) for p in live))
