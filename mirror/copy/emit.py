"""The copy engine's events: each one names the repository and host it is about."""

from __future__ import annotations

from mirror.registry.base import Repository
from mirror.types.events import Event, EventSink


class Emitter:
    """Sends events to ``sink``; ``repo`` fills in an event's repository and host unless given."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def __call__(self, kind: str, *, repo: Repository | None = None, **fields: object) -> None:
        if repo is not None:
            fields.setdefault("repository", repo.name)
            fields.setdefault("host", repo.registry)
        self.sink(Event(kind, **fields))  # type: ignore[arg-type]
