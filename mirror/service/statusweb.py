"""The status page's routes on the metrics listener (GET and HEAD only; other methods get 405).

===========================  ===========================================================================
path                         answer
===========================  ===========================================================================
``/``                        the status page (HTML); ``?refresh=SECONDS`` (5-3600) reloads it by itself
``/status.json``             the same document as JSON (see :mod:`.status`)
``/jobs/NAME/drift``         every drift row kept for job NAME (HTML); ``?state=missing`` and the like
                             keep one state
``/jobs/NAME/drift.json``    the same as JSON
===========================  ===========================================================================

Nothing here changes anything. Every answer is ``no-store``; HTML answers carry a
Content-Security-Policy that allows no script, no image, no frame and no form, and only the page's
own style sheet, so even a value that escaped escaping could not run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from mirror.service.status import DRIFT_STATES
from mirror.service.statuspage import STYLE_HASH, render_drift, render_status

REFRESH_RANGE = (5, 3600)

_COMMON = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_HTML = {
    **_COMMON,
    "Content-Security-Policy": (
        f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
}


class StatusSource(Protocol):
    """Where the documents come from (the daemon); each call returns a fresh, redacted document."""

    def status(self) -> dict[str, Any]: ...

    def drift(self, job: str, state: str = "") -> dict[str, Any] | None: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refresh(request: web.Request) -> int | None:
    text = request.query.get("refresh")
    if text is None:
        return None
    low, high = REFRESH_RANGE
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise web.HTTPBadRequest(
            text=f"refresh must be a whole number of seconds from {low} to {high}\n", headers=_COMMON
        )
    return int(text)


def _state(request: web.Request) -> str:
    state = request.query.get("state", "")
    if state and state not in DRIFT_STATES:
        raise web.HTTPBadRequest(text=f"state must be one of: {', '.join(DRIFT_STATES)}\n", headers=_COMMON)
    return state


def _guarded(handler: Handler) -> Handler:
    """A failure while building a document answers 500 without its message (it may hold anything)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            return web.Response(status=500, text="status is unavailable\n", headers=_COMMON)

    return guarded


def add_status_routes(app: web.Application, source: StatusSource) -> None:
    """Serve the status page and its JSON twin from ``source`` on ``app``."""

    async def page(request: web.Request) -> web.StreamResponse:
        refresh = _refresh(request)
        body = render_status(source.status(), refresh=refresh)
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_HTML)

    async def document(_: web.Request) -> web.StreamResponse:
        return web.json_response(source.status(), headers=_COMMON)

    async def drift_page(request: web.Request) -> web.StreamResponse:
        refresh, state = _refresh(request), _state(request)
        doc = source.drift(request.match_info["name"], state)
        if doc is None:
            raise web.HTTPNotFound(text="no such job\n", headers=_COMMON)
        body = render_drift(doc, refresh=refresh)
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_HTML)

    async def drift_document(request: web.Request) -> web.StreamResponse:
        doc = source.drift(request.match_info["name"], _state(request))
        if doc is None:
            raise web.HTTPNotFound(text="no such job\n", headers=_COMMON)
        return web.json_response(doc, headers=_COMMON)

    app.router.add_get("/", _guarded(page))
    app.router.add_get("/status.json", _guarded(document))
    app.router.add_get("/jobs/{name}/drift", _guarded(drift_page))
    app.router.add_get("/jobs/{name}/drift.json", _guarded(drift_document))
