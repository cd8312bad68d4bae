"""Single-flight: concurrent callers for one key share one running task; failures are evicted.

Callers await a :class:`Shared` view of the task: a caller that is cancelled stops waiting, and
the shared work goes on for the others (``asyncio.shield``); cancelling the work itself is
:meth:`SingleFlight.cancel_all`'s job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Shared(Generic[T]):
    """The shared task of a key, as its callers see it: awaiting it never cancels it."""

    def __init__(self, task: asyncio.Future[T]) -> None:
        self.task = task

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.shield(self.task).__await__()

    def done(self) -> bool:
        return self.task.done()

    def result(self) -> T:
        return self.task.result()


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Future[T]] = {}

    def run(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> Shared[T]:
        """The work for ``key``: the running or finished one, or a new one from ``start``."""
        task = self._tasks.get(key)
        if task is not None and not (task.done() and (task.cancelled() or task.exception())):
            return Shared(task)

        async def wrapped() -> T:
            return await start()

        task = asyncio.ensure_future(wrapped())
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._evict_failed(key, t))
        return Shared(task)

    def settle(self, key: Hashable, value: T) -> None:
        """Record ``value`` as the finished result for ``key`` unless a task already has one."""
        if key not in self._tasks:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._tasks[key] = future

    def _evict_failed(self, key: Hashable, task: asyncio.Future[T]) -> None:
        if (task.cancelled() or task.exception() is not None) and self._tasks.get(key) is task:
            del self._tasks[key]

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
