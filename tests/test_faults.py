"""Faults survived: each fault from tests/support/faults.py against real registries, through the
recording proxy, on the source side and on the destination side.

After every copy the destination is checked from outside (plain `requests`): the manifest digests
equal the source's, every blob HEADs 200, and no tag points at incomplete content. Every test
asserts how often its faults fired, so a fault that never triggered cannot pass silently.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.registry.distribution import RegistryRepository
from mirror.registry.resume import MAX_RESUMES
from mirror.transport.client import Transport
from mirror.transport.retry import RetryPolicy
from tests.support.check import assert_complete, assert_same_repo, check_complete
from tests.support.faults import (
    Delay,
    ErrorBurst,
    FlipBytes,
    RequestReset,
    Reset,
    SlowBody,
    TooManyRequests,
    Truncate,
)
from tests.support.images import blob_exists, fetch_manifest, list_tags, manifest_exists, push_index
from tests.support.net import wait_until

KiB = 1024
MiB = 1024 * KiB
BIG = 384 * KiB  # the layer the body faults aim at


def copy(
    src: Any,
    dst: Any,
    tmp_path: Path,
    *,
    src_repo: str = "apps/web",
    dst_repo: str = "mirror/web",
    tag: str = "v1",
) -> tuple[int, dict[str, Any]]:
    out = tmp_path / f"report-{time.monotonic_ns()}.json"
    code = main(
        [
            "copy",
            "--quiet",
            f"{src.host}/{src_repo}:{tag}",
            f"{dst.host}/{dst_repo}:{tag}",
            "--report",
            str(out),
        ]
    )
    doc: dict[str, Any] = json.loads(out.read_text())
    return code, doc


def seed(src: Any) -> Any:
    """A two-platform index; each child has a 384 KiB layer and a small one."""
    return push_index(
        src, "apps/web", "v1", ["linux/amd64", "linux/arm64"], layer_sizes=(BIG, 3 * KiB), seed="faults"
    )


def big_layers(idx: Any) -> list[str]:
    return [layer.digest for child in idx.children for layer in child.layers if layer.size == BIG]


def assert_copied(src: Any, dst: Any, code: int, doc: dict[str, Any]) -> None:
    assert code == 0, doc
    assert doc["status"] == "copied", doc
    assert_same_repo(src, "apps/web", dst, "mirror/web")


def assert_nothing_incomplete(dst: Any, repo: str = "mirror/web") -> None:
    if list_tags(dst, repo):
        assert_complete(dst, repo)


# -- 5xx bursts --------------------------------------------------------------------------------


def test_error_bursts_on_the_source(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    seed(src)
    proxy = proxy_factory.start(src)
    faults = [
        # A cold copy reads the top manifest by tag (one GET), its children by digest.
        proxy.add_fault(ErrorBurst(503, times=2, method="GET", path=r"/manifests/(?!sha256:)")),
        proxy.add_fault(ErrorBurst(500, times=2, method="GET", path=r"/manifests/sha256:")),
        proxy.add_fault(ErrorBurst(502, times=3, method="GET", path=r"/blobs/sha256:")),
    ]
    code, doc = copy(proxy, dst, tmp_path)
    assert_copied(src, dst, code, doc)
    assert [f.fired for f in faults] == [2, 2, 3]
    answered = [r.status for r in proxy.records if r.fault == "error-burst"]
    assert sorted(answered) == [500, 500, 502, 502, 502, 503, 503]


def test_error_bursts_on_the_destination(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    seed(src)
    proxy = proxy_factory.start(dst)
    faults = [
        proxy.add_fault(ErrorBurst(503, times=2, method="HEAD", path=r"/manifests/")),
        proxy.add_fault(ErrorBurst(500, times=2, method="POST", path=r"/blobs/uploads/")),
        proxy.add_fault(ErrorBurst(503, times=2, method="PUT", path=r"/blobs/uploads/")),
        proxy.add_fault(ErrorBurst(502, times=2, method="PUT", path=r"/manifests/")),
    ]
    code, doc = copy(src, proxy, tmp_path)
    assert_copied(src, dst, code, doc)
    assert [f.fired for f in faults] == [2, 2, 2, 2]
    # A refused blob PUT carried a whole body; the retry sent it again in full, with Content-Length.
    puts = proxy.select("PUT", "/blobs/uploads/")
    assert all(not r.chunked and r.content_length == r.body_bytes for r in puts)
    assert sum(1 for r in puts if r.status == 503) == 2


def test_persistent_5xx_fails_cleanly(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    seed(src)
    proxy = proxy_factory.start(dst)
    fault = proxy.add_fault(ErrorBurst(503, times=None, method="PUT", path=r"/manifests/v1$"))
    code, doc = copy(src, proxy, tmp_path)
    assert code == 1 and doc["status"] == "failed"
    assert "HTTP 503" in doc["error"] and "/manifests/v1" in doc["error"]
    assert fault.fired == 5  # RetryPolicy().attempts, then it gives up
    assert not manifest_exists(dst, "mirror/web", "v1")
    assert_nothing_incomplete(dst)


# -- 429 + Retry-After -------------------------------------------------------------------------


def test_429_retry_after_is_honoured(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    seed(src)
    sproxy, dproxy = proxy_factory.start(src), proxy_factory.start(dst)
    on_manifest = sproxy.add_fault(TooManyRequests(retry_after=1, method="GET", path=r"/manifests/sha256:"))
    on_upload = dproxy.add_fault(TooManyRequests(retry_after=1, method="PUT", path=r"/blobs/uploads/"))
    code, doc = copy(sproxy, dproxy, tmp_path)
    assert_copied(src, dst, code, doc)
    assert on_manifest.fired == 1 and on_upload.fired == 1
    for proxy, method, part in ((sproxy, "GET", "/manifests/sha256:"), (dproxy, "PUT", "/blobs/uploads/")):
        records = proxy.select(method, part)
        throttled = next(r for r in records if r.status == 429)
        assert throttled.fault == "too-many-requests"
        # The same request was sent again no sooner than Retry-After (1 s) after the 429
        # (a blob PUT goes to a new upload session: the same digest= in its query).
        again = (
            [r for r in records if r is not throttled and r.path == throttled.path]
            if method == "GET"
            else [r for r in records if r is not throttled and _digest(r) == _digest(throttled)]
        )
        assert again, f"no retry after the 429 on {part}"
        assert throttled.finished is not None
        waited = min(r.started for r in again) - throttled.finished
        assert waited >= 0.95, f"retried {waited:.3f}s after a 429 with Retry-After: 1 ({part})"


def _digest(record: Any) -> str | None:
    return dict(record.query_params).get("digest")


# -- connection resets -------------------------------------------------------------------------


def test_reset_mid_body_server_to_client(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    """The source connection is reset while a blob body streams (and once before any answer)."""
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    victim, other = big_layers(idx)
    mid_body = proxy.add_fault(Truncate(100 * KiB, times=2, method="GET", path=victim))
    before = proxy.add_fault(Reset(times=1, method="GET", path=other))
    code, doc = copy(proxy, dst, tmp_path)
    assert_copied(src, dst, code, doc)
    assert mid_body.fired == 2 and before.fired == 1
    assert [r.fault for r in proxy.select("GET", victim)] == ["truncate", "truncate", None]
    assert [(r.fault, r.status) for r in proxy.select("GET", other)] == [("reset", None), (None, 200)]


def test_reset_mid_body_client_to_server(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    """The destination connection is reset while the blob PUT body is being sent."""
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(dst)
    victim = big_layers(idx)[1]
    fault = proxy.add_fault(RequestReset(150 * KiB, times=2, method="PUT", path=r"/blobs/uploads/"))
    code, doc = copy(src, proxy, tmp_path)
    assert_copied(src, dst, code, doc)
    assert fault.fired == 2
    cut = [r for r in proxy.select("PUT", "/blobs/uploads/") if r.fault == "request-reset"]
    assert len(cut) == 2 and all(r.status is None for r in cut)
    assert all(r.content_length == BIG and 0 < r.body_bytes <= 150 * KiB for r in cut)
    assert blob_exists(dst, "mirror/web", victim)


# -- slow responses ----------------------------------------------------------------------------


def test_slow_responses_complete(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    idx = seed(src)
    sproxy, dproxy = proxy_factory.start(src), proxy_factory.start(dst)
    slow_body = sproxy.add_fault(SlowBody(2 * MiB, times=None, method="GET", path=r"/blobs/sha256:"))
    slow_manifest = sproxy.add_fault(Delay(0.3, times=2, method="GET", path=r"/manifests/"))
    slow_push = dproxy.add_fault(Delay(0.3, times=1, method="PUT", path=r"/manifests/v1$"))
    code, doc = copy(sproxy, dproxy, tmp_path)
    assert_copied(src, dst, code, doc)
    assert slow_body.fired == len(idx.blob_digests) and slow_manifest.fired == 2 and slow_push.fired == 1


async def test_read_timeout_on_a_stalled_answer_is_retried(registry_pair: Any, proxy_factory: Any) -> None:
    """An answer slower than the read timeout counts as a temporary failure and is retried."""
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    stall = proxy.add_fault(Delay(2.0, times=1, method="GET", path=r"/manifests/sha256:"))
    async with Transport(read_timeout=0.5, retry=RetryPolicy(base=0.05)) as transport:
        engine = CopyEngine()
        task = CopyTask(
            RegistryRepository(transport, proxy.host, "apps/web"),
            "v1",
            [Destination(RegistryRepository(transport, dst.host, "mirror/web"), "v1")],
        )
        try:
            [result] = await engine.run([task])
        finally:
            await engine.aclose()
    assert result.ok, result
    assert stall.fired == 1
    gets = [r.path for r in proxy.select("GET", "/manifests/sha256:")]
    assert len(gets) == len(set(gets)) + 1  # the stalled GET, then its retry
    assert fetch_manifest(dst, "mirror/web", "v1").digest == idx.digest
    assert_complete(dst, "mirror/web")


# -- truncated bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["headers-only", "all-but-last-byte"])
def test_truncated_blob_is_fetched_again(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path, cut: str
) -> None:
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    victim = big_layers(idx)[0]
    fault = proxy.add_fault(Truncate(0 if cut == "headers-only" else BIG - 1, method="GET", path=victim))
    code, doc = copy(proxy, dst, tmp_path)
    assert_copied(src, dst, code, doc)
    assert fault.fired == 1 and len(proxy.select("GET", victim)) == 2


def test_blob_truncated_every_time_never_lands(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    victim = big_layers(idx)[0]
    # Every read, of the whole blob or of its rest from an offset, stops one byte short.
    fault = proxy.add_fault(CutBeforeEnd(times=None, method="GET", path=victim))
    code, doc = copy(proxy, dst, tmp_path)
    assert code == 1 and doc["status"] == "failed"
    dest = doc["images"][0]["destinations"][0]
    assert dest["error_kind"] == "transport", dest
    assert f"{victim}: the connection broke after" in dest["error"], dest
    # Bounded: 5 attempts of the engine, each resumed until 3 resumes in a row brought nothing.
    whole = [r for r in proxy.select("GET", victim) if r.header("Range") is None]
    assert len(whole) == 5 and fault.fired <= 5 * (1 + MAX_RESUMES)
    assert not blob_exists(dst, "mirror/web", victim)
    assert not manifest_exists(dst, "mirror/web", "v1")
    assert_nothing_incomplete(dst)


class CutBeforeEnd(Truncate):
    """Truncate every body one byte before its Content-Length."""

    def on_body(self, ctx: Any, chunks: Any) -> Any:
        self.after_bytes = max(0, int(ctx.upstream_headers.get("Content-Length", "1")) - 1)
        return super().on_body(ctx, chunks)


# -- flipped bytes -----------------------------------------------------------------------------


def test_flipped_blob_bytes_are_never_accepted(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    victim = big_layers(idx)[0]
    fault = proxy.add_fault(FlipBytes(200 * KiB + 3, count=2, times=None, method="GET", path=victim))
    code, doc = copy(proxy, dst, tmp_path)
    assert code == 1 and doc["status"] == "failed"
    dest = doc["images"][0]["destinations"][0]
    assert dest["error_kind"] == "source_corrupt", dest
    assert f"serves corrupt bytes for blob {victim}: two reads hashed to the same wrong" in dest["error"]
    assert fault.fired == 2  # read again once: the same wrong digest again ends it
    assert not blob_exists(dst, "mirror/web", victim)
    assert not manifest_exists(dst, "mirror/web", "v1")
    assert check_complete(dst, "mirror/web") == []
    # A later run, the path clean again, completes the image.
    proxy.clear_faults()
    code, doc = copy(proxy, dst, tmp_path)
    assert_copied(src, dst, code, doc)
    assert len(proxy.select("GET", victim)) == 3  # the two flipped reads, then one in the second run


def test_flipped_manifest_bytes_are_refused(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    child = idx.children[1].digest
    fault = proxy.add_fault(FlipBytes(20, method="GET", path=f"/manifests/{child}"))
    code, doc = copy(proxy, dst, tmp_path)
    assert code == 1 and doc["status"] == "failed"
    assert f"@{child}: the registry served a manifest whose digest is sha256:" in doc["error"], doc
    assert fault.fired == 1
    assert not manifest_exists(dst, "mirror/web", "v1")
    assert_nothing_incomplete(dst)
    code, doc = copy(proxy, dst, tmp_path)
    assert_copied(src, dst, code, doc)


# -- registry restart --------------------------------------------------------------------------


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        result["value"] = fn()

    worker = threading.Thread(target=run)
    worker.start()
    return worker, result


def test_destination_restart_mid_upload(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    """The destination registry process is stopped while a blob PUT streams into it (the source
    read is slowed so the window is wide) and started again on the same port and storage half a
    second later; the copy completes."""
    src, dst = registry_pair
    idx = seed(src)
    sproxy, dproxy = proxy_factory.start(src), proxy_factory.start(dst)
    victim = big_layers(idx)[0]
    slow = sproxy.add_fault(SlowBody(256 * KiB, times=1, method="GET", path=victim))
    worker, result = _in_thread(lambda: copy(sproxy, dproxy, tmp_path))
    try:
        wait_until(
            lambda: any(
                r.finished is None and r.body_bytes > 0 for r in dproxy.select("PUT", "/blobs/uploads/")
            ),
            timeout=20,
            what="a blob PUT in flight",
        )
        dst.restart(down_seconds=0.5)
    finally:
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert_copied(src, dst, *result["value"])
    assert slow.fired == 1
    # The upload in flight lost its upstream; the blob was read again from the source for the retry.
    assert any(r.status in (None, 502) for r in dproxy.select("PUT", "/blobs/uploads/"))
    assert len(sproxy.select("GET", victim)) >= 2


def test_source_restart_mid_run(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    """The source registry process is stopped while a blob GET is held at the proxy (a Delay
    widens the window) and started again a second later; the GET that met the stopped registry
    is retried and the copy completes."""
    src, dst = registry_pair
    idx = seed(src)
    sproxy = proxy_factory.start(src)
    victim = big_layers(idx)[0]
    held = sproxy.add_fault(Delay(0.5, times=1, method="GET", path=victim))
    worker, result = _in_thread(lambda: copy(sproxy, dst, tmp_path))
    try:
        wait_until(lambda: bool(sproxy.select("GET", victim)), timeout=20, what="the held blob GET")
        src.restart(down_seconds=1.0)
    finally:
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert_copied(src, dst, *result["value"])
    assert held.fired == 1
    statuses = [r.status for r in sproxy.select("GET", victim)]
    assert statuses[0] == 502 and statuses[-1] == 200, statuses


def test_persistent_5xx_on_a_blob_read_is_retried_at_one_layer(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """Retries happen at exactly one layer: a blob GET refused every time is sent
    RetryPolicy().attempts times in all, not once per attempt of every layer above."""
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    victim = big_layers(idx)[0]
    fault = proxy.add_fault(ErrorBurst(503, times=None, method="GET", path=victim))
    code, doc = copy(proxy, dst, tmp_path)
    assert code == 1 and doc["status"] == "failed"
    assert f"GET http://{proxy.host}/v2/apps/web/blobs/{victim}: HTTP 503" in doc["error"], doc
    assert fault.fired == len(proxy.select("GET", victim)) == 5
    assert not manifest_exists(dst, "mirror/web", "v1")
    assert_nothing_incomplete(dst)


def test_manifest_body_cut_short_is_fetched_again(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    idx = seed(src)
    proxy = proxy_factory.start(src)
    cut = proxy.add_fault(Truncate(100, times=2, method="GET", path=r"/manifests/"))
    code, doc = copy(proxy, dst, tmp_path)
    assert_copied(src, dst, code, doc)
    assert cut.fired == 2
    assert len(proxy.select("GET", "/manifests/")) == 1 + len(idx.children) + 2
