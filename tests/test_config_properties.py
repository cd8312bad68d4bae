"""Hostile config input: whatever the text or structure, loading ends in a Config or a ConfigError."""

from __future__ import annotations

import copy
import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.jobs.config import Config, format_path, parse_config
from mirror.types.errors import ConfigError

FIELD_NAMES = [
    "version", "concurrency", "metrics", "address", "log", "format", "level", "registries", "defaults",
    "jobs", "name", "source", "destinations", "tags", "include", "exclude", "semver", "latest",
    "platforms", "referrers", "schedule", "interval", "cron", "jitter", "overwrite", "create_repositories",
    "plain_http", "ca_file", "client_cert", "client_key", "username", "password", "password_file", "token",
    "token_file", "identity_token", "identity_token_file", "max_concurrency", "requests_per_second",
    "max_blob_size", "127.0.0.1:5000", "docker.io",
]  # fmt: skip

SCALAR_TEXT = st.sampled_from(
    [
        "", "1", "v1.2.3", "^v", "a(", "[", "*/15 * * * *", "61 * * * *", "@daily", "15m", "0s", "1h30m",
        "5TiB", "5XB", "linux/amd64", "linux", "h.io/apps/*", "h.io/a", "h.io/a:v1", "docker.io/library/*",
        "oci:/srv/x", "s3://bucket/x", "${HOME}", "${MISSING}", "$${x}", "${", "true", "json", "debug",
        "127.0.0.1:9090", ">=1.2 <2", "garbage range", "yes", "null", "~nosuchuser/x", "a\0b", "/etc",
    ]
) | st.text(max_size=20)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    SCALAR_TEXT,
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=10,
)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def check(text: str) -> None:
    try:
        config = parse_config(text, env={"HOME": "/home/x"}, base_dir="/nonexistent-base")
    except ConfigError as exc:
        assert exc.message
        assert "Traceback" not in exc.message
        return
    assert isinstance(config, Config)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(keys, values, max_size=6), version=st.sampled_from([1, 1, 1, 2, "1", None]))
def test_random_structures_give_a_config_or_a_config_error(body: dict[str, Any], version: object) -> None:
    data = dict(body)
    if version is not None:
        data["version"] = version
    check(dump(data))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    jobs=st.lists(st.dictionaries(keys, values, max_size=6), max_size=2),
    registries=st.dictionaries(keys, st.dictionaries(keys, values, max_size=4) | scalars, max_size=2),
    defaults=st.dictionaries(keys, values, max_size=4) | scalars,
)
def test_random_jobs_and_registries(jobs: list[Any], registries: dict[str, Any], defaults: Any) -> None:
    check(dump({"version": 1, "registries": registries, "defaults": defaults, "jobs": jobs}))


@settings(max_examples=300)
@given(text=st.text(max_size=200))
def test_random_text_gives_a_config_or_a_config_error(text: str) -> None:
    check(text)


YAML_PIECES = st.sampled_from(
    [
        "version: 1\n", "jobs:\n", "  - name: a\n", "    source: h.io/a/*\n", "    destinations: [d.io/m]\n",
        "  - ", "&a ", "*a", "!!binary x", "!!set {a}", "? [a]\n: 1\n", "<<: *a\n", "2001-13-01", "{", "]",
        "\t", "'", '"', "${X}", "- ", ": ", "\n", "1e400", "0x1F", "!!python/object:os.system x", "---\n",
        "on: off\n", "%YAML 1.1\n", "...\n", "!!timestamp 2020-99-99", "!!float nan", "!!int x",
    ]
)  # fmt: skip


@settings(max_examples=300)
@given(pieces=st.lists(YAML_PIECES, max_size=25))
def test_yaml_fragments_give_a_config_or_a_config_error(pieces: list[str]) -> None:
    check("".join(pieces))


VALID: dict[str, Any] = {
    "version": 1,
    "concurrency": 4,
    "metrics": {"address": "127.0.0.1:9090"},
    "log": {"format": "json", "level": "info"},
    "registries": {"h.io": {"plain_http": True, "username": "u", "password": "p", "max_concurrency": 3}},
    "defaults": {"overwrite": False, "schedule": {"interval": "15m"}},
    "jobs": [
        {
            "name": "a",
            "source": "h.io/apps/*",
            "destinations": ["d.io/m"],
            "tags": {"include": ["^v"], "exclude": ["-rc"], "semver": ">=1", "latest": 3},
            "platforms": ["linux/amd64"],
            "schedule": {"cron": "*/15 * * * *", "jitter": 0.1},
            "referrers": True,
        }
    ],
}
FIELDS: list[tuple[Any, ...]] = [
    ("concurrency",),
    ("metrics", "address"),
    ("log", "format"),
    ("log", "level"),
    ("registries", "h.io", "max_concurrency"),
    ("registries", "h.io", "username"),
    ("registries", "h.io", "plain_http"),
    ("defaults", "overwrite"),
    ("defaults", "schedule", "interval"),
    ("jobs", 0, "name"),
    ("jobs", 0, "source"),
    ("jobs", 0, "destinations", 0),
    ("jobs", 0, "tags", "include", 0),
    ("jobs", 0, "tags", "semver"),
    ("jobs", 0, "tags", "latest"),
    ("jobs", 0, "platforms", 0),
    ("jobs", 0, "schedule", "cron"),
    ("jobs", 0, "schedule", "jitter"),
    ("jobs", 0, "referrers"),
]
# Never valid for any of the fields above: a mapping with keys no model has.
garbage = st.dictionaries(st.text(min_size=1, max_size=5).map(lambda k: "zz" + k), scalars, min_size=1)


def test_the_base_config_is_valid() -> None:
    assert parse_config(dump(VALID), env={}).jobs[0].name == "a"


@given(field=st.sampled_from(FIELDS), value=garbage)
def test_an_invalid_field_is_reported_at_its_path(field: tuple[Any, ...], value: Any) -> None:
    data = copy.deepcopy(VALID)
    target = data
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = value
    try:
        parse_config(dump(data), env={})
    except ConfigError as exc:
        where = format_path(field)
        assert exc.path == where or exc.path.startswith((where + ".", where + "[")), (exc.path, where)
    else:
        raise AssertionError(f"{format_path(field)} = {value!r} was accepted")


@given(
    field=st.sampled_from([f for f in FIELDS if f[0] != "defaults"]),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_non_finite_numbers_are_refused(field: tuple[Any, ...], value: float) -> None:
    data = copy.deepcopy(VALID)
    target = data
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = value
    try:
        parse_config(dump(data), env={})
    except ConfigError as exc:
        assert exc.path.startswith(format_path(field))
    else:
        raise AssertionError(f"{format_path(field)} = {value!r} was accepted")
