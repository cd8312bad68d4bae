"""Job sources, destinations, and the source -> destination repository mapping."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.jobs.mapping import (
    DestinationSpec,
    SourceKind,
    SourceSpec,
    map_repository,
    overlaps,
    parse_destination,
    parse_source,
)
from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference
from mirror.types.reference import ImageRef, LayoutRef

D = "sha256:" + "ab" * 32
IMAGE, REPO, PREFIX = SourceKind.IMAGE, SourceKind.REPOSITORY, SourceKind.PREFIX


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5001/apps/*", SourceSpec(PREFIX, "127.0.0.1:5001", "apps")),
        ("registry.example.com/a/b/*", SourceSpec(PREFIX, "registry.example.com", "a/b")),
        ("registry.example.com/*", SourceSpec(PREFIX, "registry.example.com", "")),
        ("localhost:5000/*", SourceSpec(PREFIX, "localhost:5000", "")),
        ("[::1]:5000/team/*", SourceSpec(PREFIX, "[::1]:5000", "team")),
        ("127.0.0.1:5001/apps/web", SourceSpec(REPO, "127.0.0.1:5001", "apps/web")),
        ("127.0.0.1:5001/apps/web:v1", SourceSpec(IMAGE, "127.0.0.1:5001", "apps/web", "v1")),
        (f"h.io:5001/apps/web@{D}", SourceSpec(IMAGE, "h.io:5001", "apps/web", digest=Digest.parse(D))),
        (f"h.io/web:v1@{D}", SourceSpec(IMAGE, "h.io", "web", "v1", Digest.parse(D))),
        ("nginx", SourceSpec(REPO, "docker.io", "library/nginx")),
        ("redis:7.4", SourceSpec(IMAGE, "docker.io", "library/redis", "7.4")),
        ("index.docker.io/bitnami/redis", SourceSpec(REPO, "docker.io", "bitnami/redis")),
        ("oci:/srv/layouts/web", SourceSpec(REPO, "", "/srv/layouts/web", scheme="oci")),
        ("oci:/srv/layouts/web:v1", SourceSpec(IMAGE, "", "/srv/layouts/web", "v1", scheme="oci")),
        ("oci:/srv/layouts/web:latest", SourceSpec(IMAGE, "", "/srv/layouts/web", "latest", scheme="oci")),
        (f"oci:/srv/web@{D}", SourceSpec(IMAGE, "", "/srv/web", None, Digest.parse(D), scheme="oci")),
        ("s3://bucket/mirror/web", SourceSpec(REPO, "", "bucket/mirror/web", scheme="s3")),
        ("s3://bucket/mirror/web:v2", SourceSpec(IMAGE, "", "bucket/mirror/web", "v2", scheme="s3")),
        ("  h.io/web  ", SourceSpec(REPO, "h.io", "web")),
    ],
)
def test_parse_source(text: str, expected: SourceSpec) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("docker.io/library/*", "Docker Hub does not list repositories"),
        ("index.docker.io/bitnami/*", "Docker Hub does not list repositories"),
        ("apps/*", "needs an explicit registry host"),
        ("h.io/app*/web", "only as the last path component"),
        ("h.io/apps/*/web", "only as the last path component"),
        ("h.io/apps*", "only as the last path component"),
        ("h.io/apps:v1/*", "takes no tag or digest"),
        ("oci:/srv/*", "must be a registry"),
        ("127.0.0.1:5001", "names a registry, not a repository"),
        ("localhost:5000", "names a registry, not a repository"),
        ("h.io/Apps/web", "must be lowercase"),
        ("h.io/web:", "tag '' is not valid"),
        ("http://h.io/web", "no scheme"),
        ("oci:/srv/Web_Image", "not a valid repository name"),
        ("h.io/web@sha256:abc", "64 lowercase hex digits"),
    ],
)
def test_parse_source_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_source(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5002/mirror", DestinationSpec("127.0.0.1:5002", "mirror")),
        ("127.0.0.1:5002/mirror/", DestinationSpec("127.0.0.1:5002", "mirror")),
        ("127.0.0.1:5002", DestinationSpec("127.0.0.1:5002", "")),
        ("europe-west1-docker.pkg.dev/p/repo", DestinationSpec("europe-west1-docker.pkg.dev", "p/repo")),
        ("registry-1.docker.io/myorg", DestinationSpec("docker.io", "myorg")),
        ("oci:/srv/mirror", DestinationSpec("", "/srv/mirror", "oci")),
        ("oci:/srv/mirror/", DestinationSpec("", "/srv/mirror", "oci")),
        ("s3://bucket/prefix", DestinationSpec("", "bucket/prefix", "s3")),
    ],
)
def test_parse_destination(text: str, expected: DestinationSpec) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("mirror/web", "needs an explicit registry host"),
        ("h.io/mirror:v1", "takes no tag or digest"),
        (f"h.io/mirror@{D}", "takes no tag or digest"),
        ("h.io/mirror/*", "without '\\*'"),
        ("oci:/srv/mirror:v1", "takes no tag or digest"),
        ("h.io/Mirror", "must be lowercase"),
        ("bad_host.io!/x", "not a valid host name"),
    ],
)
def test_parse_destination_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_destination(text)


@pytest.mark.parametrize(
    ("source", "repository", "destination", "expected"),
    [
        # prefix: the path under the prefix is kept
        ("h.io/apps/*", "apps/web", "d.io/mirror", "d.io/mirror/web"),
        ("h.io/apps/*", "apps/team/api", "d.io/mirror", "d.io/mirror/team/api"),
        ("h.io/apps/*", "apps/web", "d.io", "d.io/web"),
        ("h.io/*", "apps/web", "d.io/all", "d.io/all/apps/web"),
        ("h.io/a/b/*", "a/b/c/d", "d.io/x/y", "d.io/x/y/c/d"),
        # repository or image: the last path component
        ("h.io/apps/web", "apps/web", "d.io/mirror", "d.io/mirror/web"),
        ("h.io/apps/web:v1", "apps/web", "d.io/mirror", "d.io/mirror/web"),
        ("nginx", "library/nginx", "eu-docker.pkg.dev/p/r", "eu-docker.pkg.dev/p/r/nginx"),
        ("h.io/web", "web", "d.io", "d.io/web"),
        # layouts on either side
        ("oci:/srv/layouts/web", "/srv/layouts/web", "d.io/mirror", "d.io/mirror/web"),
        ("s3://bucket/x/web:v1", "bucket/x/web", "d.io/mirror", "d.io/mirror/web"),
        ("h.io/apps/*", "apps/team/api", "oci:/srv/mirror", "oci:/srv/mirror/team/api"),
        ("h.io/apps/web", "apps/web", "s3://bucket/prefix", "s3://bucket/prefix/web"),
        # Docker Hub normalisation of the destination
        ("h.io/apps/web", "apps/web", "docker.io/myorg", "docker.io/myorg/web"),
    ],
)
def test_map_repository(source: str, repository: str, destination: str, expected: str) -> None:
    target = map_repository(parse_source(source), repository, parse_destination(destination))
    assert target.tag is None and target.digest is None if isinstance(target, ImageRef) else True
    assert target.name == expected


def test_map_repository_returns_refs_ready_for_tags() -> None:
    target = map_repository(parse_source("h.io/apps/*"), "apps/web", parse_destination("d.io/m"))
    assert target == ImageRef("d.io", "m/web")
    assert str(target.with_tag("v1")) == "d.io/m/web:v1"
    layout = map_repository(parse_source("h.io/web"), "web", parse_destination("oci:/srv"))
    assert layout == LayoutRef("oci", "/srv/web")


@pytest.mark.parametrize(
    ("source", "repository"),
    [("h.io/apps/*", "other/web"), ("h.io/apps/*", "apps"), ("h.io/apps/*", "appsx/w"), ("h.io/web", "web2")],
)
def test_map_repository_rejects_repositories_outside_the_source(source: str, repository: str) -> None:
    with pytest.raises(InvalidReference, match="is not part of source"):
        map_repository(parse_source(source), repository, parse_destination("d.io/m"))


def test_prefix_repositories_from_a_catalog() -> None:
    spec = parse_source("h.io/apps/*")
    catalog = ["apps", "apps/web", "appsx/web", "apps/team/api", "other/x", "apps/web"]
    assert spec.repositories(catalog) == ["apps/team/api", "apps/web"]
    assert parse_source("h.io/*").repositories(["b", "a/c"]) == ["a/c", "b"]


def test_source_refs() -> None:
    prefix = parse_source("h.io/apps/*")
    assert prefix.repository_ref("apps/web") == ImageRef("h.io", "apps/web")
    with pytest.raises(InvalidReference, match="name one of its repositories"):
        prefix.repository_ref()
    with pytest.raises(InvalidReference, match="not a single image"):
        prefix.image_ref()
    image = parse_source("h.io/apps/web:v1")
    assert image.image_ref() == ImageRef("h.io", "apps/web", "v1")
    assert image.repository_ref() == ImageRef("h.io", "apps/web")
    layout = parse_source("oci:/srv/web:v1")
    assert layout.image_ref() == LayoutRef("oci", "/srv/web", "v1")
    assert layout.repository_ref() == LayoutRef("oci", "/srv/web")
    assert layout.is_layout and not image.is_layout


@pytest.mark.parametrize(
    "text",
    [
        "h.io/apps/*",
        "h.io/*",
        "h.io/apps/web",
        "h.io/apps/web:v1",
        f"h.io/apps/web:v1@{D}",
        "docker.io/library/nginx",
        "oci:/srv/web",
        "oci:/srv/web:v1",
        "s3://bucket/web",
    ],
)
def test_source_str_round_trips(text: str) -> None:
    assert str(parse_source(text)) == text
    assert parse_source(str(parse_source(text))) == parse_source(text)


@pytest.mark.parametrize("text", ["h.io/m", "h.io", "oci:/srv/m", "s3://bucket/m"])
def test_destination_str_round_trips(text: str) -> None:
    assert str(parse_destination(text)) == text


@pytest.mark.parametrize(
    ("source", "destination", "loops"),
    [
        ("h.io/apps/*", "h.io/apps/mirror", True),
        ("h.io/apps/*", "h.io/apps", True),
        ("h.io/*", "h.io/anything", True),
        ("h.io/apps/*", "h.io/mirror", False),
        ("h.io/apps/*", "h.io/appsmirror", False),
        ("h.io/apps/*", "d.io/apps", False),
        ("h.io/apps/web", "h.io/apps", True),  # apps/web -> apps/web
        ("h.io/apps/web:v1", "h.io/apps", True),
        ("h.io/apps/web", "h.io/mirror", False),
        ("oci:/srv/web", "oci:/srv/web", True),
        ("oci:/srv/web", "oci:/srv/web/copy", True),
        ("oci:/srv/web", "oci:/srv/other", False),
        ("oci:/srv/web", "s3://srv/web", False),
        ("h.io/apps/*", "H.IO/apps/mirror", True),  # host names are not case-sensitive
        ("h.io:443/apps/web", "h.io/apps", True),  # :443 is the default port
        ("h.io:5000/apps/web", "h.io/apps", False),
    ],
)
def test_overlaps(source: str, destination: str, loops: bool) -> None:
    assert overlaps(parse_source(source), parse_destination(destination)) is loops


component = st.from_regex(r"\A[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,4})?\Z")
paths = st.lists(component, min_size=1, max_size=4).map("/".join)


@given(prefix=paths, rest=paths, dest=st.one_of(st.just(""), paths))
def test_prefix_mapping_keeps_the_rest(prefix: str, rest: str, dest: str) -> None:
    source = parse_source(f"src.io/{prefix}/*")
    destination = parse_destination(f"dst.io/{dest}" if dest else "dst.io")
    target = map_repository(source, f"{prefix}/{rest}", destination)
    assert isinstance(target, ImageRef)
    assert target.host == "dst.io"
    assert target.repository == (f"{dest}/{rest}" if dest else rest)


@given(path=paths, dest=paths, tag=st.one_of(st.none(), st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,10}\Z")))
def test_single_repository_mapping_uses_the_last_component(path: str, dest: str, tag: str | None) -> None:
    source = parse_source(f"src.io/{path}" + (f":{tag}" if tag else ""))
    target = map_repository(source, source.path, parse_destination(f"dst.io/{dest}"))
    assert target.name == f"dst.io/{dest}/{path.rsplit('/', 1)[-1]}"


@given(text=st.text(max_size=60))
def test_parsers_raise_only_invalid_reference(text: str) -> None:
    for parse in (parse_source, parse_destination):
        with contextlib.suppress(InvalidReference):
            parse(text)
