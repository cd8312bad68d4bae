"""Tag selection: include/exclude patterns, semver ranges, newest N, deterministic order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.jobs.filters import TagFilter, compile_pattern, parse_range, select_tags, semver_of, sort_tags
from mirror.types.errors import ConfigError

TAGS = [
    "latest",
    "stable",
    "v1.2.3",
    "1.2.4",
    "1.3.0-rc.1",
    "1.10.0",
    "v2.0.0",
    "2.0.1-alpine",
    "1.25",
    "20240101",
    "sha256-" + "a" * 64,
    "0.9.0",
]


def build(**kw: object) -> TagFilter:
    return TagFilter.build(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, sort_tags(TAGS)),
        ({"include": ["^v"]}, ["v1.2.3", "v2.0.0"]),
        ({"include": ["^v", "^stable$"]}, ["stable", "v1.2.3", "v2.0.0"]),
        ({"include": ["table"]}, ["stable"]),  # search: anywhere in the tag
        (
            {"exclude": ["-", r"^\d+$", "^sha256-"]},
            ["1.25", "latest", "stable", "0.9.0", "v1.2.3", "1.2.4", "1.10.0", "v2.0.0"],
        ),
        (
            {"include": [r"^v?\d"], "exclude": ["-rc", "alpine"]},
            ["1.25", "20240101", "0.9.0", "v1.2.3", "1.2.4", "1.10.0", "v2.0.0"],
        ),
        ({"semver": ">=1.2 <2"}, ["v1.2.3", "1.2.4", "1.10.0"]),  # pre-releases excluded
        ({"semver": "^1.2"}, ["v1.2.3", "1.2.4", "1.10.0"]),
        ({"semver": "~1.2"}, ["v1.2.3", "1.2.4"]),
        ({"semver": ">=1.3.0-rc.0 <1.4"}, ["1.3.0-rc.1"]),  # named pre-release line
        ({"semver": "2.x"}, ["v2.0.0"]),
        ({"semver": "*"}, ["0.9.0", "v1.2.3", "1.2.4", "1.10.0", "v2.0.0"]),
        ({"semver": "<1 || >=2"}, ["0.9.0", "v2.0.0"]),
        ({"latest": 2}, ["v2.0.0", "2.0.1-alpine"]),  # 2.0.1-alpine is a pre-release above 2.0.0
        ({"latest": 2, "exclude": ["-"]}, ["1.10.0", "v2.0.0"]),
        ({"latest": 100}, ["0.9.0", "v1.2.3", "1.2.4", "1.3.0-rc.1", "1.10.0", "v2.0.0", "2.0.1-alpine"]),
        ({"exclude": ["^v"], "latest": 2}, ["1.10.0", "2.0.1-alpine"]),
        ({"semver": "<2", "latest": 2}, ["1.2.4", "1.10.0"]),
        ({"include": ["^nothing$"]}, []),
    ],
)
def test_select_tags(kw: dict[str, object], expected: list[str]) -> None:
    assert select_tags(TAGS, build(**kw)) == expected


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("1.2.3", "1.2.3"),
        ("v1.2.3", "1.2.3"),
        ("1.2.3-rc.1", "1.2.3-rc.1"),
        ("v10.20.30-alpine", "10.20.30-alpine"),
        ("1.2", None),
        ("1", None),
        ("latest", None),
        ("V1.2.3", None),
        ("vv1.2.3", None),
        ("01.2.3", None),
        ("1.2.3_x", None),
        ("20240101", None),
    ],
)
def test_semver_of(tag: str, version: str | None) -> None:
    parsed = semver_of(tag)
    assert (None if parsed is None else str(parsed)) == version


def test_sort_tags_order() -> None:
    assert sort_tags(["v1.0.0", "b", "1.0.0", "a", "0.1.0", "a"]) == ["a", "b", "0.1.0", "1.0.0", "v1.0.0"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a(", "missing \\), unterminated subpattern at position 1"),
        ("*x", "nothing to repeat at position 0"),
        ("[z-a]", "bad character range"),
    ],
)
def test_compile_pattern_rejects(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        compile_pattern(pattern)
    assert "not a valid regular expression" in info.value.message


def test_compile_pattern_rejects_non_text() -> None:
    with pytest.raises(ConfigError, match="expected a regular expression"):
        compile_pattern(5)


@pytest.mark.parametrize("text", ["garbage", "", "  ", ">=", "1.2.3.4.5", None])
def test_parse_range_rejects(text: object) -> None:
    with pytest.raises(ConfigError, match="semver range"):
        parse_range(text)


def test_build_rejects_latest_below_one() -> None:
    with pytest.raises(ConfigError, match="latest must be at least 1"):
        TagFilter.build(latest=0)


def test_keeps_everything() -> None:
    assert TagFilter().keeps_everything
    assert not build(latest=1).keeps_everything


# -- properties ---------------------------------------------------------------------------------

tag_text = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
semver_tag = st.builds(
    lambda v, a, b, c, pre: f"{v}{a}.{b}.{c}{pre}",
    st.sampled_from(["", "v"]),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.sampled_from(["", "-rc.1", "-alpine", "-beta"]),
)
tags_strategy = st.lists(tag_text | semver_tag, max_size=40)
filters = st.builds(
    build,
    include=st.lists(st.sampled_from(["^v", "rc", r"^\d", "a", "^1\\."]), max_size=2),
    exclude=st.lists(st.sampled_from(["-", "alpine", "^latest$", "x"]), max_size=2),
    semver=st.none() | st.sampled_from([">=1.2 <2", "^1.4", "~2.0", "*", "1.x", "<5 || >=20"]),
    latest=st.none() | st.integers(1, 10),
)


@given(tags=tags_strategy, tag_filter=filters)
def test_selection_properties(tags: list[str], tag_filter: TagFilter) -> None:
    chosen = select_tags(tags, tag_filter)
    assert set(chosen) <= set(tags)
    assert len(chosen) == len(set(chosen))
    assert chosen == sort_tags(chosen)
    assert select_tags(chosen, tag_filter) == chosen  # idempotent
    assert select_tags(list(reversed(tags)), tag_filter) == chosen  # input order does not matter
    if tag_filter.latest is not None:
        assert len(chosen) <= tag_filter.latest
        assert all(semver_of(t) is not None for t in chosen)
    for tag in chosen:
        assert tag_filter.matches(tag)


@given(tags=tags_strategy, n=st.integers(1, 10))
def test_latest_keeps_the_highest_versions(tags: list[str], n: int) -> None:
    chosen = select_tags(tags, TagFilter(latest=n))
    versions = sorted({semver_of(t) for t in tags if semver_of(t) is not None})
    kept = {semver_of(t) for t in chosen}
    assert kept <= set(versions[-n:])
    if versions:
        assert versions[-1] in kept


@given(tags=tags_strategy)
def test_empty_filter_keeps_every_tag(tags: list[str]) -> None:
    assert select_tags(tags, TagFilter()) == sort_tags(tags)
