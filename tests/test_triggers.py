"""Event bodies (distribution, Pub/Sub, generic) into notices, notices into jobs, and image locks. Pure."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.jobs.config import parse_config
from mirror.jobs.imagelocks import ImageLocks
from mirror.jobs.routing import COPY, PRUNE, REFRESH, route
from mirror.jobs.syncrun import job_spec
from mirror.jobs.triggers import (
    DELETE,
    PUSH,
    MalformedEvent,
    Notice,
    parse_distribution,
    parse_generic,
    parse_pubsub,
)

D = "sha256:" + "3c" * 32
OCI = "application/vnd.oci.image.manifest.v1+json"


def envelope(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def event(
    action: str = "push", *, tag: str | None = "v1", media: str = OCI, digest: str = D, **extra: Any
) -> dict[str, Any]:
    target: dict[str, Any] = {"mediaType": media, "digest": digest, "repository": "apps/web", "size": 666}
    if tag is not None:
        target["tag"] = tag
    return {
        "id": "1",
        "timestamp": "2026-12-02T17:02:06.093097091Z",
        "action": action,
        "target": target,
        "request": {"host": "reg.example:5000", "method": "PUT"},
        **extra,
    }


def test_distribution_manifest_pushes_and_deletes_are_notices() -> None:
    parsed = parse_distribution(
        envelope(
            event(),
            event(tag=None, media="application/octet-stream"),  # a blob push
            event("pull"),
            event("mount"),
            event("delete", tag="old", media=""),
            event("delete", tag=None, media=""),
        )
    )
    assert parsed.ignored == 3
    push, by_tag, by_digest = parsed.notices
    assert push == Notice(PUSH, "reg.example:5000", "apps/web", "v1", D, push.time)
    when = dt.datetime(2026, 12, 2, 17, 2, 6, 93097, tzinfo=dt.UTC).timestamp()
    assert push.time is not None and abs(push.time - when) < 1e-3
    assert (by_tag.action, by_tag.tag, by_tag.digest) == (DELETE, "old", D)
    assert (by_digest.action, by_digest.tag, by_digest.digest) == (DELETE, None, D)


def test_distribution_push_by_digest_and_odd_events_are_kept_or_ignored() -> None:
    parsed = parse_distribution(
        envelope(
            event(tag=None),  # an untagged manifest push: a notice by digest
            event(digest="md5:abc"),  # unusable digest: ignored
            {"action": "push"},  # no target: ignored
            "not an object",
            event(tag="../../x"),  # not a tag
        )
    )
    assert [(n.tag, n.digest) for n in parsed.notices] == [(None, D)]
    assert parsed.ignored == 4


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"events": {}}', b"\xff\xfe"])
def test_distribution_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_distribution(body)


def pubsub(data: dict[str, Any] | bytes) -> bytes:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    message = {
        "data": base64.b64encode(raw).decode(),
        "messageId": "1",
        "publishTime": "2026-01-02T03:04:05.678Z",
    }
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


AR = "europe-west1-docker.pkg.dev/proj/repo/img"


def test_pubsub_artifact_registry_notifications() -> None:
    [push] = parse_pubsub(pubsub({"action": "INSERT", "digest": f"{AR}@{D}", "tag": f"{AR}:1.0"})).notices
    assert (push.action, push.host, push.repository, push.tag, push.digest) == (
        PUSH,
        "europe-west1-docker.pkg.dev",
        "proj/repo/img",
        "1.0",
        D,
    )
    assert push.time is not None
    [untagged] = parse_pubsub(pubsub({"action": "INSERT", "digest": f"{AR}@{D}"})).notices
    assert (untagged.tag, untagged.digest) == (None, D)
    [gone] = parse_pubsub(pubsub({"action": "DELETE", "tag": f"{AR}:1.0"})).notices
    assert (gone.action, gone.tag) == (DELETE, "1.0")
    assert parse_pubsub(pubsub({"action": "UPDATE", "tag": f"{AR}:1.0"})).ignored == 1
    mixed = {"action": "INSERT", "digest": f"{AR}-other@{D}", "tag": f"{AR}:1.0"}
    assert parse_pubsub(pubsub(mixed)).ignored == 1


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"message": {}}',
        json.dumps({"message": {"data": "%%%"}}).encode(),
        pubsub(b"not json"),
        pubsub(b"[1]"),
    ],
)
def test_pubsub_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_pubsub(body)


def test_generic_bodies() -> None:
    [n] = parse_generic(b'{"image": "reg.example:5000/apps/web:v2"}').notices
    assert (n.action, n.host, n.repository, n.tag, n.digest, n.time) == (
        PUSH,
        "reg.example:5000",
        "apps/web",
        "v2",
        None,
        None,
    )
    [n] = parse_generic(
        json.dumps({"image": f"docker.io/library/redis:7@{D}", "action": "delete"}).encode()
    ).notices
    assert (n.action, n.host, n.repository, n.tag, n.digest) == (DELETE, "docker.io", "library/redis", "7", D)
    # What a replica hands over is read back as the same notice.
    original = Notice(PUSH, "reg.example:5000", "apps/web", "v1", D, 1700000000.25)
    assert parse_generic(json.dumps(original.to_generic()).encode()).notices == (original,)
    for bad in (
        b'{"image": "web"}',
        b'{"image": "reg.example/apps/web"}',
        b'{"image": 3}',
        b'{"image": "h.io/a:v1", "action": "x"}',
    ):
        with pytest.raises(MalformedEvent):
            parse_generic(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_hostile_bodies_parse_or_are_refused(body: bytes) -> None:
    for parse in (parse_distribution, parse_pubsub, parse_generic):
        with contextlib.suppress(MalformedEvent):
            parse(body)


SRC = "reg.example:5000/apps"
CONFIG = parse_config(
    f"""
version: 1
jobs:
  - {{name: apps, source: "{SRC}/*", destinations: [d.example/m], tags: {{include: ["^v"]}}, prune: true}}
  - {{name: web, source: "{SRC}/web", destinations: [d.example/w]}}
  - {{name: newest, source: "{SRC}/web", destinations: [d.example/n], tags: {{latest: 2}}}}
  - {{name: pinned, source: "{SRC}/web@{D}", destinations: [d.example/p]}}
  - {{name: tagged, source: "{SRC}/web:v1", destinations: [d.example/t]}}
  - {{name: layout, source: "oci:/srv/web", destinations: [d.example/l]}}
"""
)
JOBS = [job_spec(CONFIG, j) for j in CONFIG.jobs]


def routes(notice: Notice) -> dict[str, tuple[str, str, str]]:
    return {r.job: (r.mode, r.read, r.write) for r in route(notice, JOBS)}


def test_a_push_reaches_the_jobs_whose_source_and_filter_cover_it() -> None:
    push = Notice(PUSH, "reg.example:5000", "apps/web", "v1", D, 1.0)
    assert routes(push) == {
        "apps": (COPY, D, "v1"),
        "web": (COPY, D, "v1"),
        "newest": (REFRESH, "", "v1"),
        "pinned": (COPY, D, D),
        "tagged": (COPY, D, "v1"),
    }
    first = route(push, JOBS)[0]
    assert first.key == "reg.example:5000/apps/web" and first.time == 1.0
    # A tag the filter excludes, another repository, another registry, no tag.
    assert set(routes(Notice(PUSH, "reg.example:5000", "apps/web", "dev", "sha256:" + "1" * 64))) == {
        "web",
        "newest",
    }
    assert set(routes(Notice(PUSH, "reg.example:5000", "apps/api", "v1", D))) == {"apps"}
    assert routes(Notice(PUSH, "other.example", "apps/web", "v1", D)) == {}
    assert set(routes(Notice(PUSH, "reg.example:5000", "apps/web", None, D))) == {"pinned"}


def test_a_referrers_fallback_tag_is_planned_with_its_subject() -> None:
    config = parse_config(f"""
version: 1
jobs:
  - {{name: signed, source: "{SRC}/web", destinations: [d.example/s], referrers: true}}
  - {{name: plain, source: "{SRC}/web", destinations: [d.example/p]}}
""")
    jobs = [job_spec(config, j) for j in config.jobs]
    signature = Notice(PUSH, "reg.example:5000", "apps/web", "sha256-" + "ab" * 32 + ".sig", D)
    assert {r.job: r.mode for r in route(signature, jobs)} == {"signed": REFRESH, "plain": COPY}


def test_a_deletion_only_triggers_the_prune_check_of_jobs_that_prune() -> None:
    assert routes(Notice(DELETE, "reg.example:5000", "apps/web", "v1", None)) == {"apps": (PRUNE, "", "")}
    assert routes(Notice(DELETE, "reg.example:5000", "apps/web", "dev", None)) == {}  # not covered
    assert routes(Notice(DELETE, "reg.example:5000", "apps/web", None, D)) == {"apps": (PRUNE, "", "")}


async def test_image_locks_serialise_one_image_and_never_deadlock() -> None:
    locks = ImageLocks()
    a, b, c = ("j", "r", "a"), ("j", "r", "b"), ("j", "r", "c")
    order: list[str] = []
    first = await locks.acquire([b, a])

    async def second() -> None:
        async with locks.hold([c, a]):  # waits for a (held by first); takes c first? no: sorted
            order.append("second")

    task = asyncio.create_task(second())
    await asyncio.sleep(0.01)
    assert not task.done() and locks.busy(a) and not locks.busy(c)
    order.append("first")
    first.release(a)  # one image done: the waiter proceeds while b is still held
    await asyncio.wait_for(task, 1)
    assert order == ["first", "second"] and locks.busy(b)
    first.release_all()
    assert len(locks) == 0
    # Cancelling a waiter leaves nothing behind.
    held = await locks.acquire([a])
    waiter = asyncio.create_task(locks.acquire([a]))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    held.release_all()
    assert len(locks) == 0
