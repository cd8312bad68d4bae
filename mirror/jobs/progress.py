"""What is moving now, counted from events: blobs done, bytes read, transfers in flight, rate."""

from __future__ import annotations

import time

from mirror.types import events as ev
from mirror.types.events import Event
from mirror.types.sizes import human_bytes


class Progress:
    """An event sink that counts what events report; :meth:`render` makes a one-line status."""

    def __init__(self) -> None:
        self.bytes_read = 0
        self.blobs_done = 0
        self.manifests = 0
        self.in_flight = 0
        self.started = time.monotonic()

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
