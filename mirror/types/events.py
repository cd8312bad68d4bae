"""Events: every layer reports what it did through one sink; metrics, reports and logs listen.

The layers that emit events import nothing of the listeners.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

# Event kinds (a closed list keeps metric labels bounded).
REQUEST = "request"  # an HTTP request sent (status filled in)
RETRY = "retry"  # a temporary failure, retried after a delay
THROTTLED = "throttled"  # a 429 answer
TOKEN_FETCH = "token_fetch"  # a registry token obtained from a realm
CREDENTIAL_REFRESH = "credential_refresh"  # a provider credential refreshed
BLOB_READ = "blob_read"  # bytes read from a source (size = bytes)
BLOB_PUSHED = "blob_pushed"
BLOB_MOUNTED = "blob_mounted"
BLOB_SKIPPED = "blob_skipped"  # already present at the destination
BLOB_FAILED = "blob_failed"
BLOB_PROGRESS = "blob_progress"  # bytes streamed so far (size = delta)
BLOB_RESUMED = "blob_resumed"  # a source read continued after its connection broke (size = offset;
# detail = "range", or "reread" when the source sent the whole blob again)
MANIFEST_PUSHED = "manifest_pushed"
IMAGE_COPIED = "image_copied"
IMAGE_SKIPPED = "image_skipped"
IMAGE_FAILED = "image_failed"
IMAGE_DEFERRED = "image_deferred"  # left for a later pass: the source's pull limit is spent
RATE_LIMIT = "rate_limit"  # a registry said how many pulls remain (size = remaining, detail = limit)
TAG_CONFLICT = "tag_conflict"
TRANSFER_STARTED = "transfer_started"  # a source read begins (size = the blob's; detail = image)
TRANSFER_FINISHED = "transfer_finished"
TRANSFER_STALLED = "transfer_stalled"  # a source or destination made no progress (detail: which)


@dataclass(frozen=True, slots=True)  # many are made per blob: no __dict__ each
class Event:
    kind: str
    host: str = ""
    repository: str = ""
    digest: str = ""
    size: int = 0
    status: int = 0
    detail: str = ""  # never a secret: error kinds, methods, reasons; a transfer's image


EventSink = Callable[[Event], None]


def discard(_: Event) -> None:
    return None


class Fanout:
    """An EventSink that forwards to several listeners; a failing listener never breaks a copy."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = list(sinks)

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            with contextlib.suppress(Exception):  # a listener must not break the data path
                sink(event)
