"""Manifest and blob media types."""

from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_VERSION = "1.0.0"

# Layers that are not to be copied between registries ("foreign" Windows base layers, OCI
# non-distributable layers): a client fetches them from the descriptor's ``urls``. Copies keep
# the descriptor and its digest and leave the blob where it is, as skopeo and containerd do.
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_NONDISTRIBUTABLE_LAYERS = frozenset(
    {
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
NON_DISTRIBUTABLE = OCI_NONDISTRIBUTABLE_LAYERS | {DOCKER_FOREIGN_LAYER}

IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFESTS = IMAGE_MANIFESTS | INDEXES

# Every manifest kind mirror understands, so a registry never converts on our behalf
# (a converted manifest would have another digest).
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])

# Registries reject manifests larger than this (distribution's limit); reads are bounded by it.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFESTS


def is_non_distributable(media_type: str) -> bool:
    return media_type in NON_DISTRIBUTABLE
