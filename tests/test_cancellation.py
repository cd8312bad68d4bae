"""Nothing left behind, nothing cancelled for others: upload sessions, shared work, truncated blobs.

Each test failed before its fix:
- a blob PUT that failed, and a session a mount answered 202 that no upload used, stayed open
  at the registry (no `DELETE` of the upload `Location`);
- cancelling one waiter of a single-flight or of a token fetch cancelled the shared work for
  every waiter, and the `CancelledError` escaped the per-image error handling;
- `S3Layout.has_blob` (and the OCI layout's) ignored the size: a truncated object at a blob's
  key was kept and referenced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mirror.cli.main import main
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.singleflight import SingleFlight
from mirror.registry.distribution import RegistryRepository
from mirror.registry.ocilayout import OciLayout
from mirror.transport.client import Transport
from mirror.transport.retry import RetryPolicy
from mirror.transport.tokens import Token, TokenCache
from mirror.types import events as ev
from mirror.types.events import Event
from tests.support.evil import Answer, EvilRegistry
from tests.support.faults import ErrorBurst, SlowBody
from tests.support.images import fetch_blob, push_image

FAST = RetryPolicy(attempts=2, base=0.01, cap=0.05)
HANG_GUARD = 60.0


# -- shared work ---------------------------------------------------------------------------------


async def test_cancelling_one_waiter_leaves_the_shared_work_to_the_others() -> None:
    flight: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()
    started = 0

    async def work() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "done"

    async def wait() -> str:
        return await flight.run("k", work)

    first, second = asyncio.create_task(wait()), asyncio.create_task(wait())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    release.set()
    assert await asyncio.wait_for(second, HANG_GUARD) == "done"
    assert started == 1 and first.cancelled()


async def test_cancelling_one_token_waiter_keeps_the_fetch_for_the_others() -> None:
    cache = TokenCache()
    release = asyncio.Event()
    fetches = 0

    async def fetch() -> Token:
        nonlocal fetches
        fetches += 1
        await release.wait()
        now = time.time()
        return Token("t", now, now + 300)

    def get() -> Any:
        return cache.get(("h", frozenset()), lambda t: True, fetch)

    first, second = asyncio.create_task(get()), asyncio.create_task(get())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    release.set()
    token, _ = await asyncio.wait_for(second, HANG_GUARD)
    assert token.value == "t" and fetches == 1 and first.cancelled()


async def test_an_aborted_transfer_fails_its_image_instead_of_escaping(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    # A steady stream (chunks arriving all the time): an abort must not be lost when it comes
    # as a chunk arrives (asyncio.wait_for in 3.11 swallowed it, and the copy went on).
    push_image(src, "apps/slow", "v1", layer_sizes=(64 * 1024 * 1024,), seed="abort")
    source = proxy_factory.start(src)
    source.add_fault(SlowBody(8 * 1024 * 1024, times=None, method="GET", path=r"/blobs/sha256:"))
    moving = asyncio.Event()

    def events(event: Event) -> None:
        if event.kind == ev.BLOB_PROGRESS:
            moving.set()

    async with Transport(retry=FAST) as transport:
        engine = CopyEngine(retry=FAST, events=events)
        dest = RegistryRepository(transport, dst.host, "m/slow")
        layout = OciLayout(tmp_path / "lay", create=True)
        destinations = [Destination(dest, "v1"), Destination(layout, "v1")]
        task = CopyTask(RegistryRepository(transport, source.host, "apps/slow"), "v1", destinations)
        run = asyncio.create_task(engine.run([task]))
        await asyncio.wait_for(moving.wait(), HANG_GUARD)
        await asyncio.sleep(0.5)  # well into the stream
        engine.abort()
        [result] = await asyncio.wait_for(run, HANG_GUARD)
        await engine.aclose()
        await dest.aclose()
    assert [(d.status, d.error_kind) for d in result.destinations] == [("failed", "shutdown")] * 2


# -- upload sessions ------------------------------------------------------------------------------


def test_a_failed_blob_put_deletes_its_upload_session(registry_pair: Any, proxy_factory: Any) -> None:
    src, dst = registry_pair
    push_image(src, "apps/app", "v1", seed="session")
    dest = proxy_factory.start(dst)
    dest.add_fault(ErrorBurst(400, times=None, method="PUT", path=r"/blobs/uploads/"))
    assert main(["copy", "-q", src.ref("apps/app", "v1"), f"{dest.host}/m/app:v1"]) == 1
    puts = [r.path for r in dest.select("PUT", "/blobs/uploads/")]
    deleted = [r.path for r in dest.select("DELETE", "/blobs/uploads/")]
    assert puts and sorted(deleted) == sorted(puts)  # every failed session, once
    assert all(r.status == 204 for r in dest.select("DELETE", "/blobs/uploads/"))


@pytest.fixture
def evil() -> Iterator[EvilRegistry]:
    with EvilRegistry() as server:
        yield server


async def test_a_session_a_mount_opened_and_no_upload_used_is_deleted(evil: EvilRegistry) -> None:
    """The mount answers 202 (a new session); the layer then cannot be read from the source."""
    image = evil.image("src/app", "v1", seed="mount")
    layer = image.blobs[1][0]
    evil.answer("GET", f"/v2/src/app/blobs/{layer}", Answer(404, {}, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}'))

    async def mount(request: web.BaseRequest) -> web.StreamResponse:
        digest = request.query.get("mount", "none").split(":")[-1][:12]
        return web.Response(status=202, headers={"Location": f"/v2/dst/app/blobs/uploads/s-{digest}"})

    evil.answer("POST", "/v2/dst/app/blobs/uploads/", mount)
    config = image.blobs[0][0]
    evil.answer("PUT", f"/v2/dst/app/blobs/uploads/s-{config.split(':')[1][:12]}", Answer(201))
    evil.answer("DELETE", f"/v2/dst/app/blobs/uploads/s-{layer.split(':')[1][:12]}", Answer(204))
    async with Transport(retry=FAST) as transport:
        engine = CopyEngine(retry=FAST)
        dest = RegistryRepository(transport, evil.host, "dst/app")
        task = CopyTask(RegistryRepository(transport, evil.host, "src/app"), "v1", [Destination(dest, "v1")])
        [result] = await engine.run([task])
        await engine.aclose()
        await dest.aclose()
    assert not result.ok
    assert [s.path for s in evil.seen("DELETE")] == [
        f"/v2/dst/app/blobs/uploads/s-{layer.split(':')[1][:12]}"
    ]


# -- truncated blobs -----------------------------------------------------------------------------


def test_a_truncated_blob_in_an_s3_layout_is_replaced(
    registry: Any,
    aws_env: str,
    s3: Any,
    bucket: str,
) -> None:
    image = push_image(registry, "apps/app", "v1", layer_sizes=(300 * 1024,), seed="truncated")
    layer = image.layers[0]
    key = f"backup/blobs/sha256/{layer.digest.split(':')[1]}"
    s3.put_object(Bucket=bucket, Key=key, Body=layer.read()[:1000])  # a truncated copy
    assert main(["copy", "-q", registry.ref("apps/app", "v1"), f"s3://{bucket}/backup:v1"]) == 0
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == layer.read()


def test_a_truncated_blob_in_an_oci_layout_is_replaced(registry: Any, tmp_path: Path) -> None:
    image = push_image(registry, "apps/app", "v1", layer_sizes=(300 * 1024,), seed="truncated-oci")
    layer = image.layers[0]
    out = tmp_path / "out"
    path = out / "blobs" / "sha256" / layer.digest.split(":")[1]
    path.parent.mkdir(parents=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (out / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    path.write_bytes(layer.read()[:1000])
    assert main(["copy", "-q", registry.ref("apps/app", "v1"), f"oci:{out}:v1"]) == 0
    assert path.read_bytes() == layer.read()
    assert fetch_blob(registry, "apps/app", layer.digest) == layer.read()
