"""Job sources and destinations, and which destination repository each source repository goes to.

A job's **source** is one of (:func:`parse_source`):

- an image: ``HOST/PATH:TAG``, ``HOST/PATH@sha256:...`` or both (``kind == "image"``);
- a repository: ``HOST/PATH`` without tag or digest -- every tag, subject to the tag filter
  (``kind == "repository"``);
- a prefix: ``HOST/PATH/*`` -- every repository strictly under ``PATH`` that the registry
  lists (``_catalog``, or the registry's own API where its profile says so: Artifact Registry's
  ``dockerImages``, ECR's ``DescribeRepositories``), or ``HOST/*`` for every repository of the
  registry (``kind == "prefix"``);
- an OCI image layout: ``oci:DIR`` / ``s3://BUCKET/PREFIX`` (every tag in the layout,
  ``kind == "repository"``) or with ``:TAG`` / ``@DIGEST`` (``kind == "image"``).

Docker Hub short names are accepted for images and repositories (``nginx`` means
``docker.io/library/nginx``). A prefix needs an explicit host, and not Docker Hub's, which does
not serve ``_catalog``.

A **destination** is always a repository prefix (:func:`parse_destination`): ``HOST/PATH``,
``HOST`` alone (the registry's root), ``oci:DIR`` or ``s3://BUCKET/PREFIX``. It never has a tag
or digest: tags come from the source. The mirrored repository is the destination followed by
the part of the source repository the source leaves open (:func:`map_repository`):

- prefix ``HOST/apps/*``: ``apps/web`` -> ``DEST/web``, ``apps/team/api`` -> ``DEST/team/api``;
- image or repository ``HOST/apps/web``: the last path component, ``DEST/web`` (as
  ``skopeo sync`` does), so one destination such as an Artifact Registry repository
  ``europe-west1-docker.pkg.dev/PROJECT/REPO`` can collect images from several sources;
  ``nginx:1.27`` -> ``DEST/nginx``;
- layouts: the last component of the directory or object prefix, ``oci:/srv/web`` -> ``DEST/web``;
  layout destinations get the same suffix as a sub-directory or sub-prefix, ``oci:/srv/mirror/web``.

To give a single repository another final name, make that name the last component of the
source (or mirror a prefix); two sources whose last components agree land in the same
destination repository, which is what a job that collects tags from several places wants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mirror.jobs.places import host_place, layout_path
from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference
from mirror.types.reference import (
    DOCKER_HUB,
    ImageRef,
    LayoutRef,
    Ref,
    parse_reference,
    parse_repository,
    validate_host,
    validate_repository,
)

__all__ = [
    "DestinationSpec",
    "SourceKind",
    "SourceSpec",
    "map_repository",
    "overlaps",
    "parse_destination",
    "parse_source",
]

_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})
_SOURCE_FORMS = (
    "an image (HOST/PATH:TAG or HOST/PATH@sha256:...), a repository (HOST/PATH: all tags), "
    "a prefix (HOST/PATH/*) or an OCI layout (oci:DIR, s3://BUCKET/PREFIX, with an optional :TAG)"
)


class SourceKind(StrEnum):
    IMAGE = "image"
    REPOSITORY = "repository"
    PREFIX = "prefix"


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def _canonical_host(host: str) -> str:
    validate_host(host)
    return DOCKER_HUB if host.lower() in _HUB_ALIASES else host


def _last_component(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SourceSpec:
    """A parsed job source.

    ``scheme`` is ``""`` for a registry, ``"oci"`` or ``"s3"`` for a layout. ``host`` is the
    registry host (``docker.io`` for Docker Hub; ``""`` for a layout). ``path`` is the repository
    path, the prefix path of a prefix source (``""`` for a whole registry), or the layout's
    location (directory, or ``bucket/prefix``). ``tag``/``digest`` are set for images only.
    """

    kind: SourceKind
    host: str
    path: str
    tag: str | None = None
    digest: Digest | None = None
    scheme: str = ""

    @property
    def is_layout(self) -> bool:
        return bool(self.scheme)

    def __str__(self) -> str:
        if self.scheme:
            text = f"oci:{self.path}" if self.scheme == "oci" else f"s3://{self.path}"
        elif self.kind is SourceKind.PREFIX:
            return f"{self.host}/{self.path}/*" if self.path else f"{self.host}/*"
        else:
            text = f"{self.host}/{self.path}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def covers(self, repository: str) -> bool:
        """Whether a source repository path belongs to this source."""
        if self.kind is SourceKind.PREFIX:
            return not self.path or repository.startswith(self.path + "/")
        return repository == self.path

    def repositories(self, catalog: Iterable[str]) -> list[str]:
        """The repositories of a registry's listing this source covers, sorted and distinct."""
        return sorted({repo for repo in catalog if self.covers(repo)})

    def suffix(self, repository: str) -> str:
        """What a destination prefix is followed by for ``repository`` (see the module docs)."""
        if not self.covers(repository):
            raise InvalidReference(f"repository {repository!r} is not part of source {self}")
        if self.kind is SourceKind.PREFIX:
            return repository[len(self.path) + 1 :] if self.path else repository
        return _last_component(repository)

    def repository_ref(self, repository: str | None = None) -> Ref:
        """The source repository (no tag or digest); ``repository`` is required for a prefix."""
        if self.kind is SourceKind.PREFIX:
            if repository is None:
                raise InvalidReference(f"source {self} is a prefix: name one of its repositories")
            if not self.covers(repository):
                raise InvalidReference(f"repository {repository!r} is not part of source {self}")
            return ImageRef(self.host, validate_repository(repository))
        if self.scheme:
            return LayoutRef(self.scheme, self.path)
        return ImageRef(self.host, self.path)

    def image_ref(self) -> Ref:
        """The one image of an image source."""
        if self.kind is not SourceKind.IMAGE:
            raise InvalidReference(f"source {self} is a {self.kind.value}, not a single image")
        if self.scheme:
            return LayoutRef(self.scheme, self.path, self.tag, self.digest)
        return ImageRef(self.host, self.path, self.tag, self.digest)


@dataclass(frozen=True)
class DestinationSpec:
    """A repository prefix: registry ``host`` and ``path`` (``""`` = the root), or a layout."""

    host: str
    path: str
    scheme: str = ""

    @property
    def is_layout(self) -> bool:
        return bool(self.scheme)

    def __str__(self) -> str:
        if self.scheme == "oci":
            return f"oci:{self.path}"
        if self.scheme == "s3":
            return f"s3://{self.path}"
        return f"{self.host}/{self.path}" if self.path else self.host

    def join(self, suffix: str) -> Ref:
        """The repository ``suffix`` names under this prefix (no tag or digest)."""
        validate_repository(suffix, where=f"destination {self}")
        if self.scheme:
            return LayoutRef(self.scheme, f"{self.path.rstrip('/')}/{suffix}")
        return parse_repository(f"{self.host}/{self.path}/{suffix}" if self.path else f"{self.host}/{suffix}")


def _parse_prefix(text: str) -> SourceSpec:
    body = text[:-2]
    if body.startswith(("oci:", "s3://")):
        raise InvalidReference(f"{text!r}: a prefix source must be a registry, HOST/PATH/*")
    if "*" in body:
        raise InvalidReference(f"{text!r}: '*' is allowed only as the last path component, HOST/PATH/*")
    host, _, path = body.partition("/")
    if not host or not _is_host(host):
        raise InvalidReference(
            f"{text!r}: a prefix source needs an explicit registry host, e.g. registry.example.com/team/*"
        )
    host = _canonical_host(host)
    if host == DOCKER_HUB:
        raise InvalidReference(
            f"{text!r}: Docker Hub does not list repositories (no _catalog); "
            "make one job per repository instead"
        )
    if "@" in path or ":" in path:
        raise InvalidReference(
            f"{text!r}: a prefix source takes no tag or digest; choose tags with the job's tags: filter"
        )
    if path:
        validate_repository(path, where=text)
    return SourceSpec(SourceKind.PREFIX, host, path)


def _is_bare_host(text: str) -> bool:
    if "/" in text or text.startswith(("oci:", "s3://")):
        return False
    name, colon, port = text.rpartition(":")
    if not colon:
        return text == "localhost"
    return port.isdigit() and ("." in name or name == "localhost" or name.startswith("["))


def _layout_has_tag(body: str) -> bool:
    """Whether a layout reference names a manifest: a reference name follows its first ':'."""
    return ":" in body.partition("@")[0]


def parse_source(text: str) -> SourceSpec:
    """Parse a job's source; raise :class:`InvalidReference` saying what is wrong and what is accepted."""
    if not isinstance(text, str):
        raise InvalidReference(f"expected a source (a string): {_SOURCE_FORMS}")
    text = text.strip()
    if not text:
        raise InvalidReference(f"the source is empty; write {_SOURCE_FORMS}")
    if text.endswith("/*"):
        return _parse_prefix(text)
    if "*" in text:
        raise InvalidReference(f"{text!r}: '*' is allowed only as the last path component, HOST/PATH/*")
    if _is_bare_host(text):
        raise InvalidReference(
            f"{text!r} names a registry, not a repository: write {text}/PATH, or {text}/* for every "
            "repository it lists"
        )
    ref = parse_reference(text, default_tag=False)
    if isinstance(ref, LayoutRef):
        body = text[4:] if ref.scheme == "oci" else text[5:]
        tag = ref.tag if _layout_has_tag(body) else None
        kind = SourceKind.IMAGE if tag is not None or ref.digest is not None else SourceKind.REPOSITORY
        _check_layout_name(ref.location, text)
        return SourceSpec(kind, "", ref.location, tag, ref.digest, ref.scheme)
    kind = SourceKind.IMAGE if ref.tag is not None or ref.digest is not None else SourceKind.REPOSITORY
    return SourceSpec(kind, ref.host, ref.repository, ref.tag, ref.digest)


def _check_layout_name(location: str, text: str) -> None:
    last = _last_component(location)
    try:
        validate_repository(last)
    except InvalidReference:
        raise InvalidReference(
            f"{text!r}: the destination repository is named after the layout's last path component, "
            f"and {last!r} is not a valid repository name (lowercase letters, digits, '.', '_', '-')"
        ) from None


def parse_destination(text: str) -> DestinationSpec:
    """Parse a destination prefix; raise :class:`InvalidReference` saying what is accepted."""
    forms = "HOST/PATH (a repository prefix), HOST, oci:DIR or s3://BUCKET/PREFIX"
    if not isinstance(text, str):
        raise InvalidReference(f"expected a destination (a string): {forms}")
    text = text.strip()
    if not text:
        raise InvalidReference(f"the destination is empty; write {forms}")
    if "*" in text:
        raise InvalidReference(
            f"{text!r}: a destination is a prefix without '*': sources ending in /* map "
            "SOURCE/rest to DESTINATION/rest"
        )
    if text.startswith(("oci:", "s3://")):
        scheme = "oci" if text.startswith("oci:") else "s3"
        body = text[4:] if scheme == "oci" else text[5:]
        if "@" in body or _layout_has_tag(body):
            raise InvalidReference(
                f"{text!r}: a destination takes no tag or digest; tags come from the source"
            )
        ref = parse_reference(text)
        assert isinstance(ref, LayoutRef)
        return DestinationSpec("", ref.location.rstrip("/") or ref.location, scheme)
    text = text.rstrip("/")
    host, _, path = text.partition("/")
    if not _is_host(host):
        raise InvalidReference(
            f"{text!r}: a destination needs an explicit registry host, e.g. registry.example.com/{text}"
        )
    host = _canonical_host(host)
    if "@" in path or ":" in path:
        raise InvalidReference(f"{text!r}: a destination takes no tag or digest; tags come from the source")
    if path:
        validate_repository(path, where=text)
    return DestinationSpec(host, path)


def map_repository(source: SourceSpec, repository: str, destination: DestinationSpec) -> Ref:
    """The destination repository for a source repository (see the module docs for the rules).

    ``repository`` is a path the source covers: one the registry listed for a prefix, otherwise
    ``source.path``.
    """
    return destination.join(source.suffix(repository))


def overlaps(source: SourceSpec, destination: DestinationSpec) -> bool:
    """Whether mirroring would write into the source itself (a loop, or a copy onto itself)."""
    if source.scheme != destination.scheme or host_place(source.host) != host_place(destination.host):
        return False
    if source.scheme:  # layouts: by where they are (``oci:layout`` is ``oci:./layout``)
        here = layout_path(source.scheme, source.path)
        there = layout_path(destination.scheme, destination.path)
        return there == here or there.startswith(here.rstrip("/") + "/")
    if source.kind is SourceKind.PREFIX:
        return source.covers(destination.path) or destination.path == source.path or not source.path
    target = map_repository(source, source.path, destination)
    return isinstance(target, ImageRef) and target.repository == source.path
