"""Terminal output: a progress line redrawn in place while a command runs (only on a terminal)."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from mirror.jobs.progress import Progress


class ProgressLine:
    """Redraws ``progress.render()`` every ``interval`` seconds on ``stream`` when it is a tty."""

    def __init__(self, progress: Progress, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.progress = progress
        self.stream = stream or sys.stderr
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._width = 0

    def start(self) -> None:
        if self.stream.isatty():
            self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._draw()

    def _draw(self) -> None:
        line = self.progress.render()
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
