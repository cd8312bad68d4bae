"""Sharding: parsing --shard, rendezvous ownership, balance, and minimal movement on resize."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.service.shard import (
    SINGLE,
    Shard,
    describe,
    ordinal,
    owned,
    owner,
    owns,
    parse_shard,
    weight,
)
from mirror.types.errors import InputError

KEYS = [f"registry.example.com/team{i % 37}/app-{i}" for i in range(4000)]


@pytest.mark.parametrize(
    ("text", "hostname", "expected"),
    [
        ("2/5", None, Shard(2, 5)),
        ("0/1", None, Shard(0, 1)),
        (" 4 / 5 ", None, Shard(4, 5)),
        ("auto/5", "mirror-3", Shard(3, 5)),
        ("AUTO/5", "mirror-0", Shard(0, 5)),
        ("auto/12", "my-mirror-sts-11", Shard(11, 12)),
        ("auto/5", "mirror-3.mirror.default.svc.cluster.local", Shard(3, 5)),
    ],
)
def test_parse_shard(text: str, hostname: str | None, expected: Shard) -> None:
    assert parse_shard(text, hostname=hostname) == expected


@pytest.mark.parametrize(
    ("text", "hostname", "message"),
    [
        ("2", None, "INDEX/COUNT"),
        ("", None, "INDEX/COUNT"),
        ("/5", None, "INDEX/COUNT"),
        ("2/", None, "INDEX/COUNT"),
        ("5/5", None, "between 0 and 4"),
        ("-1/5", None, "whole number"),
        ("1.0/5", None, "whole number"),
        ("x/5", None, "whole number or 'auto'"),
        ("1/x", None, "COUNT must be a whole number"),
        ("0/0", None, "between 1 and"),
        ("auto/5", "mirror", "ending in -N"),
        ("auto/5", "mirror-", "ending in -N"),
        ("auto/5", "", "ending in -N"),
        ("auto/3", "mirror-3", "ordinal 3"),
    ],
)
def test_parse_shard_errors(text: str, hostname: str | None, message: str) -> None:
    with pytest.raises(InputError, match="--shard") as info:
        parse_shard(text, hostname=hostname)
    assert message in str(info.value)


def test_auto_defaults_to_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "mirror-2")
    assert parse_shard("auto/4") == Shard(2, 4)


def test_ordinal() -> None:
    assert ordinal("mirror-7") == 7
    with pytest.raises(InputError):
        ordinal("laptop")


def test_shard_validates_and_formats() -> None:
    assert str(Shard(2, 5)) == "2/5"
    assert not SINGLE.sharded and Shard(0, 2).sharded
    with pytest.raises(InputError):
        Shard(5, 5)
    with pytest.raises(InputError):
        Shard(0, 0)
    with pytest.raises(InputError):
        owner("x", 0)


def test_weight_is_stable_across_processes() -> None:
    # Fixed values: replicas of different versions and processes must agree on ownership.
    assert weight(0, "docker.io/library/nginx") == weight(0, "docker.io/library/nginx")
    assert weight(0, "a") != weight(1, "a")
    assert weight(3, "docker.io/library/nginx") == _blake(3, "docker.io/library/nginx")


def _blake(index: int, key: str) -> int:
    import hashlib

    digest = hashlib.blake2b(
        index.to_bytes(4, "big") + key.encode(), digest_size=8, person=b"mirror-shard-v1"
    ).digest()
    return int.from_bytes(digest, "big")


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_every_key_owned_by_exactly_one_shard(count: int) -> None:
    shards = [Shard(i, count) for i in range(count)]
    for key in KEYS[:500]:
        owners = [s.index for s in shards if owns(s, key)]
        assert owners == [owner(key, count)]


@given(key=st.text(max_size=200), count=st.integers(min_value=1, max_value=40))
@settings(max_examples=200, deadline=None)
def test_exactly_one_owner_for_any_key(key: str, count: int) -> None:
    assert sum(owns(Shard(i, count), key) for i in range(count)) == 1
    assert 0 <= owner(key, count) < count


@pytest.mark.parametrize("count", [2, 5, 10])
def test_distribution_is_roughly_even(count: int) -> None:
    counts = collections.Counter(owner(key, count) for key in KEYS)
    expected = len(KEYS) / count
    assert set(counts) == set(range(count))
    for n in counts.values():
        assert abs(n - expected) < 0.2 * expected, counts


@given(st.lists(st.text(min_size=1, max_size=30), min_size=600, max_size=600, unique=True))
@settings(max_examples=15, deadline=None)
def test_distribution_is_roughly_even_for_arbitrary_keys(keys: list[str]) -> None:
    counts = collections.Counter(owner(key, 3) for key in keys)
    for index in range(3):
        assert 120 < counts[index] < 280, counts


@pytest.mark.parametrize("n", [1, 2, 4, 9])
def test_growing_moves_about_one_in_n_plus_one_and_only_onto_the_new_shard(n: int) -> None:
    before = {key: owner(key, n) for key in KEYS}
    after = {key: owner(key, n + 1) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == n for key in moved)
    expected = len(KEYS) / (n + 1)
    assert abs(len(moved) - expected) < 0.15 * expected, (len(moved), expected)


def test_shrinking_moves_only_the_removed_shards_keys() -> None:
    before = {key: owner(key, 6) for key in KEYS}
    after = {key: owner(key, 5) for key in KEYS}
    for key in KEYS:
        if before[key] != 5:
            assert after[key] == before[key]


def test_owned_and_describe() -> None:
    keys = [*KEYS[:100], KEYS[0]]
    shards = [Shard(i, 3) for i in range(3)]
    parts = [owned(s, keys) for s in shards]
    assert sorted(k for part in parts for k in part) == sorted(set(keys))
    doc = describe(shards[1], keys)
    assert doc["shard"] == "1/3" and doc["index"] == 1 and doc["count"] == 3
    assert doc["total"] == 100 and doc["owned"] == len(parts[1])
    assert doc["repositories"] == parts[1]
    assert describe(SINGLE, keys)["owned"] == 100
