"""No request whose answer is already known: what a cold copy sends, counted at the wire."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import mirror.copy.blobs as blobs
import mirror.copy.engine as engine
from mirror.auth.credentials import StaticProvider
from mirror.cli.main import main
from mirror.registry.distribution import RegistryRepository
from mirror.transport.client import HostOptions, Transport
from tests.support.check import assert_complete
from tests.support.images import fetch_manifest, layer, push_blob, push_image

KiB = 1024


def copy(src: str, dst: str) -> int:
    return main(["copy", src, dst])


def check(dst: Any, repo: str, tag: str, digest: str) -> None:
    assert fetch_manifest(dst, repo, tag).digest == digest
    assert_complete(dst, repo)


def test_cold_copy_reads_the_tag_once_and_skips_blob_heads_in_an_empty_repository(
    registry_pair: Any, proxy_factory: Any
) -> None:
    src, dst = registry_pair
    img = push_image(src, "apps/web", "v1", layer_sizes=(4 * KiB, 8 * KiB), seed="economy")
    sproxy, dproxy = proxy_factory.start(src), proxy_factory.start(dst)
    assert copy(f"{sproxy.host}/apps/web:v1", f"{dproxy.host}/mirror/web:v1") == 0
    check(dst, "mirror/web", "v1", img.digest)
    # Source: the manifest by tag with one GET (no HEAD first), then each blob once.
    assert not sproxy.select("HEAD")
    assert [r.path for r in sproxy.select("GET", "/manifests/")] == ["/v2/apps/web/manifests/v1"]
    assert len(sproxy.select("GET", "/blobs/")) == 3  # config + two layers
    # Destination: the tag HEAD found nothing, one tag listing showed an empty repository, so
    # no blob HEAD; then one POST + one PUT per blob and the manifest.
    assert [r.path for r in dproxy.select("HEAD")] == ["/v2/mirror/web/manifests/v1"]
    assert [r.query for r in dproxy.select("GET", "/tags/list")] == ["n=1"]
    assert len(dproxy.select("POST", "/blobs/uploads/")) == len(dproxy.select("PUT", "/blobs/uploads/")) == 3
    assert len(dproxy.select("PUT", "/manifests/")) == 1


def test_large_blobs_are_still_looked_for_in_an_empty_repository(
    registry_pair: Any, proxy_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted run may have left a large blob without a tag: it is found, not sent again."""
    monkeypatch.setattr(blobs, "EMPTY_REPO_HEAD_SKIP_MAX", 6 * KiB)
    src, dst = registry_pair
    img = push_image(src, "apps/web", "v1", layer_sizes=(4 * KiB, 8 * KiB), seed="large")
    big = next(spec for spec in img.layers if spec.size == 8 * KiB)
    push_blob(dst, "mirror/web", b"".join(big.chunks()))  # left behind, no manifest, no tag
    dproxy = proxy_factory.start(dst)
    assert copy(f"{src.host}/apps/web:v1", f"{dproxy.host}/mirror/web:v1") == 0
    # Only the blob over the limit was looked for (found: not sent again); the small ones not.
    assert [r.path.rsplit("/", 1)[1] for r in dproxy.select("HEAD", "/blobs/")] == [big.digest]
    assert not [r for r in dproxy.select("PUT", "/blobs/uploads/") if big.digest in r.query]
    assert len(dproxy.select("PUT", "/blobs/uploads/")) == 2  # config + the small layer
    check(dst, "mirror/web", "v1", img.digest)


def test_blobs_are_looked_for_in_a_repository_that_has_tags(registry_pair: Any, proxy_factory: Any) -> None:
    src, dst = registry_pair
    push_image(src, "apps/web", "v1", layer_sizes=(4 * KiB,), seed="first")
    img = push_image(src, "apps/web", "v2", layer_sizes=(4 * KiB,), seed="second")
    assert copy(f"{src.host}/apps/web:v1", f"{dst.host}/mirror/web:v1") == 0
    dproxy = proxy_factory.start(dst)
    assert copy(f"{src.host}/apps/web:v2", f"{dproxy.host}/mirror/web:v2") == 0
    assert len(dproxy.select("HEAD", "/blobs/")) == 2  # config + layer
    # Whether the repository has any tag is one short listing, however many tags it holds.
    assert [r.query for r in dproxy.select("GET", "/tags/list")] == ["n=1"]
    check(dst, "mirror/web", "v2", img.digest)


async def test_list_tags_with_a_limit_stops_after_the_first_page(
    registry_pair: Any, proxy_factory: Any
) -> None:
    src, _dst = registry_pair
    for tag in ("a", "b", "c"):
        push_image(src, "apps/many", tag, layer_sizes=(KiB,), seed=f"many-{tag}")
    proxy = proxy_factory.start(src)
    async with Transport(StaticProvider({})) as transport:
        repo = RegistryRepository(transport, proxy.host, "apps/many")
        first = await repo.list_tags(limit=2)  # the registry chooses which two
        assert len(first) == 2 and set(first) <= {"a", "b", "c"}
        assert sorted(await repo.list_tags()) == ["a", "b", "c"]
    assert [r.query for r in proxy.select("GET", "/tags/list")] == ["n=2", "n=1000"]


async def test_per_host_slots_bound_the_connections_and_reuse_them(registry: Any, proxy_factory: Any) -> None:
    """60 concurrent HEADs with max_concurrency 4 go over at most 4 connections, each reused:
    a finished request's connection is back in the pool before the next request takes its slot."""
    push_image(registry, "apps/web", "v1", layer_sizes=(KiB,), seed="slots")
    proxy = proxy_factory.start(registry)
    options = {proxy.host: HostOptions(plain_http=True, max_concurrency=4)}
    async with Transport(StaticProvider({}), options=options) as transport:
        repo = RegistryRepository(transport, proxy.host, "apps/web")
        heads = await asyncio.gather(*(repo.head_manifest("v1") for _ in range(60)))
    assert len({h.digest for h in heads if h is not None}) == 1
    peers = {r.peer for r in proxy.select("HEAD")}
    assert len(proxy.select("HEAD")) == 60 and 1 <= len(peers) <= 4


def test_a_repository_filled_by_digest_is_not_taken_for_empty(registry_pair: Any, proxy_factory: Any) -> None:
    """Copies pinned by digest leave no tag: the next one still looks for the blobs it shares."""
    src, dst = registry_pair
    base = [layer(8 * KiB, "pinned-base")]
    one = push_image(src, "apps/pinned", "one", layer_sizes=(KiB,), seed="one", base_layers=base)
    two = push_image(src, "apps/pinned", "two", layer_sizes=(KiB,), seed="two", base_layers=base)
    assert copy(f"{src.host}/apps/pinned@{one.digest}", f"{dst.host}/mirror/pinned@{one.digest}") == 0
    dproxy = proxy_factory.start(dst)
    assert copy(f"{src.host}/apps/pinned@{two.digest}", f"{dproxy.host}/mirror/pinned@{two.digest}") == 0
    assert not dproxy.select("GET", "/tags/list")
    shared = base[0].digest
    assert [r.path.rsplit("/", 1)[1] for r in dproxy.select("HEAD", "/blobs/") if shared in r.path] == [
        shared
    ]
    assert not [r for r in dproxy.select("PUT", "/blobs/uploads/") if shared in r.query]
    assert fetch_manifest(dst, "mirror/pinned", two.digest).digest == two.digest


async def test_what_one_run_learnt_about_empty_repositories_is_not_reused(
    registry_pair: Any, proxy_factory: Any
) -> None:
    """Images then referrers are two runs of one engine: the first tags the repository, so in
    the second a blob already there is looked for, not uploaded again."""
    src, dst = registry_pair
    push_image(src, "apps/web", "v1", layer_sizes=(KiB,), seed="r1")
    v2 = push_image(src, "apps/web", "v2", layer_sizes=(2 * KiB,), seed="r2")
    present = v2.layers[-1]
    dproxy = proxy_factory.start(dst)
    async with Transport(StaticProvider({})) as transport:
        source = RegistryRepository(transport, src.host, "apps/web")
        target = RegistryRepository(transport, dproxy.host, "mirror/web")
        engine_ = engine.CopyEngine()
        first = await engine_.run([engine.CopyTask(source, "v1", [engine.Destination(target, "v1")])])
        push_blob(dst, "mirror/web", b"".join(present.chunks()))  # arrives between the two runs
        dproxy.clear()
        second = await engine_.run([engine.CopyTask(source, "v2", [engine.Destination(target, "v2")])])
    assert first[0].ok and second[0].ok
    assert [r.path for r in dproxy.select("HEAD", "/blobs/") if present.digest in r.path]
    assert not [r for r in dproxy.select("PUT", "/blobs/uploads/") if present.digest in r.query]
