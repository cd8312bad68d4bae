"""Registry notifications for tests: a registry config that notifies mirror, and a relay.

    registry_factory.start(extra_config=notifications(url, token))   # distribution -> url
    relay = EventRelay([url_a, url_b, url_c]).start()                 # one address, round robin
    relay = EventRelay([url], drop_every=5).start()                   # loses 1 manifest event in 5

distribution's notifier sends one envelope per request, and retries a request that is refused
(non-2xx) forever, holding back later events. The relay answers what its target answered, so
refusals stay visible; a dropped event is answered 200 by the relay itself and never forwarded
(the event is lost, as events are when a queue in between loses them). ``forwarded`` and
``dropped`` count manifest events (blob events pass through and are not counted).
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.loopserver import LoopServer

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def notifications(url: str, token: str, **endpoint: Any) -> dict[str, Any]:
    """``extra_config`` for a registry whose notifications go to ``url`` with the bearer token."""
    return {
        "notifications": {
            "endpoints": [
                {
                    "name": "mirror",
                    "url": url,
                    "headers": {"Authorization": [f"Bearer {token}"]},
                    "timeout": "3s",
                    "threshold": 3,
                    "backoff": "200ms",
                    "ignoredmediatypes": ["application/octet-stream"],
                    **endpoint,
                }
            ]
        }
    }


def manifest_pushes(body: bytes) -> int:
    try:
        events = json.loads(body).get("events", [])
    except (ValueError, AttributeError):
        return 0
    return sum(
        1
        for e in events
        if e.get("action") == "push" and e.get("target", {}).get("mediaType") in MANIFEST_TYPES
    )


class EventRelay(LoopServer):
    thread_name = "event-relay"

    def __init__(self, targets: list[str], *, drop_every: int = 0) -> None:
        super().__init__()
        self.targets = targets
        self.drop_every = drop_every
        self._next = itertools.cycle(range(len(targets)))
        self._lock = threading.Lock()
        self.forwarded = 0
        self.dropped = 0
        self.by_target = [0] * len(targets)
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _astart(self) -> None:
        self._session = aiohttp.ClientSession()
        await self._serve(self._handle)

    async def _astop(self) -> None:
        if self._session is not None:
            await self._session.close()
        await super()._astop()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        pushes = manifest_pushes(body)
        with self._lock:
            if pushes and self.drop_every and (self.forwarded + self.dropped + 1) % self.drop_every == 0:
                self.dropped += pushes
                return web.Response(status=200)
            index = next(self._next)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        assert self._session is not None
        try:
            async with self._session.post(
                self.targets[index] + request.rel_url.path, data=body, headers=headers
            ) as answer:
                status, text = answer.status, await answer.read()
        except aiohttp.ClientError:
            return web.Response(status=502)
        if 200 <= status < 300:
            with self._lock:
                self.forwarded += pushes
                self.by_target[index] += pushes
        return web.Response(status=status, body=text)
