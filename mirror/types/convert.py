"""Docker media types to OCI ones, for OCI image layouts that other tools must read.

skopeo, podman and umoci read an OCI image layout only when its manifests have OCI media types
(a Docker v2 schema 2 manifest there gives "no descriptor found for reference"). Converting
rewrites each manifest's ``mediaType`` and those of its config, layers and children; blobs are
unchanged (a Docker image config is a valid OCI image config). New manifest bytes mean new
digests, so conversion is opt-in and reported. Pure: no IO.
"""

from __future__ import annotations

import json
from typing import Any

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.manifest import Manifest, parse_manifest

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

TO_OCI: dict[str, str] = {
    mt.DOCKER_MANIFEST: mt.OCI_MANIFEST,
    mt.DOCKER_MANIFEST_LIST: mt.OCI_INDEX,
    DOCKER_CONFIG: OCI_CONFIG,
    DOCKER_LAYER: OCI_LAYER,
    mt.DOCKER_FOREIGN_LAYER: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


def has_docker_types(manifests: list[Manifest]) -> bool:
    """Whether any of ``manifests`` (or what they list) has a Docker media type."""
    for manifest in manifests:
        descriptors = (*manifest.references, *manifest.manifests)
        if manifest.media_type in TO_OCI or any(d.media_type in TO_OCI for d in descriptors):
            return True
    return False


def to_oci(manifests: list[Manifest]) -> list[Manifest]:
    """``manifests`` (children before parents, as a copy pushes them) with OCI media types:
    a manifest with nothing to convert is kept as it is; an index is rewritten when one of its
    children was (its descriptor then names the child's new digest and size)."""
    converted: dict[Digest, Manifest] = {}
    out: list[Manifest] = []
    for manifest in manifests:
        doc = json.loads(manifest.raw)
        changed = _convert_type(doc)
        for key in ("config",):
            if isinstance(doc.get(key), dict):
                changed |= _convert_type(doc[key])
        for desc in doc.get("layers") or []:
            if isinstance(desc, dict):
                changed |= _convert_type(desc)
        for entry in doc.get("manifests") or []:
            if not isinstance(entry, dict):
                continue
            child = converted.get(Digest.parse(str(entry.get("digest"))))
            if child is not None and str(child.digest) != entry.get("digest"):
                entry.update(mediaType=child.media_type, digest=str(child.digest), size=len(child.raw))
                changed = True
            else:
                changed |= _convert_type(entry)
        new = manifest
        if changed:
            raw = json.dumps(doc, separators=(",", ":")).encode()
            new = parse_manifest(raw, TO_OCI.get(manifest.media_type, manifest.media_type))
        converted[manifest.digest] = new
        out.append(new)
    return out


def _convert_type(doc: dict[str, Any]) -> bool:
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type in TO_OCI:
        doc["mediaType"] = TO_OCI[media_type]
        return True
    return False
