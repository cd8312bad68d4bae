"""Manifest and blob media types."""

from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_VERSION = "1.0.0"

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
