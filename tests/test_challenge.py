"""WWW-Authenticate parsing, token responses, retry delays, URL rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from mirror.transport.challenge import parse_challenges, pick_challenge
from mirror.transport.lifetime import refresh_margin
from mirror.transport.retry import RetryPolicy, parse_retry_after
from mirror.transport.tokens import parse_token_response
from mirror.transport.urls import next_link, resolve_location, with_digest
from mirror.types.errors import AuthError, UnsafeRequest


def test_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    ch = pick_challenge(header)
    assert ch is not None and ch.scheme == "bearer"
    assert ch.realm == "https://auth.docker.io/token"
    assert ch.service == "registry.docker.io"
    assert ch.scopes == ("repository:library/alpine:pull",)


def test_several_challenges_prefers_bearer() -> None:
    found = parse_challenges('Basic realm="x", Bearer realm="https://a/t", service="s"')
    assert [c.scheme for c in found] == ["basic", "bearer"]
    ch = pick_challenge('Basic realm="x", Bearer realm="https://a/t", service="s"')
    assert ch is not None and ch.scheme == "bearer" and ch.service == "s"


def test_quoted_escapes_and_unquoted() -> None:
    ch = pick_challenge(r'Bearer realm="https://a/t\"x", service=plain, error="insufficient_scope"')
    assert ch is not None and ch.realm == 'https://a/t"x' and ch.service == "plain"
    assert pick_challenge("Basic realm=Registry") is not None
    assert pick_challenge("Negotiate abc") is None
    assert pick_challenge("") is None


@given(st.text(max_size=500))
def test_challenge_parser_never_raises(header: str) -> None:
    parse_challenges(header)
    pick_challenge(header)


def test_token_response() -> None:
    tok = parse_token_response(b'{"token":"abc","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}', 2e9)
    assert tok.value == "abc" and tok.lifetime == 300
    tok2 = parse_token_response(b'{"access_token":"xyz"}', 100.0)
    assert tok2.value == "xyz" and tok2.expires_at == 160.0  # default 60 s
    future_issue = parse_token_response(
        b'{"token":"a","expires_in":10,"issued_at":"2999-01-01T00:00:00Z"}', 50.0
    )
    assert future_issue.issued_at == 50.0
    for bad in (b"nope", b"[]", b"{}", b'{"token": ""}', b"x" * 70000):
        with pytest.raises(AuthError):
            parse_token_response(bad, 0.0)
    assert "abc" not in repr(tok)
    assert refresh_margin(60) == 6.0 and refresh_margin(3600) == 30.0 and refresh_margin(2) == 0.5


def test_retry_policy() -> None:
    policy = RetryPolicy(attempts=4, base=1.0, cap=5.0)
    assert policy.delay(1, rand=0.0) == 0.5
    assert policy.delay(3, rand=1.0) == 4.0
    assert policy.delay(10, rand=1.0) == 5.0
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=1e9) == policy.retry_after_cap
    assert parse_retry_after("12", 0) == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("garbage", 0) is None


def test_location_and_links() -> None:
    base = URL("https://reg.example/v2/a/blobs/uploads/")
    loc = resolve_location(base, "/v2/a/blobs/uploads/uuid?_state=abc")
    assert str(with_digest(loc, "sha256:00")) == (
        "https://reg.example/v2/a/blobs/uploads/uuid?_state=abc&digest=sha256:00"
    )
    absolute = resolve_location(base, "https://other.example/upload?x=1")
    assert absolute.host == "other.example"
    with pytest.raises(UnsafeRequest):
        resolve_location(base, "file:///etc/passwd")
    with pytest.raises(UnsafeRequest):
        resolve_location(base, "http://evil.example/x")
    nxt = next_link(URL("https://reg.example/v2/_catalog?n=2"), '</v2/_catalog?last=b&n=2>; rel="next"')
    assert nxt == URL("https://reg.example/v2/_catalog?last=b&n=2")
    assert next_link(URL("https://reg.example/v2/x"), None) is None
    with pytest.raises(UnsafeRequest):
        next_link(URL("https://reg.example/v2/x"), '<https://evil.example/v2/x>; rel="next"')


async def test_read_bounded_reads_a_body_that_arrives_in_pieces() -> None:
    import asyncio
    from unittest import mock

    import aiohttp

    from mirror.transport.errors import read_bounded

    reader = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())

    async def feed() -> None:
        for piece in (b"abc", b"defg", b"hij"):
            reader.feed_data(piece)
            await asyncio.sleep(0.01)
        reader.feed_eof()

    task = asyncio.create_task(feed())
    assert await read_bounded(reader, 100) == b"abcdefghij"
    await task
    short = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    short.feed_data(b"x" * 50)
    short.feed_eof()
    assert len(await read_bounded(short, 10)) == 11  # one byte over: the caller sees it is too long
