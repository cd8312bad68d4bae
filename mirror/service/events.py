"""HTTP endpoints for event triggers, on the metrics listener (``events:`` in the config).

=====================  ==========================================================================
path                   body
=====================  ==========================================================================
POST /events/distribution  distribution's notification envelope (``notifications.endpoints``)
POST /events/pubsub    a Pub/Sub push request carrying an Artifact Registry notification
POST /events           ``{"image": "HOST/REPO:TAG"}`` (EventBridge API destinations, CI, replicas)
=====================  ==========================================================================

Every request needs ``Authorization: Bearer <events.token>`` (compared in constant time). Answers:

- 202 with ``{"accepted": N, "forwarded": N, "ignored": N}`` for every well-formed body, whether
  or not a job covers its events (distribution retries a refused event forever, holding back
  every later one); ``"overflow": N`` when that many were not queued because 100,000 images
  already wait for a copy (logged; the next pass copies them);
- 401 without the token or with another one, 413 for a body over 1 MiB, 400 for a body that is
  not what the endpoint expects (with the reason); none of these copies anything;
- 503 while the service shuts down (the sender retries against a replica that is up).

Nothing from a request reaches a log line but image names and counts.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from mirror.jobs.triggers import PARSERS, MalformedEvent, Parsed
from mirror.service.dispatch import Dispatcher
from mirror.service.forward import FORWARDED_HEADER
from mirror.service.replication import ReplicationMetrics

MAX_BODY = 1 << 20
PATHS = {"/events/distribution": "distribution", "/events/pubsub": "pubsub", "/events": "generic"}
_NO_STORE = {"Cache-Control": "no-store"}


class EventEndpoints:
    def __init__(
        self, token: str, dispatcher: Dispatcher, replication: ReplicationMetrics | None = None
    ) -> None:
        if not token:
            raise ValueError("an events token is required")
        self._token = token.encode()
        self.dispatcher = dispatcher
        self.replication = replication

    def add_routes(self, app: web.Application) -> None:
        for path, endpoint in PATHS.items():
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = partial(self._handle, endpoint)
            app.router.add_post(path, handler)

    def _count(self, endpoint: str, outcome: str, n: int = 1) -> None:
        if self.replication is not None:
            self.replication.notification(endpoint, outcome, n)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    async def _handle(self, endpoint: str, request: web.Request) -> web.StreamResponse:
        forwarded = request.headers.get(FORWARDED_HEADER) == "1" and endpoint == "generic"
        label = "forwarded" if forwarded else endpoint
        if not self._authorized(request):
            self._count(label, "unauthorized")
            return _error(
                401, "a bearer token is required: Authorization: Bearer <events.token>", bearer=True
            )
        if request.content_length is not None and request.content_length > MAX_BODY:
            self._count(label, "too_large")
            return _error(413, f"the body is over {MAX_BODY} bytes")
        body = await _read(request)
        if body is None:
            self._count(label, "too_large")
            return _error(413, f"the body is over {MAX_BODY} bytes")
        try:
            parsed: Parsed = PARSERS[endpoint](body)
        except MalformedEvent as exc:
            self._count(label, "malformed")
            return _error(400, exc.message)
        if self.dispatcher.stopping:
            return _error(503, "shutting down; send it again")
        counts = self.dispatcher.submit(parsed, forwarded=forwarded)
        for outcome, n in counts.items():
            self._count(label, outcome, n)
        return web.json_response(counts, status=202, headers=_NO_STORE)


async def _read(request: web.Request) -> bytes | None:
    """The body, or None once it passes :data:`MAX_BODY` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)


def _error(status: int, message: str, *, bearer: bool = False) -> web.Response:
    headers = dict(_NO_STORE)
    if bearer:
        headers["WWW-Authenticate"] = 'Bearer realm="mirror events"'
    return web.json_response({"error": message}, status=status, headers=headers)
