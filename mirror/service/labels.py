"""Prometheus label values: bounded, closed sets, never a secret. Pure.

``registry`` is a host name (``host[:port]``), normalised: a scheme, user info and path are
dropped; a value that does not look like a host is ``invalid``, an empty one ``none``.
``kind`` (error kinds of the exception tree, event kinds) and ``code`` (HTTP status classes)
come from closed sets; anything else counts as ``other`` / ``none``.
"""

from __future__ import annotations

import re
from typing import Protocol

from mirror.types import errors
from mirror.types import events as ev

# Every error kind of the exception tree, plus ``other`` for anything else.
ERROR_KINDS: frozenset[str] = frozenset(
    {
        obj.kind
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.MirrorError)
    }
    | {"internal", "other"}
)
"""Error kinds counted by name; ``internal`` is what the copy engine reports for a bug."""

# Every event kind declared in mirror.types.events.
EVENT_KINDS: frozenset[str] = frozenset(
    value
    for name, value in vars(ev).items()
    if name.isupper() and isinstance(value, str) and not name.startswith("_")
)

HTTP_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
ERROR_SCOPES = ("blob", "image")

HOST_NONE = "none"
HOST_INVALID = "invalid"
HOST_OTHER = "other"

_HOST_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9](?:[a-z0-9_-]{0,62}))*|\[[0-9a-f:.]{2,45}\])(?::\d{1,5})?$"
)


class Named(Protocol):
    @property
    def name(self) -> str: ...


JobLike = str | Named
"""A job name, or anything with a ``name`` (the daemon's job config)."""


def job_name(job: JobLike) -> str:
    return job if isinstance(job, str) else str(job.name)


def status_class(status: int) -> str:
    """``"2xx"`` for 200..299 and so on; ``"none"`` for anything outside 100..599."""
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "none"


def error_kind(text: str) -> str:
    """The error kind named by an event's detail, if it is one of :data:`ERROR_KINDS`, else ``other``."""
    kind = text.strip().lower()
    return kind if kind in ERROR_KINDS else "other"


def store_host(repository: str) -> str:
    """The host part of a repository display name (``host/path``, ``oci:DIR``, ``s3://b/p``)."""
    text = repository.strip()
    scheme, sep, _ = text.partition("://")
    if sep and scheme.isalnum():
        return scheme.lower()
    if text.lower().startswith("oci:"):
        return "oci"
    return text.split("/", 1)[0]


def normalise_host(host: str) -> str:
    """``host[:port]`` in lower case, or ``none``/``invalid``; strips a scheme, user info and path."""
    text = host.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    text = text.rsplit("@", 1)[-1]
    if not text:
        return HOST_NONE
    if not _HOST_RE.match(text):
        return HOST_INVALID
    return text
