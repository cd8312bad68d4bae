"""One blob read from a source, streamed to the destination repositories that lack it.

:meth:`SourceReads.stream` opens the first source repository that serves the blob and feeds
every destination through the verified tee (:mod:`mirror.copy.tee`). What can go wrong, and what
happens then:

- *A source cannot be read* (not found, refused, unreachable after the transport's retries), or
  keeps breaking off: the next source repository that has the blob is tried; when none is left,
  every destination fails with the error of each source, each named.
- *The bytes do not match the digest*: usually a transient fault on the way (a proxy, a CDN, a
  network card), so the blob is read again, up to :data:`MISMATCH_READS` times from one source.
  A wrong digest that comes back a second time is the source's own corruption
  (:class:`~mirror.types.errors.SourceCorrupt`): that source is not read again.
- *A destination fails*: it is sent again with a fresh source read when its error is temporary
  (a streamed body cannot be replayed), after the backoff (at least ``Retry-After``); the other
  destinations are not held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mirror.copy import results as r
from mirror.copy import stall
from mirror.copy.emit import Emitter
from mirror.copy.resumes import record_resumes
from mirror.copy.tee import Sink, tee
from mirror.registry.base import ChunkSource, Repository
from mirror.transport.retry import RetryPolicy
from mirror.types import events as ev
from mirror.types.errors import DigestMismatch, MirrorError, ShutdownError, SourceCorrupt
from mirror.types.events import EventSink
from mirror.types.manifest import Descriptor

# Reads of one blob from one source whose bytes did not match the digest, before giving up on
# that source. A wrong digest seen twice ends it sooner: that is the source's own corruption.
MISMATCH_READS = 4

Outcome = str | BaseException


class SourceReads:
    """Streams blobs from their sources; ``transfers`` bounds the reads in flight."""

    def __init__(
        self,
        *,
        events: EventSink,
        stats: r.RunStats,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        transfers: int,
        stall_timeout: float | None = None,
    ) -> None:
        self._emit = Emitter(events)
        self.stall_timeout = stall_timeout  # each side of a read: see mirror.copy.stall
        self.stats = stats
        self.retry = retry
        self.sleep = sleep
        self._transfers = asyncio.Semaphore(max(1, transfers))
        self.stopping = False  # shutting down: reads not yet started fail

    async def stream(
        self, desc: Descriptor, sources: list[Repository], repos: list[Repository], *, image: str = ""
    ) -> dict[str, Outcome]:
        """Send ``desc`` from the first of ``sources`` that serves it to each of ``repos``
        (``image``: the first image that wants it, named in the events of the transfer)."""
        outcomes: dict[str, Outcome] = {}
        remaining = list(repos)
        failures: list[tuple[Repository, MirrorError]] = []
        index = 0  # the source being read
        attempt = 0  # reads from that source (for the retry policy)
        mismatches = 0  # of those, reads whose bytes did not match the digest
        wrong: set[str] = set()  # wrong digests that source served
        async with self._transfers:
            while remaining:
                if self.stopping:
                    stopped = ShutdownError("not copied: mirror is shutting down")
                    outcomes.update((repo.name, stopped) for repo in remaining)
                    break
                if index >= len(sources):
                    unreadable = _unreadable(desc, failures)
                    for repo in remaining:
                        self._failed(outcomes, repo, desc, unreadable)
                    break
                source = sources[index]
                attempt += 1
                source_error, sink_errors = await self._read(desc, source, remaining, image)
                retry_next: list[Repository] = []
                retry_after: list[float] = []
                for repo, sink_error in zip(remaining, sink_errors, strict=True):
                    if sink_error is None:
                        outcomes[repo.name] = "pushed"
                        self._emit(ev.BLOB_PUSHED, repo=repo, digest=str(desc.digest), size=desc.size)
                    elif sink_error is source_error:
                        retry_next.append(repo)  # decided below, with the source
                    elif _temporary(sink_error) and self.retry.should_retry(r.as_mirror(sink_error), attempt):
                        retry_next.append(repo)
                        wait = getattr(sink_error, "retry_after", None)
                        if wait is not None:
                            retry_after.append(wait)
                    else:
                        self._failed(outcomes, repo, desc, sink_error)
                remaining = retry_next
                if not remaining:
                    break
                delay = self.retry.delay(attempt, max(retry_after, default=None))
                give_up: MirrorError | None = None
                if isinstance(source_error, DigestMismatch):
                    if source_error.actual in wrong:
                        give_up = SourceCorrupt(str(desc.digest), source.name, source_error.actual)
                    elif mismatches + 1 >= MISMATCH_READS:
                        give_up = source_error
                    else:
                        # Read again at once; that read does not count against the retries
                        # of the destinations (they did nothing wrong).
                        mismatches += 1
                        attempt -= 1
                        wrong.add(source_error.actual)
                        delay = delay if retry_after else 0.0
                elif source_error is not None:
                    error = r.as_mirror(source_error)
                    if not (error.temporary and self.retry.should_retry(error, attempt)):
                        give_up = error
                if give_up is not None:  # the next source, at once
                    failures.append((source, give_up))
                    index, attempt, mismatches, wrong, delay = index + 1, 0, 0, set(), 0.0
                if delay:
                    await self.sleep(delay)
        return outcomes

    async def _read(
        self, desc: Descriptor, source: Repository, repos: list[Repository], image: str
    ) -> tuple[BaseException | None, list[BaseException | None]]:
        """One read of ``source`` through the tee into ``repos``: the source's error (also
        every sink's it cut off) and each sink's."""
        digest = str(desc.digest)
        self._emit(ev.TRANSFER_STARTED, repo=source, digest=digest, size=desc.size, detail=image)
        try:
            reader = await source.open_blob(desc)
        except MirrorError as exc:
            # Not retried here: the store already retried opening (transport, botocore).
            self._emit(ev.TRANSFER_FINISHED, repo=source, digest=digest)
            error = _named(exc, source)
            error.temporary = False
            return error, [error] * len(repos)

        def progress(n: int) -> None:
            self._emit(ev.BLOB_PROGRESS, repo=source, digest=digest, size=n)

        sinks = [_sink(repo, desc) for repo in repos]
        result = await tee(reader, desc, sinks, on_bytes=progress, stall_timeout=self.stall_timeout)
        self._emit(ev.TRANSFER_FINISHED, repo=source, digest=digest)
        stall.report(self._emit, source, repos, result, digest)
        self.stats.bytes_read += result.bytes_read
        self.stats.blobs_read += 1
        record_resumes(reader, self.stats, self._emit, source, desc)
        self._emit(ev.BLOB_READ, repo=source, digest=digest, size=result.bytes_read)
        return result.source_error, result.sink_errors

    def _failed(
        self, outcomes: dict[str, Outcome], repo: Repository, desc: Descriptor, error: BaseException
    ) -> None:
        outcomes[repo.name] = error
        self._emit(ev.BLOB_FAILED, repo=repo, digest=str(desc.digest), detail=r.error_kind(error))


def _sink(repo: Repository, desc: Descriptor) -> Sink:
    async def put(source: ChunkSource) -> None:
        await repo.put_blob(desc, source, replayable=False)

    return put


def _named(error: MirrorError, source: Repository) -> MirrorError:
    """``error``, its message naming the source repository when it does not already."""
    path = source.name.split("/", 1)[-1]
    if path not in error.message:
        error.message = f"{source.name}: {error.message}"
        error.args = (error.message,)
    return error


def _unreadable(desc: Descriptor, failures: list[tuple[Repository, MirrorError]]) -> MirrorError:
    """The error of a blob no source served: the one source's, or each source's, named."""
    if not failures:
        return MirrorError(f"blob {desc.digest.short}: no source repository to read it from")
    if len(failures) == 1:
        return failures[0][1]
    first = failures[0][1]
    combined = MirrorError(
        f"blob {desc.digest.short} could not be read from any of {len(failures)} source "
        "repositories: " + "; ".join(_named(error, source).message for source, error in failures)
    )
    combined.kind = first.kind
    return combined


def _temporary(error: BaseException) -> bool:
    return isinstance(error, MirrorError) and error.temporary
