"""Single-flight: concurrent callers for one key share one running task; failures are evicted.

Callers await a :class:`Shared` view of the task: a caller that is cancelled stops waiting, and
the shared work goes on for the others (``asyncio.shield``); cancelling the work itself is
:meth:`SingleFlight.cancel_all`'s job.

With ``keep``, only the ``keep`` most recently finished results are remembered (a pass over
100,000 tags must not hold every manifest it read): a key asked for again after its result was
forgotten is worked out again. Work still running is never forgotten.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
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
    def __init__(self, *, keep: int | None = None) -> None:
        self._tasks: dict[Hashable, asyncio.Future[T]] = {}
        self._keep = keep
        self._finished: OrderedDict[Hashable, None] = OrderedDict()  # with ``keep``: oldest first

    def run(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> Shared[T]:
        """The work for ``key``: the running or finished one, or a new one from ``start``."""
        task = self._tasks.get(key)
        if task is not None and not (task.done() and (task.cancelled() or task.exception())):
            return Shared(task)

        async def wrapped() -> T:
            return await start()

        task = asyncio.ensure_future(wrapped())
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._finish(key, t))
        return Shared(task)

    def settle(self, key: Hashable, value: T) -> None:
        """Record ``value`` as the finished result for ``key`` unless a task already has one."""
        if key not in self._tasks:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._tasks[key] = future
            self._finish(key, future)

    def _finish(self, key: Hashable, task: asyncio.Future[T]) -> None:
        if self._tasks.get(key) is not task:
            return
        if task.cancelled() or task.exception() is not None:
            del self._tasks[key]  # failures are evicted: a later caller may try again
        elif self._keep is not None:
            self._finished[key] = None
            self._finished.move_to_end(key)
            while len(self._finished) > self._keep:
                old, _ = self._finished.popitem(last=False)
                if (done := self._tasks.get(old)) is not None and done.done():
                    del self._tasks[old]

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
