"""One copy of an image at a time: locks by (job, source repository, destination reference).

A scheduled pass and event-triggered copies run side by side. Two of them copying the same
image at once would both read the source and both write the tag, and the one that read first
could write last. Every run therefore holds the keys of the images it copies, from before it
reads them until each one has its outcome (the copy engine tells when, per image), and a prune
holds a tag's key while it confirms and deletes it.

A run takes all its keys in one sorted order, so two runs never wait for each other in a
circle; keys are released one by one as images finish, and all at once at the end of a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

Key = tuple[str, str, str]
"""(job name, source repository display name, destination reference: tag or digest)."""


class ImageLocks:
    def __init__(self) -> None:
        self._locks: dict[Key, asyncio.Lock] = {}
        self._users: dict[Key, int] = {}  # holders and waiters; a lock is dropped at zero

    def __len__(self) -> int:
        return len(self._locks)

    def busy(self, key: Key) -> bool:
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    async def acquire(self, keys: Iterable[Key]) -> Held:
        """Wait for every key (in sorted order); the caller releases them through the result."""
        held = Held(self)
        try:
            for key in sorted(set(keys)):
                lock = self._locks.setdefault(key, asyncio.Lock())
                self._users[key] = self._users.get(key, 0) + 1
                try:
                    await lock.acquire()
                except BaseException:
                    self._drop(key)
                    raise
                held.keys.add(key)
        except BaseException:
            held.release_all()
            raise
        return held

    @asynccontextmanager
    async def hold(self, keys: Iterable[Key]) -> AsyncIterator[Held]:
        held = await self.acquire(keys)
        try:
            yield held
        finally:
            held.release_all()

    def _release(self, key: Key) -> None:
        self._locks[key].release()
        self._drop(key)

    def _drop(self, key: Key) -> None:
        users = self._users.get(key, 0) - 1
        if users <= 0:
            self._users.pop(key, None)
            self._locks.pop(key, None)
        else:
            self._users[key] = users


class Held:
    """Keys one run holds."""

    def __init__(self, locks: ImageLocks) -> None:
        self._locks = locks
        self.keys: set[Key] = set()

    def release(self, key: Key) -> None:
        """Release one key (idempotent)."""
        if key in self.keys:
            self.keys.discard(key)
            self._locks._release(key)

    def release_all(self) -> None:
        for key in list(self.keys):
            self.release(key)
