"""HTTP endpoints of the daemon: metrics, liveness, readiness, and shard ownership.

==========  ===================================================================================
path        answer
==========  ===================================================================================
/metrics    the Prometheus exposition of a :class:`~mirror.service.metrics.Metrics` registry (text
            format 0.0.4, or OpenMetrics when the scraper asks for it in ``Accept``)
/healthz    200 ``ok`` while the process runs and its event loop answers (liveness)
/readyz     200 ``ready`` once the daemon has called :meth:`HealthServer.set_ready` and is not
            shutting down; otherwise 503 ``not ready`` or ``shutting down`` (readiness)
/shard      JSON from the ``shard_info`` callback: which repositories this replica owns (see
            :func:`mirror.service.shard.describe`); without a callback, an unsharded ``0/1``
/           with a ``status`` source: the status page, ``/status.json`` and the drift lists
            (see :mod:`mirror.service.statusweb`)
==========  ===================================================================================

``routes`` adds more endpoints to the same listener (the event triggers of
:mod:`mirror.service.events`).

Bodies carry no secrets: the metrics have bounded, secret-free labels, and ``/shard`` lists
repository names only. A failing ``shard_info`` callback answers 500 without its message.

Usage::

    server = HealthServer(metrics, address="0.0.0.0:9090", shard_info=lambda: describe(shard, repos))
    port = await server.start()   # with port 0 the kernel picks one; start() returns it
    server.set_ready()
    ...
    server.set_shutting_down()    # readiness turns 503 so traffic and scrapes drain
    await server.stop()
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

from aiohttp import web

from mirror.service.metrics import Metrics
from mirror.service.statusweb import StatusSource, add_status_routes
from mirror.types.errors import InputError

__all__ = ["DEFAULT_ADDRESS", "HealthServer", "ShardInfo", "parse_address"]

DEFAULT_ADDRESS = "127.0.0.1:9090"

ShardInfo = Callable[[], Mapping[str, object] | Awaitable[Mapping[str, object]]]
"""Returns the JSON document served at ``/shard``; may be a coroutine function."""

UNSHARDED: Mapping[str, object] = {
    "shard": "0/1",
    "index": 0,
    "count": 1,
    "sharded": False,
    "repositories": None,
}

_NO_STORE = {"Cache-Control": "no-store"}


def parse_address(text: str) -> tuple[str | None, int]:
    """Parse a bind address: ``host:port``, ``[v6]:port``, ``:port`` (every interface) or ``port``.

    Returns ``(host, port)``; host ``None`` means every interface. Port 0 lets the kernel choose.
    """
    spec = text.strip()
    where = f"listen address {text!r}"
    if spec.startswith("["):
        host, sep, port_text = spec[1:].partition("]:")
        if not sep:
            raise InputError(f"{where}: expected [IPv6]:PORT, such as [::1]:9090")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"{where}: {host!r} is not an IPv6 address") from None
        bind: str | None = host
    elif ":" in spec:
        host, _, port_text = spec.rpartition(":")
        if ":" in host:
            raise InputError(f"{where}: write an IPv6 address in brackets, such as [::1]:9090")
        bind = host or None
    else:
        bind, port_text = None, spec
    if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(f"{where}: the port must be a number between 0 and 65535")
    return bind, int(port_text)


class HealthServer:
    """An aiohttp server for ``/metrics``, ``/healthz``, ``/readyz`` and ``/shard``."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        address: str = DEFAULT_ADDRESS,
        shard_info: ShardInfo | None = None,
        status: StatusSource | None = None,
        routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.status = status
        self.routes = routes
        self.host, self.requested_port = parse_address(address)
        self.shard_info = shard_info
        self._ready = False
        self._shutting_down = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- state set by the daemon --------------------------------------------------------------

    def set_ready(self, ready: bool = True) -> None:
        """Mark the daemon ready (or not) to do its work; ``/readyz`` follows."""
        self._ready = ready

    def set_shutting_down(self) -> None:
        """The daemon is shutting down: ``/readyz`` answers 503 from now on."""
        self._shutting_down = True

    @property
    def ready(self) -> bool:
        return self._ready and not self._shutting_down

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    # -- endpoints ----------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type, **_NO_STORE})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers=_NO_STORE)

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._shutting_down:
            return web.Response(status=503, text="shutting down\n", headers=_NO_STORE)
        if not self._ready:
            return web.Response(status=503, text="not ready\n", headers=_NO_STORE)
        return web.Response(text="ready\n", headers=_NO_STORE)

    async def _shard(self, _: web.Request) -> web.Response:
        if self.shard_info is None:
            return web.json_response(dict(UNSHARDED), headers=_NO_STORE)
        try:
            result = self.shard_info()
            document = await result if inspect.isawaitable(result) else result
            return web.json_response(dict(document), headers=_NO_STORE)
        except Exception:
            return web.json_response(
                {"error": "shard information is unavailable"}, status=500, headers=_NO_STORE
            )

    def make_app(self) -> web.Application:
        """The aiohttp application (GET and HEAD on every path)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/shard", self._shard)
        if self.status is not None:
            add_status_routes(app, self.status)
        if self.routes is not None:
            self.routes(app)
        return app

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Bind and serve; returns the bound port (the kernel's choice when the port is 0)."""
        if self._runner is not None:
            raise RuntimeError("the health server is already running")
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=True)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.host or '*'}:{self.requested_port}"
            raise InputError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self._runner = runner
        addresses = runner.addresses
        self._port = int(addresses[0][1]) if addresses else self.requested_port
        return self._port

    async def stop(self) -> None:
        """Stop serving (idempotent); also marks the daemon as shutting down."""
        self._shutting_down = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The bound port; only valid after :meth:`start`."""
        if self._port is None:
            raise RuntimeError("the health server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (loopback when bound to every interface)."""
        host = self.host or "127.0.0.1"
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
