"""Event notifications from registries and pipelines, parsed into :class:`Notice` values. Pure.

Three bodies are understood:

- **distribution** (``application/vnd.docker.distribution.events.v1+json``): an envelope
  ``{"events": [...]}``; each event has ``action`` (``push``, ``pull``, ``mount``, ``delete``),
  ``timestamp``, ``target`` (``mediaType``, ``digest``, ``repository``, ``tag``) and ``request``
  (``host``: the registry's name as the client used it). A manifest push is a notice; blob
  pushes (``target.mediaType`` not a manifest type, no tag), pulls and mounts are ignored.
  ``delete`` names a tag or a digest. (distribution's ``notifications.md``.)
- **pubsub**: a Pub/Sub push request ``{"message": {"data": BASE64, "publishTime": ...,
  "attributes": {...}}, "subscription": ...}`` whose data is what Artifact Registry publishes:
  ``{"action": "INSERT" | "DELETE", "digest": "HOST/P/R/IMG@sha256:...", "tag":
  "HOST/P/R/IMG:TAG"}``, either of ``digest`` and ``tag`` possibly absent (Artifact Registry's
  "Configure Pub/Sub notifications" page).
- **generic**: ``{"image": "HOST/REPO:TAG"}`` (also ``HOST/REPO@sha256:...`` or both), with an
  optional ``"action": "push" | "delete"`` and ``"time"`` (RFC 3339): for EventBridge API
  destinations (an input transformer writes this shape), CI pipelines, and replicas handing
  an event to the one that owns its repository.

A notice names what to look at, never what to trust: the copy re-reads the source. A body that
is not what its endpoint expects raises :class:`MalformedEvent`; a well-formed event that is not
an image push or delete is counted as ignored, not refused (distribution retries a refused
event forever, holding back every later one).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import InputError, InvalidReference
from mirror.types.reference import ImageRef, parse_reference, validate_tag

PUSH, DELETE = "push", "delete"
MAX_EVENTS = 10_000  # per request


class MalformedEvent(InputError):
    """A request body that cannot be an event of its endpoint."""

    kind = "malformed_event"


@dataclass(frozen=True)
class Notice:
    """Something happened to an image: ``host``/``repository``, with a tag and/or digest."""

    action: str  # push or delete
    host: str  # canonical registry host (docker.io for Docker Hub)
    repository: str
    tag: str | None = None
    digest: str | None = None
    time: float | None = None  # unix time of the push, when the event says

    @property
    def image(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def to_generic(self) -> dict[str, Any]:
        """The generic body that names this notice (how a replica hands it to another)."""
        doc: dict[str, Any] = {"image": self.image, "action": self.action}
        if self.time is not None:
            doc["time"] = dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat().replace("+00:00", "Z")
        return doc


@dataclass(frozen=True)
class Parsed:
    notices: tuple[Notice, ...]
    ignored: int  # well-formed events that name no image push or delete


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"the body is not JSON: {exc}") from None


def _time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _notice(action: str, image: str, *, tag: str | None = None, digest: str | None = None) -> Notice | None:
    """A notice for ``image`` (``HOST/REPO``, perhaps with ``:TAG`` / ``@DIGEST``), or None when
    it does not name a registry image."""
    try:
        ref = parse_reference(image, default_tag=False)
        if digest is not None:
            digest = str(Digest.parse(digest))
        if tag is not None:
            validate_tag(tag)
    except InvalidReference:
        return None
    if not isinstance(ref, ImageRef) or "/" not in image.split("@")[0]:
        return None
    tag = tag if tag is not None else ref.tag
    digest = digest if digest is not None else (str(ref.digest) if ref.digest else None)
    if tag is None and digest is None:
        return None
    return Notice(action, ref.host, ref.repository, tag, digest)


def _with_time(notice: Notice | None, when: float | None) -> Notice | None:
    return None if notice is None else Notice(**{**notice.__dict__, "time": when})


def parse_distribution(body: bytes) -> Parsed:
    """A distribution notification envelope (see the module docs)."""
    doc = _json(body)
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise MalformedEvent('expected a notification envelope, {"events": [...]}')
    if len(events) > MAX_EVENTS:
        raise MalformedEvent(f"{len(events)} events in one request: over {MAX_EVENTS}")
    notices: list[Notice] = []
    ignored = 0
    for event in events:
        notice = _distribution_event(event)
        if notice is None:
            ignored += 1
        else:
            notices.append(notice)
    return Parsed(tuple(notices), ignored)


def _distribution_event(event: object) -> Notice | None:
    if not isinstance(event, dict):
        return None
    action, target, request = event.get("action"), event.get("target"), event.get("request")
    if action not in (PUSH, DELETE) or not isinstance(target, dict) or not isinstance(request, dict):
        return None
    host, repository = request.get("host"), target.get("repository")
    tag, digest = target.get("tag") or None, target.get("digest") or None
    if not isinstance(host, str) or not isinstance(repository, str):
        return None
    if not isinstance(tag, str | None) or not isinstance(digest, str | None):
        return None
    if action == PUSH and tag is None and not mt.is_manifest(str(target.get("mediaType", ""))):
        return None  # a blob push
    notice = _notice(action, f"{host}/{repository}", tag=tag, digest=digest)
    return _with_time(notice, _time(event.get("timestamp")))


def parse_pubsub(body: bytes) -> Parsed:
    """A Pub/Sub push request carrying an Artifact Registry notification."""
    doc = _json(body)
    message = doc.get("message") if isinstance(doc, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        raise MalformedEvent('expected a Pub/Sub push request, {"message": {"data": BASE64, ...}}')
    try:
        data = _json(base64.b64decode(message["data"], validate=True))
    except (binascii.Error, ValueError):
        raise MalformedEvent("message.data is not base64") from None
    if not isinstance(data, dict):
        raise MalformedEvent("message.data is not a JSON object")
    action = {"INSERT": PUSH, "DELETE": DELETE}.get(str(data.get("action", "")).upper())
    tag_ref, digest_ref = data.get("tag"), data.get("digest")
    if action is None or not (isinstance(tag_ref, str) or isinstance(digest_ref, str)):
        return Parsed((), 1)
    when = _time(message.get("publishTime"))
    by_tag = _notice(action, tag_ref) if isinstance(tag_ref, str) else None
    by_digest = _notice(action, digest_ref) if isinstance(digest_ref, str) else None
    if by_tag and by_digest:
        if (by_tag.host, by_tag.repository) != (by_digest.host, by_digest.repository):
            return Parsed((), 1)  # the tag and the digest name different images
        notice: Notice | None = Notice(action, by_tag.host, by_tag.repository, by_tag.tag, by_digest.digest)
    else:
        notice = by_tag or by_digest
    notice = _with_time(notice, when)
    return Parsed((notice,), 0) if notice else Parsed((), 1)


def parse_generic(body: bytes) -> Parsed:
    """``{"image": "HOST/REPO:TAG", "action": "push"|"delete", "time": RFC 3339}``."""
    doc = _json(body)
    image = doc.get("image") if isinstance(doc, dict) else None
    if not isinstance(image, str) or not image.strip():
        raise MalformedEvent('expected {"image": "HOST/REPOSITORY:TAG"}')
    action = doc.get("action", PUSH)
    if action not in (PUSH, DELETE):
        raise MalformedEvent(f"action must be 'push' or 'delete', not {action!r}")
    notice = _notice(action, image.strip())
    if notice is None:
        raise MalformedEvent(
            f"image {image!r} is not HOST/REPOSITORY:TAG or HOST/REPOSITORY@sha256:... (a registry image "
            "with its host, and a tag or digest)"
        )
    return Parsed((_with_time(notice, _time(doc.get("time"))) or notice,), 0)


PARSERS = {"distribution": parse_distribution, "pubsub": parse_pubsub, "generic": parse_generic}
