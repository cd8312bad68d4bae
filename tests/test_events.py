"""Event triggers against real registries: distribution's notifications, Pub/Sub and generic
bodies, refusals, lost events caught by the reconcile, and sharded replicas behind one address."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from mirror.jobs.config import parse_config
from mirror.service.daemon import Daemon
from mirror.service.shard import Shard, owner
from tests.support.images import fetch_manifest, list_tags, manifest_exists, push_image
from tests.support.net import free_port
from tests.support.relay import EventRelay, notifications

TOKEN = "events-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config_text(src: Any, dst: Any, *, interval: str = "1h", extra: str = "") -> str:
    return f"""
version: 1
events: {{token: "{TOKEN}", peer_url: "http://127.0.1.{{index}}:PEERPORT"}}
jobs:
  - name: apps
    source: {src.host}/apps/*
    destinations: [{dst.host}/m]
    schedule: {{interval: {interval}, jitter: 0}}
{extra}"""


@asynccontextmanager
async def serving(
    text: str, *, host: str = "127.0.0.1", port: int = 0, shard: Shard | None = None, **kw: Any
) -> AsyncIterator[Daemon]:
    """A daemon serving in this loop, its first pass done; stopped on exit."""
    port = port or free_port()
    config = parse_config(text.replace("PEERPORT", str(port)))
    daemon = Daemon(config, list(config.jobs), shard=shard, metrics_address=f"{host}:{port}", grace=5, **kw)
    daemon.base_url = f"http://{host}:{port}"  # type: ignore[attr-defined]
    task = asyncio.create_task(daemon.serve())
    try:
        await until(lambda: all(daemon.state.job(j.name).last_pass for j in daemon.jobs), 30, task)
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)


async def until(check: Callable[[], bool], seconds: float, task: asyncio.Task[Any] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if task is not None and task.done():
            task.result()
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def post(url: str, body: bytes | str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers or {}) as answer,
    ):
        text = await answer.text()
        return answer.status, json.loads(text) if text.startswith("{") else text


def present(handle: Any, repo: str, tags: list[str]) -> Callable[[], bool]:
    return lambda: all(manifest_exists(handle, repo, t) for t in tags)


async def test_refused_requests_copy_nothing_and_ignored_events_get_2xx(
    registry_pair: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    async with serving(config_text(src, dst)) as daemon:
        await asyncio.to_thread(push_image, src, "apps/web", "v1", seed="refused")  # after the first pass
        url = daemon.base_url + "/events"  # type: ignore[attr-defined]
        good = json.dumps({"image": f"{src.host}/apps/web:v1"})
        assert (await post(url, good))[0] == 401
        assert (await post(url, good, {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await post(url, good, {"Authorization": f"Basic {TOKEN}"}))[0] == 401
        assert (await post(url, "{not json", AUTH))[0] == 400
        assert (await post(url, json.dumps({"image": "web"}), AUTH))[0] == 400
        assert (await post(url + "/pubsub", json.dumps({"message": {}}), AUTH))[0] == 400
        oversize = json.dumps({"image": f"{src.host}/apps/web:v1", "pad": "x" * (1 << 20)})
        status, answer = await post(url, oversize, AUTH)
        assert status == 413 and "over" in answer["error"]
        # Well formed but covered by no job: answered 2xx, counted, not copied.
        status, answer = await post(url, json.dumps({"image": f"{src.host}/other/web:v1"}), AUTH)
        assert (status, answer) == (202, {"accepted": 0, "forwarded": 0, "ignored": 1})
        await asyncio.sleep(0.5)
        assert not await asyncio.to_thread(manifest_exists, dst, "m/web", "v1")
        text = daemon.metrics.render()[0].decode() if daemon.metrics else ""
        for outcome, n in (("unauthorized", 3), ("malformed", 2), ("too_large", 1), ("ignored", 1)):
            line = f'mirror_event_notifications_total{{endpoint="generic",outcome="{outcome}"}} {float(n)}'
            assert line in text, line
        # The control: the same event with the token is copied.
        status, answer = await post(url, good, AUTH)
        assert (status, answer["accepted"]) == (202, 1)
        await until(present(dst, "m/web", ["v1"]), 20)


async def test_distribution_notifications_copy_a_push_storm(registry_factory: Any, tmp_path: Path) -> None:
    """50 pushes, a schedule of one hour: every image arrives through its event."""
    port = free_port()
    dst = registry_factory.start()
    src = registry_factory.start(
        extra_config=notifications(f"http://127.0.0.1:{port}/events/distribution", TOKEN)
    )
    report = tmp_path / "report.json"
    async with serving(config_text(src, dst), port=port, report_path=str(report)) as daemon:
        pushed: dict[str, str] = {}

        def storm() -> None:
            for i in range(50):
                repo, tag = f"apps/svc{i % 5}", f"v{i // 5}"
                pushed[f"{repo}:{tag}"] = push_image(
                    src, repo, tag, seed=f"storm{i}", layer_sizes=(512,)
                ).digest
                time.sleep(0.05)

        await asyncio.to_thread(storm)
        tags = {f"svc{n}": [f"v{i}" for i in range(10)] for n in range(5)}
        await until(lambda: all(present(dst, f"m/{r}", t)() for r, t in tags.items()), 60)
        for name, digest in pushed.items():
            repo, tag = name.split(":")
            assert fetch_manifest(dst, "m/" + repo.split("/")[1], tag).digest == digest
        await until(lambda: len(daemon.state.job("apps").lags) == 50, 10)
        lag = daemon.state.snapshot()["jobs"][0]["lag"]
        assert lag["count"] == 50 and 0 <= lag["p50_seconds"] <= lag["p99_seconds"]
        doc = json.loads(report.read_text())
        assert doc["trigger"] == "event" and doc["lags"] and doc["lag"]["count"] == len(doc["lags"])
        assert daemon.state.job("apps").last_pass is not None  # the one pass, at start


async def test_lost_events_converge_within_one_reconcile_interval(registry_factory: Any) -> None:
    port = free_port()
    relay = EventRelay([f"http://127.0.0.1:{port}"], drop_every=5).start()
    try:
        dst = registry_factory.start()
        src = registry_factory.start(extra_config=notifications(f"{relay.url}/events/distribution", TOKEN))
        async with serving(config_text(src, dst, interval="4s"), port=port) as daemon:
            for i in range(20):
                await asyncio.to_thread(
                    push_image, src, f"apps/lossy{i % 2}", f"v{i}", seed=f"lossy{i}", layer_sizes=(256,)
                )
            pushed = time.time()
            # The first pass that starts after the last push: once it has finished, every image
            # is there, whatever the events lost.
            await until(
                lambda: (p := daemon.state.job("apps").last_pass) is not None and p.started > pushed, 30
            )
            expected = {f"lossy{n}": [f"v{i}" for i in range(n, 20, 2)] for n in range(2)}
            assert all(present(dst, f"m/{r}", t)() for r, t in expected.items())
            assert relay.dropped >= 3
            # Events copied at most what reached mirror; the pass copied what the events lost.
            assert len(daemon.state.job("apps").lags) <= relay.forwarded
    finally:
        relay.stop()


async def test_sharded_replicas_behind_one_address_copy_each_image_once(
    registry_factory: Any, proxy_factory: Any
) -> None:
    port = free_port()
    peers = [f"http://127.0.1.{i}:{port}" for i in range(3)]
    relay = EventRelay(peers).start()
    try:
        dst = registry_factory.start()
        recorder = proxy_factory.start(dst)
        src = registry_factory.start(extra_config=notifications(f"{relay.url}/events/distribution", TOKEN))
        text = config_text(src, recorder)
        async with (
            serving(text, host="127.0.1.0", port=port, shard=Shard(0, 3)) as r0,
            serving(text, host="127.0.1.1", port=port, shard=Shard(1, 3)) as r1,
            serving(text, host="127.0.1.2", port=port, shard=Shard(2, 3)) as r2,
        ):
            repos = [f"apps/s{i}" for i in range(9)]
            for repo in repos:
                await asyncio.to_thread(push_image, src, repo, "v1", seed=repo, layer_sizes=(256,))
            await until(
                lambda: all(manifest_exists(recorder, "m/" + r.split("/")[1], "v1") for r in repos), 60
            )
            await asyncio.sleep(1.0)  # a late second copy would show now
            tag_puts = [r.path for r in recorder.select("PUT", "/manifests/v1")]
            assert sorted(tag_puts) == sorted(f"/v2/m/{r.split('/')[1]}/manifests/v1" for r in repos)
            replicas = (r0, r1, r2)
            copied = [len(d.state.job("apps").lags) for d in replicas]
            owners = [owner(f"{src.host}/{r}", 3) for r in repos]
            assert copied == [owners.count(i) for i in range(3)]
            assert sum(relay.by_target) == len(repos) and sum(copied) == len(repos)
            assert any(
                d.dispatcher and d.dispatcher.forwarder and d.dispatcher.forwarder.sent for d in replicas
            )
    finally:
        relay.stop()


def pubsub(action: str, image: str, digest: str | None = None) -> str:
    data: dict[str, str] = {"action": action, "tag": image}
    if digest:
        data["digest"] = image.rsplit(":", 1)[0] + "@" + digest
    message = {"data": base64.b64encode(json.dumps(data).encode()).decode(), "messageId": "1"}
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/mirror"})


async def test_pubsub_inserts_copy_and_deletes_trigger_the_prune_check(registry_pair: Any) -> None:
    src, dst = registry_pair
    for tag in ("v1", "v2"):
        await asyncio.to_thread(push_image, src, "apps/web", tag, seed=f"ps{tag}")
    extra = "    prune: true\n"
    async with serving(config_text(src, dst, extra=extra)) as daemon:
        url = daemon.base_url + "/events/pubsub"  # type: ignore[attr-defined]
        new = await asyncio.to_thread(push_image, src, "apps/web", "v3", seed="psv3")
        status, answer = await post(url, pubsub("INSERT", f"{src.host}/apps/web:v3", new.digest), AUTH)
        assert (status, answer["accepted"]) == (202, 1)
        await until(present(dst, "m/web", ["v3"]), 20)
        # v1 deleted at the source (by digest: distribution 2.8), then the DELETE notification.
        digest = fetch_manifest(src, "apps/web", "v1").digest
        await post_delete(src, "apps/web", digest)
        status, _ = await post(url, pubsub("DELETE", f"{src.host}/apps/web:v1"), AUTH)
        assert status == 202
        await until(lambda: sorted(list_tags(dst, "m/web")) == ["v2", "v3"], 20)
        assert daemon.state.job("apps").last_prune is not None


async def post_delete(handle: Any, repo: str, digest: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{handle.url}/v2/{repo}/manifests/{digest}") as answer,
    ):
        assert answer.status == 202


async def test_bursts_coalesce_per_repository_and_the_queue_is_bounded() -> None:
    from mirror.jobs.syncrun import job_spec
    from mirror.jobs.triggers import PUSH, Notice, Parsed
    from mirror.service.dispatch import Dispatcher
    from mirror.service.state import ServiceState

    config = parse_config(
        "version: 1\njobs:\n  - {name: apps, source: 'reg.example/apps/*', destinations: [d.example/m]}\n"
    )
    jobs = [job_spec(config, j) for j in config.jobs]
    state = ServiceState()
    dispatcher = Dispatcher(jobs, jobs, state=state, max_pending=4)  # never started: nothing copies
    digest = "sha256:" + "1" * 64
    burst = [Notice(PUSH, "reg.example", "apps/web", f"v{i % 3}", digest) for i in range(6)]
    assert dispatcher.submit(Parsed(tuple(burst), 0)) == {"accepted": 6, "forwarded": 0, "ignored": 0}
    # Six events for three tags of one repository: one batch of three images.
    assert state.job("apps").events_pending == 1 and dispatcher._queued == 3
    more = [Notice(PUSH, "reg.example", "apps/api", f"v{i}", digest) for i in range(3)]
    counts = dispatcher.submit(Parsed(tuple(more), 0))
    assert counts == {"accepted": 1, "forwarded": 0, "ignored": 0, "overflow": 2}
    assert state.job("apps").events_pending == 2
    await dispatcher.stop(1.0)
