"""An exclusive lock between processes on a lock file (``flock``), taken with a deadline.

Used by the OCI layout directory store around each read-modify-write of ``index.json``, so
writers in several processes (parallel ``mirror copy`` runs into one directory) never lose each
other's tags. The lock belongs to the open file: the kernel drops it when the holder closes the
file or dies, so a lock file left behind never blocks anyone. Waiting polls without holding a
thread; the work done under the lock runs in a worker thread and always finishes before the
lock is released, even when the waiting task is cancelled.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mirror.types.errors import MirrorError

T = TypeVar("T")

POLL_MIN = 0.005
POLL_MAX = 0.1


class LockTimeout(MirrorError):
    kind = "lock_timeout"
    temporary = True


async def run_locked(path: Path, work: Callable[[], T], *, max_wait: float, what: str) -> T:
    """Run ``work`` in a worker thread while holding the exclusive lock on ``path`` (created
    when missing); LockTimeout when another holder keeps it longer than ``max_wait`` seconds."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + max_wait
        delay = POLL_MIN
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{what}: another process held {path.name} for more than {max_wait:g}s; "
                        "another mirror is writing to this layout (the lock is released when it "
                        "finishes or exits)"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, POLL_MAX)
        done = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait({done})  # the lock is released only once the work is over
            raise
    finally:
        os.close(fd)
