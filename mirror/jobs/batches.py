"""The copies of a pass handed to the engine in batches, a few at a time.

A batch is about :data:`PASS_BATCH` images (whole repositories, or pieces of a larger one);
at most :data:`PASS_BATCHES` run at once, and :meth:`PassBatches.add` waits for a free one, so
what a pass holds at any moment is bounded, however many tags it covers. A pass of fewer images
is one batch: exactly what the engine would do with all of it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mirror.copy.engine import CopyEngine, CopyTask
from mirror.copy.results import ImageResult
from mirror.jobs.referrers import ReferrerFinder, copy_referrers
from mirror.jobs.resultlog import ImageResults

PASS_BATCH = 1024  # images handed to the engine at a time
PASS_BATCHES = 4  # batches in flight at the same time


class PassBatches:
    """:meth:`add` each repository's tasks in order (``unit``: its index), then :meth:`finish`.

    ``copy`` runs a batch through ``engine``; the referrers of the images of the jobs named in
    ``referrers`` are copied after their batch."""

    def __init__(
        self,
        copy: Callable[[list[CopyTask]], Awaitable[list[ImageResult]]],
        engine: CopyEngine,
        referrers: set[str],
        units: int,
        *,
        stopping: Callable[[], bool],
    ) -> None:
        self.copy = copy
        self.engine = engine
        self.referrers = referrers
        self.stopping = stopping
        self.finder = ReferrerFinder()
        self.per_unit: list[ImageResults | None] = [None] * units
        self.referred = ImageResults()
        self.pending: list[tuple[int, CopyTask]] = []
        self.slots = asyncio.Semaphore(PASS_BATCHES)
        self.running: set[asyncio.Future[None]] = set()

    async def add(self, unit: int, tasks: list[CopyTask]) -> None:
        if tasks and tasks[0].job in self.referrers:
            self.finder.already_copied(tasks)  # a fallback tag the filter selects is copied as a tag
        for task in tasks:
            self.pending.append((unit, task))
            if len(self.pending) >= PASS_BATCH:
                await self._dispatch()

    async def finish(self) -> None:
        if self.pending:
            await self._dispatch()
        while self.running:
            await asyncio.gather(*self.running)

    async def cancel(self) -> None:
        for future in self.running:
            future.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)

    def results(self) -> ImageResults:
        """Images in the order their repositories were added, then the referrers copied."""
        every = ImageResults()
        for index, images in enumerate(self.per_unit):
            if images is not None:
                every.extend(images)
                self.per_unit[index] = None
        every.extend(self.referred)
        return every

    async def _dispatch(self) -> None:
        batch, self.pending = self.pending, []
        await self.slots.acquire()
        future = asyncio.ensure_future(self._copy(batch))
        self.running.add(future)
        future.add_done_callback(self.running.discard)

    async def _copy(self, batch: list[tuple[int, CopyTask]]) -> None:
        try:
            tasks = [task for _, task in batch]
            images = await self.copy(tasks)
            for (unit, _), image in zip(batch, images, strict=True):
                packed = self.per_unit[unit]
                if packed is None:
                    packed = self.per_unit[unit] = ImageResults()
                packed.append(image)
            subjects = [(t, i) for t, i in zip(tasks, images, strict=True) if t.job in self.referrers]
            if subjects:
                found = await copy_referrers(
                    self.engine, subjects, self.finder, stopping=self.stopping, fresh=False
                )
                self.referred.extend(found)
        finally:
            self.slots.release()
