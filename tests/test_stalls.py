"""Progress deadlines: a transfer whose source or destination sits still for `stall_timeout` fails,
each destination on its own, and a healthy destination is never held back for good.

Before the fix a destination that stopped reading an upload hung the run forever (aiohttp's
read timeout starts only once a request body is written, and the tee waited on every sink), and
in serve mode the job's later slots were skipped without a word. Each `asyncio.wait_for` below
only turns such a hang into a failure; no test measures how long anything took.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mirror.cli.main import main
from mirror.copy.tee import tee
from mirror.registry.base import ChunkSource
from mirror.service.metrics import Metrics
from mirror.types import events as ev
from mirror.types.digest import Digest
from mirror.types.errors import StallError
from mirror.types.events import Event
from mirror.types.manifest import Descriptor
from tests.support.check import assert_complete
from tests.support.evil import Answer, EvilRegistry
from tests.support.faults import Delay
from tests.support.images import push_image

HANG_GUARD = 60.0  # seconds before a test calls a hang a hang
CHUNK = 64 * 1024


class Reader:
    """A blob reader over memory; `hang_after` chunks, then it sends nothing more."""

    def __init__(self, data: bytes, hang_after: int | None = None) -> None:
        self.data = data
        self.size: int | None = len(data)
        self.hang_after = hang_after
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for i, start in enumerate(range(0, len(self.data), CHUNK)):
            if self.hang_after is not None and i >= self.hang_after:
                await asyncio.Event().wait()
            yield self.data[start : start + CHUNK]

    async def close(self) -> None:
        self.closed = True


def blob(size: int) -> tuple[bytes, Descriptor]:
    data = bytes(range(256)) * (size // 256)
    return data, Descriptor("application/octet-stream", Digest.of(data), len(data))


def collecting(into: list[bytes]) -> Any:
    async def sink(source: ChunkSource) -> None:
        async for chunk in source():
            into.append(chunk)

    return sink


def stopping_after(chunks: int) -> Any:
    """A destination that reads `chunks` chunks, then stops reading (and never answers)."""

    async def sink(source: ChunkSource) -> None:
        count = 0
        async for _ in source():
            count += 1
            if count >= chunks:
                await asyncio.Event().wait()

    return sink


def never_answering() -> Any:
    """A destination that takes the whole blob, then never answers."""

    async def sink(source: ChunkSource) -> None:
        async for _ in source():
            pass
        await asyncio.Event().wait()

    return sink


async def test_a_destination_that_stops_reading_fails_alone() -> None:
    data, desc = blob(40 * CHUNK)
    healthy: list[bytes] = []
    result = await asyncio.wait_for(
        tee(Reader(data), desc, [collecting(healthy), stopping_after(2)], stall_timeout=1.0), HANG_GUARD
    )
    assert result.source_error is None
    assert b"".join(healthy) == data
    ok, stalled = result.sink_errors
    assert ok is None
    assert isinstance(stalled, StallError) and stalled.kind == "stalled" and stalled.temporary
    assert "took no bytes for 1s (stall_timeout)" in stalled.message


async def test_a_destination_that_never_answers_fails_alone() -> None:
    data, desc = blob(4 * CHUNK)
    healthy: list[bytes] = []
    result = await asyncio.wait_for(
        tee(Reader(data), desc, [never_answering(), collecting(healthy)], stall_timeout=1.0), HANG_GUARD
    )
    stalled, ok = result.sink_errors
    assert ok is None and b"".join(healthy) == data
    assert isinstance(stalled, StallError) and "no answer within" in stalled.message


async def test_a_source_that_stops_sending_fails_the_read() -> None:
    data, desc = blob(8 * CHUNK)
    reader = Reader(data, hang_after=3)
    result = await asyncio.wait_for(tee(reader, desc, [collecting([])], stall_timeout=1.0), HANG_GUARD)
    assert isinstance(result.source_error, StallError)
    assert "the source sent no bytes for 1s" in result.source_error.message
    assert result.sink_errors == [result.source_error] and reader.closed


def test_stalls_are_counted_by_side() -> None:
    metrics = Metrics()
    metrics(Event(ev.TRANSFER_STALLED, host="r.example", detail="destination"))
    text = metrics.render()[0].decode()
    assert 'mirror_transfer_stalls_total{registry="r.example",side="destination"} 1.0' in text


# -- a whole run, against a registry that stops reading uploads ----------------------------------


@pytest.fixture
def stalling() -> Iterator[EvilRegistry]:
    """A registry whose blob uploads are read up to their headers, then held (30 s at most)."""
    with EvilRegistry() as server:
        server.answer("POST", "/v2/m/app/blobs/uploads/", Answer(202, {"Location": "/upload/1"}))

        async def hold(request: web.BaseRequest) -> web.StreamResponse:
            await asyncio.sleep(30)
            return web.Response(status=500)

        server.answer("PUT", "/upload/1", hold)
        yield server


def test_sync_with_one_destination_that_stops_reading(
    registry_pair: Any, stalling: EvilRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_pair
    push_image(src, "apps/app", "v1", layer_sizes=(3 * 1024 * 1024, 2048), seed="stall")
    config = tmp_path / "c.yaml"
    report = tmp_path / "report.json"
    config.write_text(
        f"""
version: 1
stall_timeout: 1s
jobs:
  - name: app
    source: {src.host}/apps/app:v1
    destinations: [{dst.host}/m, {stalling.host}/m]
"""
    )
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1
    assert_complete(dst, "m/app")
    [image] = json.loads(report.read_text())["images"]
    healthy, stalled = image["destinations"]
    assert healthy["status"] == "copied", healthy
    assert stalled["status"] == "failed" and stalled["error_kind"] == "stalled", stalled
    assert "took no bytes" in stalled["error"] or "no answer within" in stalled["error"]
    assert not stalling.seen("PUT", "/manifests/")
    assert "stalled at the destination" in capsys.readouterr().err


async def test_a_skipped_slot_is_logged_counted_and_shown(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mirror.jobs.config import load_config
    from mirror.service.daemon import Daemon

    src, dst = registry_pair
    push_image(src, "apps/slow", "v1", seed="slow")
    proxy = proxy_factory.start(dst)
    proxy.add_fault(Delay(4.0, times=1, method="PUT", path=r"/manifests/v1"))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: slow
    source: {src.host}/apps/slow:v1
    destinations: [{proxy.host}/m]
    schedule: {{interval: 1s, jitter: 0}}
"""
    )
    loaded = load_config(config)
    daemon = Daemon(loaded, list(loaded.jobs))
    serving = asyncio.create_task(daemon.serve())
    try:
        for _ in range(int(HANG_GUARD * 10)):
            await asyncio.sleep(0.1)
            if daemon.state.job("slow").slots_skipped:
                break
        assert daemon.state.job("slow").slots_skipped >= 1
        assert daemon.state.snapshot()["jobs"][0]["slots_skipped"] >= 1
        assert daemon.metrics is not None
        text = daemon.metrics.render()[0].decode()
        assert 'mirror_job_slots_skipped_total{job_name="slow"}' in text
        assert 'mirror_job_slots_skipped_total{job_name="slow"} 0.0' not in text
        assert "a scheduled start was skipped" in caplog.text
    finally:
        daemon.request_stop()
        await asyncio.wait_for(serving, HANG_GUARD)


def test_stall_timeout_is_a_duration_in_range() -> None:
    from mirror.jobs.config.load import parse_config
    from mirror.types.errors import ConfigError

    job = "jobs: [{name: a, source: 127.0.0.1:5000/a, destinations: [127.0.0.1:5001/b]}]"
    assert parse_config(f"version: 1\n{job}\n").stall_timeout == 60.0
    assert parse_config(f"version: 1\nstall_timeout: 5m\n{job}\n").stall_timeout == 300.0
    with pytest.raises(ConfigError, match=r"stall_timeout 0\.5s is out of range"):
        parse_config(f"version: 1\nstall_timeout: 0.5s\n{job}\n")


async def test_a_read_under_a_deadline_can_always_be_cancelled() -> None:
    """Cancelling a read whose next chunk is always ready must end it every time (asyncio.wait_for
    in Python 3.11 swallows a cancellation that meets a finished chunk: an aborted copy went on)."""
    from mirror.copy.stall import within

    async def endless() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0)
            yield b"x"

    async def consume() -> None:
        async for _ in within(endless(), 5.0, 1 << 40):
            pass

    for attempt in range(50):
        reader = asyncio.create_task(consume())
        for _ in range(attempt % 7 + 1):
            await asyncio.sleep(0)
        reader.cancel()
        done, _ = await asyncio.wait({reader}, timeout=2.0)
        assert reader in done and reader.cancelled(), f"attempt {attempt}: the cancellation was lost"
