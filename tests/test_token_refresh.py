"""Tokens are refreshed before they expire: a copy spanning several token lifetimes, behind a proxy
that refuses any request carrying an expired token (no leeway, unlike distribution's 60 s)."""

from __future__ import annotations

import time
from typing import Any

from mirror.daemon.cli import main
from tests.support.faults import Delay
from tests.support.images import fetch_manifest, push_index


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
