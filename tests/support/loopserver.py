"""An aiohttp low-level server on 127.0.0.1, run by its own event loop in a daemon thread, so
that synchronous tests (and subprocesses they start) can talk to it. The evil registry and the
fault proxy are built on it."""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any, Self

from aiohttp import web

Handler = Any  # async (web.BaseRequest) -> web.StreamResponse


class LoopServer:
    thread_name = "loop-server"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- for subclasses ----------------------------------------------------------------------------
    async def _astart(self) -> None:
        """Set up and call :meth:`_serve`; runs on the server's loop."""
        raise NotImplementedError

    async def _astop(self) -> None:
        """Release what :meth:`_astart` made; runs on the server's loop when it stops."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 1.0,
        **server_options: Any,
    ) -> None:
        server = web.Server(handler, access_log=None, **server_options)
        self._runner = web.ServerRunner(server, shutdown_timeout=shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        self.port = int(sockets[0].getsockname()[1])

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._astop())
                loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError(f"{self.thread_name} did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
