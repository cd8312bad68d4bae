"""Where a destination repository is, however a config spells it.

Two jobs may name one layout differently: ``oci:layout``, ``oci:./layout/`` and
``oci:/srv/x/../layout`` (run from ``/srv``) are one directory, and the S3 store reads
``s3://bucket//prefix/`` as ``s3://bucket/prefix``. A registry host is one place however its
name is cased (host names are not case-sensitive, RFC 4343) and with or without ``:443`` (the
registry API's default port, HTTPS); Docker Hub's aliases are one host already when a reference
is parsed. Prune's shared-destination guard rail and drift's "another job copies this tag"
compare places, not spellings. A layout directory's place is the path it resolves to (symbolic
links followed, relative to the working directory), the one thing here that reads the file system.
"""

from __future__ import annotations

import os

from mirror.types.reference import ImageRef, LayoutRef, Ref


def layout_path(scheme: str, location: str) -> str:
    """A layout's location as a place: the resolved directory (``oci``), or ``bucket/prefix``
    without empty parts (``s3``)."""
    if scheme == "oci":
        return os.path.realpath(location or ".")
    return "/".join(part for part in location.strip().split("/") if part)


def host_place(host: str) -> str:
    """A registry host as a place: lower case, without the default ``:443``."""
    host = host.lower()
    return host[: -len(":443")] if host.endswith(":443") else host


def store_and_path(ref: Ref) -> tuple[str, str]:
    """(store, path) of a repository: a registry's host (as a place) and repository, or
    ``oci:``/``s3:`` and the layout's place."""
    if isinstance(ref, ImageRef):
        return host_place(ref.host), ref.repository
    assert isinstance(ref, LayoutRef)
    return f"{ref.scheme}:", layout_path(ref.scheme, ref.location)


def place_of(name: str) -> str:
    """The place of a repository's display name (``host/path``, ``oci:DIR``, ``s3://LOCATION``)."""
    if name.startswith("oci:"):
        return "oci:" + layout_path("oci", name[len("oci:") :])
    if name.startswith("s3://"):
        return "s3://" + layout_path("s3", name[len("s3://") :])
    host, slash, path = name.partition("/")
    return host_place(host) + slash + path
