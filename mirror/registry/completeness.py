"""Completeness by construction: a layout store writes a manifest only over what it names.

An OCI layout (``oci:``) and an S3 layout (``s3://``) check, before a manifest is stored, that
they hold every blob it names (config and layers, each with its size) and, for an index, every
child manifest. Where the check is cheap they make it: a file's size on disk; an S3 object's
size, asked once per key and remembered (what the layout wrote or found itself is not asked
again). A manifest that names something missing is refused with :class:`IncompleteManifest`,
and nothing of it is written. (A registry checks this itself: distribution answers
``MANIFEST_BLOB_UNKNOWN``.) A ``subject`` is not required: a referrer may arrive before it.

:func:`missing_content` walks what a tag (or digest) names in any store, for ``mirror verify``
(layout destinations: content lost after it was written) or a test to assert that a destination
is whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mirror.registry.base import Repository
from mirror.types.errors import IncompleteManifest, MirrorError, NotFound
from mirror.types.manifest import Descriptor, Manifest, parse_manifest

MAX_DEPTH = 8

Holds = Callable[[Descriptor], Awaitable[bool]]


def named(manifest: Manifest) -> list[Descriptor]:
    """What a manifest needs in its store: an index's children, or an image's config and layers."""
    if manifest.is_index:
        return list(manifest.manifests)
    return list(manifest.blobs)


async def require_content(where: str, reference: str, raw: bytes, media_type: str, holds: Holds) -> None:
    """Raise IncompleteManifest unless ``holds`` says yes for everything the manifest names."""
    manifest = parse_manifest(raw, media_type)
    missing = [d for d in named(manifest) if not await holds(d)]
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise IncompleteManifest(
            f"{where}: refusing to write {reference}: it names {first.digest} ({first.size} bytes), "
            f"which this store does not hold{more}; nothing was written"
        )


async def missing_content(repo: Repository, reference: str) -> list[str]:
    """What ``reference`` at ``repo`` names and ``repo`` lacks (manifests, recursively; blobs
    with their sizes); empty when it is whole."""
    problems: list[str] = []

    async def walk(ref: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            problems.append(f"{ref}: index nesting deeper than {MAX_DEPTH}")
            return
        try:
            fetched = await repo.get_manifest(ref)
        except NotFound:
            problems.append(f"manifest {ref} is missing")
            return
        except MirrorError as exc:
            problems.append(f"manifest {ref}: {exc.message}")
            return
        manifest = parse_manifest(fetched.raw, fetched.media_type, digest=fetched.digest)
        for desc in named(manifest):
            if manifest.is_index:
                await walk(str(desc.digest), depth + 1)
            elif not await repo.has_blob(desc.digest, desc.size):
                problems.append(f"blob {desc.digest} ({desc.size} bytes) of {ref} is missing")

    await walk(reference, 0)
    return problems
