"""LingeringClient: a client opened on first use and closed after some idle seconds.

The S3 store keeps its aiobotocore client (and connection pool) this way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any


class LingeringClient:
    """A client opened on first use and closed after ``linger`` idle seconds.

    A watcher task closes it once no operation has used it for ``linger`` seconds. When the
    event loop shuts down, ``asyncio.run`` (or ``asyncio.Runner``) cancels the watcher, which
    then closes the client, so no connection pool is left open without anyone calling close.
    Operations still running then keep it open until the last one releases it.
    """

    def __init__(
        self, open_client: Callable[[], contextlib.AbstractAsyncContextManager[Any]], linger: float
    ) -> None:
        self._open_client = open_client
        self._linger = linger
        self.client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._users = 0
        self._idle_since = 0.0
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def acquire(self) -> Any:
        async with self._lock:
            if self.client is None:
                stack = contextlib.AsyncExitStack()
                self.client = await stack.enter_async_context(self._open_client())
                self._stack = stack
                self._watcher = asyncio.create_task(self._watch())
            self._users += 1
            return self.client

    async def release(self) -> None:
        self._users -= 1
        self._idle_since = asyncio.get_running_loop().time()
        if self._users == 0 and self._watcher is None:
            await self._close()

    async def aclose(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if self._users == 0:
            await self._close()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                idle = loop.time() - self._idle_since
                if self._users == 0 and idle >= self._linger:
                    return
                await asyncio.sleep(self._linger - idle if self._users == 0 else self._linger)
        finally:  # idle long enough, or cancelled (aclose, or the event loop shutting down)
            if self._watcher is asyncio.current_task():
                self._watcher = None
            if self._users == 0:
                await self._close()

    async def _close(self) -> None:
        stack, self._stack, self.client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
