"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol: open a page at a
given window size, read what a person sees (``document.body.innerText``), evaluate expressions,
take a full-page PNG.

    async with Browser.launch(tmp_path) as browser:
        await browser.open("http://127.0.0.1:9090/", width=1200)
        text = await browser.evaluate("document.body.innerText")
        await browser.screenshot(tmp_path / "page.png")

:func:`chromium_or_skip` finds the binary (``MIRROR_TEST_CHROMIUM`` overrides it); without one
the test is skipped, except under ``CI=true``, where it fails (``.ci/run`` installs it). Every
wait has a deadline; the browser process and its profile directory go away at exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest

from tests.support.tools.base import under_ci

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
DEADLINE = 30.0


def chromium_or_skip() -> str:
    path = os.environ.get("MIRROR_TEST_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    if under_ci():
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


class Browser:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
        self.process: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    @classmethod
    def launch(cls, workdir: Path) -> Browser:
        return cls(chromium_or_skip(), workdir)

    async def __aenter__(self) -> Browser:
        log = (self.profile / "chromium.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        port_file = self.profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.returncode is not None or loop.time() > deadline:
                await self.__aexit__(None, None, None)
                raise RuntimeError(f"chromium did not start: {self._log_tail()}")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list", timeout=DEADLINE) as answer:
            pages = [t for t in await answer.json() if t.get("type") == "page"]
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        return self

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
        return ""

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events that arrive meanwhile are kept)."""
        assert self.ws is not None
        call = next(self._ids)
        await self.ws.send_str(json.dumps({"id": call, "method": method, "params": params}))
        async with asyncio.timeout(DEADLINE):
            while True:
                message = json.loads((await self.ws.receive()).data)
                if message.get("id") == call:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return dict(message.get("result", {}))
                if "method" in message:
                    self._events.append(message)

    async def _event(self, name: str) -> dict[str, Any]:
        assert self.ws is not None
        async with asyncio.timeout(DEADLINE):
            while True:
                for i, event in enumerate(self._events):
                    if event["method"] == name:
                        return dict(self._events.pop(i))
                message = json.loads((await self.ws.receive()).data)
                if "method" in message:
                    self._events.append(message)

    async def open(self, url: str, *, width: int = 1200, height: int = 900, mobile: bool = False) -> None:
        """Load ``url`` in a window ``width`` CSS pixels wide and wait for its load event."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        self._events.clear()
        await self.send("Page.navigate", url=url)
        await self._event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path, *, width: int) -> bytes:
        """A PNG of the whole page at ``width`` CSS pixels, written to ``path``."""
        height = int(await self.evaluate("document.documentElement.scrollHeight"))
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=max(height, 1),
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        data = base64.b64decode(shot["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data
