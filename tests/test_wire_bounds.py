"""What a registry's answers may not do to a run: end a blob early, paginate forever, or make it
read a body without bound.

The source is the evil registry (tests/support/evil.py); each test fails before its fix:
- chunked blob bodies whose chunk CRLFs arrive in a later TCP segment were cut at the first
  chunk (`size mismatch: expected 2097152 bytes, got 65536`);
- a `Link` that repeats a page was followed 100,000 times (tags and `_catalog`);
- the body of a 401 answered in the re-challenge path was read whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from mirror.auth.credentials import Credential, StaticProvider
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.registry.distribution import RegistryRepository, list_catalog
from mirror.registry.ocilayout import OciLayout
from mirror.transport.client import Transport
from mirror.transport.retry import RetryPolicy
from mirror.types import mediatypes as mt
from mirror.types.errors import RegistryError
from tests.support.evil import Answer, EvilRegistry

FAST = RetryPolicy(attempts=2, base=0.01, cap=0.05)
BIG = 2 * 1024 * 1024


@pytest.fixture
def evil() -> Iterator[EvilRegistry]:
    with EvilRegistry() as server:
        yield server


async def test_chunked_blob_with_split_crlfs_copies_byte_for_byte(evil: EvilRegistry, tmp_path: Path) -> None:
    data = hashlib.sha256(b"seed").digest() * (BIG // 32)
    image = evil.image("src/app", "v1", seed="chunked", layers=[data])
    layer_digest = image.blobs[1][0]
    evil.blob(
        "src/app",
        data,
        get=Answer(200, {"Content-Type": "application/octet-stream"}, data, split_chunks=64 * 1024),
    )
    async with Transport(retry=FAST) as transport:
        engine = CopyEngine(retry=FAST)
        layout = OciLayout(tmp_path / "out", create=True)
        task = CopyTask(
            RegistryRepository(transport, evil.host, "src/app"), "v1", [Destination(layout, "v1")]
        )
        try:
            [result] = await engine.run([task])
        finally:
            await engine.aclose()
    assert result.ok, result
    algorithm, hex_digest = layer_digest.split(":")
    assert (tmp_path / "out" / "blobs" / algorithm / hex_digest).read_bytes() == data
    assert len(evil.seen("GET", f"/blobs/{layer_digest}")) == 1  # read once, not retried


def _looping_tags(evil: EvilRegistry, path: str, link: str, bodies: list[bytes]) -> list[int]:
    """Serve `bodies` in turn at `path`, each with `link` as next, for the first 50 requests
    (so that a client that does not notice the loop still ends, with 50 requests)."""
    count = [0]

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        count[0] += 1
        body = bodies[(count[0] - 1) % len(bodies)]
        headers = {"Content-Type": "application/json"}
        if count[0] <= 50:
            headers["Link"] = link
        return web.Response(status=200, headers=headers, body=body)

    evil.answer("GET", path, handler)
    return count


async def test_a_tag_list_that_repeats_its_next_link_is_an_error(evil: EvilRegistry) -> None:
    body = json.dumps({"name": "app", "tags": ["a", "b"]}).encode()
    count = _looping_tags(evil, "/v2/app/tags/list", '</v2/app/tags/list?n=1000>; rel="next"', [body])
    async with Transport(retry=FAST) as transport:
        with pytest.raises(RegistryError, match="pagination does not end: its next link repeats"):
            await RegistryRepository(transport, evil.host, "app").list_tags()
    assert count[0] == 1


async def test_a_catalog_that_loops_over_two_pages_is_an_error(evil: EvilRegistry) -> None:
    first = json.dumps({"repositories": ["a"]}).encode()
    count = [0]

    async def page(request: web.BaseRequest) -> web.StreamResponse:
        count[0] += 1
        last = request.query.get("last")
        target = "/v2/_catalog?last=a" if last is None else "/v2/_catalog?n=1000"
        headers = {"Link": f'<{target}>; rel="next"'} if count[0] <= 50 else {}
        return web.Response(
            status=200, headers=headers, body=first if last is None else b'{"repositories":["b"]}'
        )

    evil.answer("GET", "/v2/_catalog", page)
    async with Transport(retry=FAST) as transport:
        with pytest.raises(RegistryError, match="catalog: the registry's pagination does not end"):
            await list_catalog(transport, evil.host)
    assert count[0] == 2


async def test_pages_that_add_nothing_new_end_the_listing(evil: EvilRegistry) -> None:
    """Each next link differs, but the pages repeat the same tags: stopped after a few."""
    count = [0]

    async def page(request: web.BaseRequest) -> web.StreamResponse:
        count[0] += 1
        headers = (
            {"Link": f'</v2/app/tags/list?last=a&page={count[0]}>; rel="next"'} if count[0] <= 50 else {}
        )
        return web.Response(status=200, headers=headers, body=b'{"tags": ["a", "a", "b"]}')

    evil.answer("GET", "/v2/app/tags/list", page)
    async with Transport(retry=FAST) as transport:
        with pytest.raises(RegistryError, match="pages in a row added nothing new"):
            await RegistryRepository(transport, evil.host, "app").list_tags()
    assert count[0] == 5


async def test_a_paginated_tag_list_is_read_whole_without_duplicates(evil: EvilRegistry) -> None:
    async def page(request: web.BaseRequest) -> web.StreamResponse:
        if request.query.get("last") == "b":
            return web.Response(status=200, body=b'{"tags": ["b", "c"]}')
        return web.Response(
            status=200,
            headers={"Link": '</v2/app/tags/list?last=b>; rel="next"'},
            body=b'{"tags": ["a", "b"]}',
        )

    evil.answer("GET", "/v2/app/tags/list", page)
    async with Transport(retry=FAST) as transport:
        assert await RegistryRepository(transport, evil.host, "app").list_tags() == ["a", "b", "c"]


async def test_an_oversize_401_body_in_the_rechallenge_is_not_read_whole(evil: EvilRegistry) -> None:
    """The ping is open; the manifest answers 401 with an endless body until Basic credentials
    come. The client takes the challenge from the headers and reads at most 64 KiB of the body."""
    image = evil.image("app", "v1", seed="challenge")
    manifest_answer = Answer(200, {"Content-Type": mt.OCI_MANIFEST}, image.manifest)

    async def guarded(request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Authorization", "").startswith("Basic "):
            return await evil.respond(request, manifest_answer)
        challenge = Answer(401, {"WWW-Authenticate": 'Basic realm="evil"'}, endless=True)
        return await evil.respond(request, challenge)

    evil.answer("GET", "/v2/app/manifests/v1", guarded)
    provider = StaticProvider({evil.host: Credential(username="u", password="p")})
    async with Transport(provider, retry=FAST) as transport:
        fetched = await RegistryRepository(transport, evil.host, "app").get_manifest("v1")
    assert fetched.raw == image.manifest
    [sent] = evil.endless_sent
    # Before the fix the whole 64 MiB went out (and would have for any size); now the client
    # stops after 64 KiB and what was sent is what socket buffers took.
    assert sent < 32 * 1024 * 1024, sent
