"""Image references: parse and format.

Forms accepted:
- ``HOST[:PORT]/PATH[:TAG|@DIGEST]`` and ``[IPV6]:PORT/PATH...``; no tag means ``latest``;
- Docker Hub short names: ``alpine`` -> ``docker.io/library/alpine:latest``;
- ``oci:DIR[:REF]``: an OCI image layout directory;
- ``s3://BUCKET[/PREFIX][:REF]``: an OCI image layout kept in object storage.

In a layout reference, ``REF`` is everything after the first ':' (as skopeo splits it), so the
directory cannot contain ':'. It is the ``org.opencontainers.image.ref.name`` of a manifest in
the layout's ``index.json``: a tag, or any name the image-layout specification allows
(``127.0.0.1:5000/app:v1`` as ``podman save`` writes it, ``1.0+build.5`` as umoci accepts it).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# The image-layout specification's grammar of ``org.opencontainers.image.ref.name``.
_REF_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"^{_REF_COMPONENT}(?:/{_REF_COMPONENT})*$")
MAX_REF_NAME_LENGTH = 1024
_HOSTNAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9]+)?\]$")


def validate_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise InvalidReference(
            f"tag {tag!r} is not valid: up to 128 characters of letters, digits, '_', '.', '-', "
            "not starting with '.' or '-'"
        )
    return tag


def validate_ref_name(name: str) -> str:
    """A reference name of an OCI image layout: a tag, or a name of the image-layout grammar
    (components of letters and digits joined by '-', '.', '_', ':', '@', '+' or '--', separated
    by '/'). It never becomes part of a path: layouts keep it as a string in ``index.json``."""
    if len(name) <= MAX_REF_NAME_LENGTH and (_TAG.match(name) or _REF_NAME.match(name)):
        return name
    raise InvalidReference(
        f"reference name {name[:80]!r} is not valid: a tag, or letters and digits joined by "
        "'-', '.', '_', ':', '@', '+' or '--', in components separated by '/' (OCI image layout)"
    )


def validate_host(host: str) -> str:
    name, port = host, ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InvalidReference(f"registry host {host!r} has an unclosed IPv6 bracket")
        name, rest = host[: end + 1], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise InvalidReference(f"registry host {host!r}: expected ':PORT' after ']'")
            port = rest[1:]
        if not _IPV6.match(name):
            raise InvalidReference(f"registry host {host!r} is not a valid IPv6 address")
    else:
        if ":" in host:
            name, _, port = host.partition(":")
        if not _HOSTNAME.match(name):
            raise InvalidReference(f"registry host {host!r} is not a valid host name")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise InvalidReference(f"registry host {host!r} has an invalid port {port!r}")
    return host


def validate_repository(path: str, *, where: str = "") -> str:
    if not path:
        raise InvalidReference(f"{where or 'reference'}: repository path is empty")
    if len(path) > MAX_NAME_LENGTH:
        raise InvalidReference(
            f"repository {path[:40]!r}... is {len(path)} characters: at most {MAX_NAME_LENGTH}"
        )
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            raise InvalidReference(
                f"repository {path!r}: component {component!r} must be lowercase letters and "
                "digits, separated by '.', '_', '__' or '-'"
            )
    return path


def _looks_like_host(component: str) -> bool:
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.startswith("[")
        or component != component.lower()
    )


class _Named:
    """What image and layout references share: a name, then ``:tag`` and/or ``@digest``."""

    tag: str | None
    digest: Digest | None

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def reference(self) -> str:
        """What names the manifest: the digest when pinned, otherwise the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class ImageRef(_Named):
    """An image in a registry: host, repository, and a tag and/or a digest."""

    host: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    def with_tag(self, tag: str) -> ImageRef:
        return replace(self, tag=validate_tag(tag), digest=None)

    def with_digest(self, digest: Digest) -> ImageRef:
        return replace(self, digest=digest)

    def with_repository(self, repository: str) -> ImageRef:
        return replace(self, repository=validate_repository(repository))


@dataclass(frozen=True)
class LayoutRef(_Named):
    """An OCI image layout: a local directory (``oci:``) or an object-store prefix (``s3://``)."""

    scheme: str  # "oci" or "s3"
    location: str  # directory path, or "bucket/prefix"
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        return f"oci:{self.location}" if self.scheme == "oci" else f"s3://{self.location}"

    def with_tag(self, tag: str) -> LayoutRef:
        return replace(self, tag=validate_ref_name(tag), digest=None)

    def with_digest(self, digest: Digest) -> LayoutRef:
        return replace(self, digest=digest)


Ref = ImageRef | LayoutRef


def _split_digest(text: str) -> tuple[str, Digest | None]:
    if "@" in text:
        rest, _, digest_text = text.rpartition("@")
        return rest, Digest.parse(digest_text)
    return text, None


def _parse_layout(scheme: str, body: str, original: str) -> LayoutRef:
    body, digest = _split_digest(body)
    tag: str | None = None
    # The reference name follows the first ':', as skopeo reads oci:DIR:REF.
    body, colon, name = body.partition(":")
    if colon:
        if not name:
            raise InvalidReference(f"{original!r}: empty reference name after ':'")
        tag = validate_ref_name(name)
    body = body.rstrip("/") if scheme == "s3" else body
    if not body:
        raise InvalidReference(f"{original!r}: missing {'directory' if scheme == 'oci' else 'bucket'}")
    if scheme == "s3":
        bucket = body.split("/", 1)[0]
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
            raise InvalidReference(f"{original!r}: {bucket!r} is not a valid S3 bucket name")
        if any(part in ("..", ".") for part in body.split("/")):
            raise InvalidReference(f"{original!r}: '.' and '..' are not allowed in an S3 prefix")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return LayoutRef(scheme, body, tag, digest)


def parse_reference(text: str, *, default_tag: bool = True) -> Ref:
    """Parse an image reference; raise InvalidReference saying what is wrong."""
    original = text
    text = text.strip()
    if not text:
        raise InvalidReference("empty image reference")
    if text.startswith("oci:"):
        return _parse_layout("oci", text[4:], original)
    if text.startswith("s3://"):
        return _parse_layout("s3", text[5:], original)
    if "://" in text:
        raise InvalidReference(
            f"{original!r}: image references have no scheme; write HOST/PATH[:TAG], "
            "oci:DIR[:TAG] or s3://BUCKET/PREFIX[:TAG]"
        )
    rest, digest = _split_digest(text)
    first, slash, remainder = rest.partition("/")
    if slash and _looks_like_host(first):
        host = validate_host(first)
        path = remainder
    else:
        host = DOCKER_HUB
        path = rest
    tag: str | None = None
    colon = path.rfind(":")
    if colon >= 0:
        path, tag = path[:colon], validate_tag(path[colon + 1 :])
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    validate_repository(path, where=original)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return ImageRef(host, path, tag, digest)


def parse_image(text: str) -> ImageRef:
    ref = parse_reference(text)
    if not isinstance(ref, ImageRef):
        raise InvalidReference(f"{text!r}: expected a registry image, not an OCI layout")
    return ref


def parse_repository(text: str) -> ImageRef:
    """A repository without tag or digest, e.g. ``host/path``."""
    ref = parse_reference(text, default_tag=False)
    if not isinstance(ref, ImageRef):
        raise InvalidReference(f"{text!r}: expected a registry repository")
    if ref.tag is not None or ref.digest is not None:
        raise InvalidReference(f"{text!r}: expected a repository, without a tag or digest")
    return ref


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (``name[:port]`` or ``[v6][:port]``) is this machine: ``localhost``, an
    IPv4 address in 127.0.0.0/8, or ``::1``. A DNS name that only starts with ``127.`` (say
    ``127.example.com``) can resolve anywhere and is not loopback."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
