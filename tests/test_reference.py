"""Image reference parsing: table-driven cases and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference
from mirror.types.reference import (
    ImageRef,
    LayoutRef,
    is_loopback_host,
    parse_image,
    parse_reference,
    parse_repository,
)

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128


@pytest.mark.parametrize(
    ("text", "host", "repo", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.19", "docker.io", "library/alpine", "3.19", None),
        ("library/alpine", "docker.io", "library/alpine", "latest", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", None),
        ("localhost:5000/x", "localhost:5000", "x", "latest", None),
        ("localhost/x:y", "localhost", "x", "y", None),
        ("127.0.0.1:5001/apps/web:v1", "127.0.0.1:5001", "apps/web", "v1", None),
        ("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", None),
        (f"ghcr.io/o/r@{D256}", "ghcr.io", "o/r", None, D256),
        (f"ghcr.io/o/r:t@{D512}", "ghcr.io", "o/r", "t", D512),
        (
            "europe-west1-docker.s3nsregistry.fr/my-project/repo/img",
            "europe-west1-docker.s3nsregistry.fr",
            "my-project/repo/img",
            "latest",
            None,
        ),
        (
            "us-docker.pkg.dev/p/r/i:1.0",
            "us-docker.pkg.dev",
            "p/r/i",
            "1.0",
            None,
        ),
        ("a.b/c__d/e-f---g.h_i:T_1.2-3", "a.b", "c__d/e-f---g.h_i", "T_1.2-3", None),
    ],
)
def test_parse_image(text: str, host: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse_image(text)
    assert (ref.host, ref.repository, ref.tag) == (host, repo, tag)
    assert (str(ref.digest) if ref.digest else None) == digest


def test_docker_hub_api_host_and_reference() -> None:
    ref = parse_image("alpine")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.reference == "latest"
    pinned = parse_image(f"alpine@{D256}")
    assert pinned.reference == D256
    assert str(pinned) == f"docker.io/library/alpine@{D256}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("host.io/UPPER/x", "lowercase"),
        ("host.io/a//b", "component"),
        ("host.io/a/b:", "tag"),
        ("host.io/a/b:-bad", "tag"),
        ("host.io/a/b:" + "t" * 129, "tag"),
        ("host.io/a@sha256:abc", "64"),
        ("host.io/a@md5:" + "a" * 32, "unsupported algorithm"),
        ("host.io/a@sha256:" + "A" * 64, "lowercase hex"),
        ("https://host.io/a", "no scheme"),
        ("host.io:99999/a", "port"),
        ("[::1/a", "IPv6"),
        ("host.io/" + "a" * 300, "at most"),
        ("oci:", "missing"),
        ("s3://Bad_Bucket/x", "bucket"),
        ("s3://bucket/../x", "not allowed"),
    ],
)
def test_invalid_references_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert message.lower() in str(info.value).lower()


def test_layout_references() -> None:
    ref = parse_reference("oci:/tmp/x:v1")
    assert ref == LayoutRef("oci", "/tmp/x", "v1", None)
    assert parse_reference("oci:relative/dir").tag == "latest"
    s3 = parse_reference("s3://my-bucket/backups/prod:2024")
    assert s3 == LayoutRef("s3", "my-bucket/backups/prod", "2024", None)
    assert parse_reference(f"oci:/a/b@{D256}").digest == Digest.parse(D256)


def test_repository_and_loopback() -> None:
    assert parse_repository("127.0.0.1:5000/a/b") == ImageRef("127.0.0.1:5000", "a/b")
    with pytest.raises(InvalidReference):
        parse_repository("127.0.0.1:5000/a/b:tag")
    assert is_loopback_host("127.0.0.1:5000")
    assert is_loopback_host("localhost")
    assert is_loopback_host("[::1]:5000")
    assert not is_loopback_host("10.0.0.1:5000")
    assert not is_loopback_host("registry.example.com")


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    # Whatever parses formats back to something that parses to the same value.
    assert parse_reference(str(ref)) == ref


@given(
    st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){1,2}(:[1-9][0-9]{0,3})?", fullmatch=True),
    st.lists(st.from_regex(r"[a-z0-9]{1,6}([._-][a-z0-9]{1,6})?", fullmatch=True), min_size=1, max_size=4),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
def test_round_trip(host: str, parts: list[str], tag: str) -> None:
    text = f"{host}/{'/'.join(parts)}:{tag}"
    ref = parse_image(text)
    assert str(ref) == text
