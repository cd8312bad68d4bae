"""Tokens are refreshed before they expire: a copy spanning several token lifetimes, behind a proxy
that refuses any request carrying an expired token (no leeway, unlike distribution's 60 s)."""

from __future__ import annotations

import time
from typing import Any

from mirror.cli.main import main
from tests.support.faults import Delay, ErrorBurst
from tests.support.images import fetch_manifest, push_image, push_index


def test_copy_spans_several_token_lifetimes_without_an_expired_request(
    registry_factory: Any, proxy_factory: Any
) -> None:
    src = registry_factory.start(auth="token", token_ttl=3)
    dst = registry_factory.start()
    idx = push_index(
        src,
        "team/app",
        "v1",
        ["linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x"],
        layer_sizes=(1024, 2048, 4096),
        creds=src.seed_creds,
    )
    proxy = proxy_factory.start(src, reject_expired=True)
    delay = proxy.add_fault(Delay(0.4, times=None, method="GET", path=r"/blobs/sha256:"))
    user, password = src.creds
    started = time.monotonic()
    code = main(
        [
            "copy",
            "--quiet",
            "--concurrency",
            "1",
            "--src-creds",
            f"{user}:{password}",
            f"{proxy.host}/team/app:v1",
            f"{dst.host}/team/app:v1",
        ]
    )
    assert code == 0
    assert fetch_manifest(dst, "team/app", "v1").digest == idx.digest
    assert delay.fired == len(idx.blob_digests) == 16
    spent = time.monotonic() - started
    assert spent > 2 * 3, f"the copy took {spent:.1f}s: not several token lifetimes"
    assert proxy.expired_rejections == 0
    assert not [r for r in proxy.records if r.rejected_expired]
    issued = src.token_server.issued_to(user)
    assert len(issued) >= 3, "tokens were not refreshed during the copy"
    authed = [r for r in proxy.records if r.path != "/v2/"]
    assert authed and all((r.auth_scheme or "").lower() == "bearer" for r in authed)


def test_a_stale_token_is_rechallenged_exactly_once(registry_factory: Any, proxy_factory: Any) -> None:
    src = registry_factory.start()
    dst = registry_factory.start(auth="token", token_ttl=60)
    push_index(src, "team/app", "v1", ["linux/amd64"])
    proxy = proxy_factory.start(dst, reject_expired=True)
    calls = {"n": 0}

    def skewed_once() -> float:
        # The proxy sees the first token it checks as expired, and later ones as they are.
        calls["n"] += 1
        return time.time() + (3600 if calls["n"] == 1 else 0)

    proxy.clock = skewed_once
    duser, dpw = dst.creds
    assert (
        main(
            [
                "copy",
                "--quiet",
                "--dest-creds",
                f"{duser}:{dpw}",
                f"{src.host}/team/app:v1",
                f"{proxy.host}/team/app:v1",
            ]
        )
        == 0
    )
    assert proxy.expired_rejections == 1
    rejected = next(i for i, r in enumerate(proxy.records) if r.rejected_expired)
    retry = proxy.records[rejected + 1]
    assert (retry.method, retry.path) == (proxy.records[rejected].method, proxy.records[rejected].path)
    assert retry.status in (200, 404)


def test_refused_streamed_upload_is_retried_with_a_fresh_source_read(
    registry_pair: Any, proxy_factory: Any
) -> None:
    src, dst = registry_pair
    img = push_image(src, "team/big", "v1", layer_sizes=(3 * 1024 * 1024,))
    sproxy = proxy_factory.start(src)
    dproxy = proxy_factory.start(dst)
    refusal = dproxy.add_fault(ErrorBurst(401, times=1, method="PUT", path=r"/blobs/uploads/"))
    assert main(["copy", "--quiet", f"{sproxy.host}/team/big:v1", f"{dproxy.host}/team/big:v1"]) == 0
    assert refusal.fired == 1
    # The refused blob was read from the source a second time (a streamed body is never buffered
    # for replay) and uploaded again; every other blob moved once.
    assert len(sproxy.select("GET", "/blobs/")) == len(img.blob_digests) + 1
    assert len(dproxy.select("PUT", "/blobs/uploads/")) == len(img.blob_digests) + 1
    assert fetch_manifest(dst, "team/big", "v1").digest == img.digest
