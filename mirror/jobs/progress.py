"""A progress line on a terminal, fed by events: blobs done, bytes moved, rate."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from mirror.types import events as ev
from mirror.types.events import Event


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


class Progress:
    """Counts what events report; ``render`` makes the status line."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.bytes_read = 0
        self.blobs_done = 0
        self.manifests = 0
        self.in_flight = 0
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._width = 0

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == ev.BLOB_PROGRESS:
            self.bytes_read += event.size
        elif kind in (ev.BLOB_PUSHED, ev.BLOB_MOUNTED, ev.BLOB_SKIPPED):
            self.blobs_done += 1
        elif kind == ev.MANIFEST_PUSHED:
            self.manifests += 1
        elif kind == ev.TRANSFER_STARTED:
            self.in_flight += 1
        elif kind == ev.TRANSFER_FINISHED:
            self.in_flight = max(0, self.in_flight - 1)

    def render(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_read / elapsed
        return (
            f"blobs {self.blobs_done} done, {self.in_flight} moving | "
            f"{human_bytes(self.bytes_read)} read at {human_bytes(rate)}/s | "
            f"manifests {self.manifests} | {elapsed:.0f}s"
        )

    def start(self) -> None:
        if self.stream.isatty():
            self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._draw()

    def _draw(self) -> None:
        line = self.render()
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._task = None
