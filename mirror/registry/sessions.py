"""Blob upload sessions a repository opened and may leave behind, cancelled instead.

A registry keeps an upload session (``POST .../blobs/uploads/``) until it is completed or
deleted, or until its own clean-up, often days later. A session is cancelled with ``DELETE`` of
its ``Location`` when the upload through it failed or was cancelled, and when a mount answered
202 (a new session) and no upload came to use it. Cancelling is best effort: it runs in the
background, is never retried, and a failure is only logged (the registry purges it anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from yarl import URL

from mirror.transport.errors import redact_url
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError

log = logging.getLogger("mirror")

CLOSE_WAIT = 10.0  # seconds aclose() waits for the cancellations still running


class UploadSessions:
    """The sessions of one repository: kept for a later upload, or being cancelled."""

    def __init__(self, cancel: Callable[[URL], Awaitable[None]]) -> None:
        self._cancel = cancel
        self._kept: dict[Digest, URL] = {}
        self._cancelling: set[asyncio.Task[None]] = set()
        self.cancelled = 0

    def keep(self, digest: Digest, url: URL) -> None:
        """A session a mount opened (answered 202): the next upload of ``digest`` uses it."""
        previous = self._kept.pop(digest, None)
        if previous is not None:
            self.cancel(previous)
        self._kept[digest] = url

    def take(self, digest: Digest) -> URL | None:
        return self._kept.pop(digest, None)

    def cancel(self, url: URL) -> None:
        """Cancel the session at ``url`` in the background (it may outlive its caller)."""
        task = asyncio.ensure_future(self._quietly(url))
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    async def _quietly(self, url: URL) -> None:
        try:
            await self._cancel(url)
            self.cancelled += 1
        except MirrorError as exc:
            log.debug("could not cancel upload session %s: %s", redact_url(str(url)), exc.message)

    async def aclose(self, wait: float = CLOSE_WAIT) -> None:
        """Cancel every session kept and not used; wait (bounded) for the cancellations."""
        for digest in list(self._kept):
            self.cancel(self._kept.pop(digest))
        pending = set(self._cancelling)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=wait)
        for task in late:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*late, return_exceptions=True)
