"""Handing events to the replica that owns their repository (``--shard`` behind one address).

Replicas of a StatefulSet have stable names (``mirror-0``, ``mirror-1``, ...), so the owner of a
repository is addressable: ``events.peer_url`` with ``{index}`` replaced by its ordinal. A notice
is sent there as the generic event body (``POST /events``, the same bearer token, and the
``X-Mirror-Forwarded: 1`` header, which makes the owner handle it without handing it on).

The event's sender has already been answered (2xx: distribution would otherwise hold back every
later event), so a hand-off that fails is retried in the background, with backoff, for up to
``deadline`` seconds (a replica restarting comes back within that); after that it is logged and
counted (``forward_failed``), and the owner's next scheduled pass copies the image. Notices wait
in a bounded queue per replica; a full queue counts its overflow the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp

from mirror.jobs.triggers import Notice

if TYPE_CHECKING:  # prometheus_client: only when metrics are served
    from mirror.service.replication import ReplicationMetrics

log = logging.getLogger("mirror")

FORWARDED_HEADER = "X-Mirror-Forwarded"
QUEUE_LIMIT = 10_000
REQUEST_TIMEOUT = 10.0


class Forwarder:
    def __init__(
        self,
        peer: Callable[[int], str | None],
        token: str,
        *,
        replication: ReplicationMetrics | None = None,
        deadline: float = 600.0,
        backoff: tuple[float, float] = (0.2, 15.0),
    ) -> None:
        self.peer = peer
        self.token = token
        self.replication = replication
        self.deadline = deadline
        self.backoff = backoff
        self._queues: dict[int, asyncio.Queue[tuple[Notice, float]]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.outstanding = 0  # queued or being sent
        self._idle = asyncio.Event()
        self._idle.set()

    def send(self, index: int, notice: Notice) -> None:
        """Queue ``notice`` for replica ``index``."""
        queue = self._queues.get(index)
        if queue is None:
            queue = self._queues[index] = asyncio.Queue(QUEUE_LIMIT)
            self._workers[index] = asyncio.create_task(self._work(index, queue))
        try:
            queue.put_nowait((notice, time.monotonic()))
            self.outstanding += 1
            self._idle.clear()
        except asyncio.QueueFull:
            self._failed(index, notice, "the hand-off queue is full")

    async def _work(self, index: int, queue: asyncio.Queue[tuple[Notice, float]]) -> None:
        while True:
            notice, queued = await queue.get()
            try:
                await self._deliver(index, notice, queued)
            finally:
                self.outstanding -= 1
                if not self.outstanding:
                    self._idle.set()

    async def _deliver(self, index: int, notice: Notice, queued: float) -> None:
        attempt = 0
        while True:
            attempt += 1
            error = await self._post(index, notice)
            if error is None:
                self.sent += 1
                return
            if time.monotonic() - queued > self.deadline:
                self._failed(index, notice, error)
                return
            low, high = self.backoff
            await asyncio.sleep(min(high, low * 2 ** min(attempt, 10)) * (0.5 + random.random() / 2))

    async def _post(self, index: int, notice: Notice) -> str | None:
        base = self.peer(index)
        if base is None:
            return "no events.peer_url is configured"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            FORWARDED_HEADER: "1",
        }
        try:
            async with self._session.post(
                f"{base}/events", data=json.dumps(notice.to_generic()), headers=headers
            ) as answer:
                if 200 <= answer.status < 300:
                    return None
                return f"replica {index} answered {answer.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"replica {index} at {base}: {type(exc).__name__}: {exc}"

    def _failed(self, index: int, notice: Notice, error: str) -> None:
        log.error(
            "could not hand the event for %s to replica %d: %s; its next pass copies it",
            notice.image,
            index,
            error,
            extra={"fields": {"image": notice.image, "replica": index}},
        )
        if self.replication is not None:
            self.replication.notification("forwarded", "forward_failed")

    async def aclose(self, grace: float = 5.0) -> None:
        """Give queued hand-offs up to ``grace`` seconds, then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
