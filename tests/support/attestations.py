"""An image index as BuildKit pushes it: one image per platform, each followed by its
attestation manifest (SBOM and provenance as in-toto layers), with platform unknown/unknown and
the annotations ``vnd.docker.reference.type: attestation-manifest`` and
``vnd.docker.reference.digest: <the image it describes>`` (BuildKit's documented layout,
docs.docker.com/build/metadata/attestations/attestation-storage/)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.support.images import PushedImage, push_blob, push_image, push_manifest
from tests.support.mediatypes import OCI_INDEX, OCI_MANIFEST

IN_TOTO = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class BuildkitIndex:
    digest: str
    images: tuple[PushedImage, ...]
    attestations: tuple[str, ...]  # manifest digests, one per image, same order


def push_buildkit_index(handle: Any, repo: str, tag: str, platforms: Sequence[str]) -> BuildkitIndex:
    images = tuple(push_image(handle, repo, None, (700,), seed=f"{repo}/{p}", platform=p) for p in platforms)
    entries: list[dict[str, Any]] = []
    attestations: list[str] = []
    for image in images:
        os_, arch, *variant = image.platform.split("/")
        platform = {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}
        entries.append(
            {"mediaType": image.media_type, "digest": image.digest, "size": image.size, "platform": platform}
        )
        statement = json.dumps(
            {"_type": "https://in-toto.io/Statement/v0.1", "subject": image.digest}
        ).encode()
        config = b"{}"
        config_digest = push_blob(handle, repo, config)
        statement_digest = push_blob(handle, repo, statement)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": IN_TOTO,
                        "digest": statement_digest,
                        "size": len(statement),
                        "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
                    }
                ],
            }
        ).encode()
        digest = push_manifest(handle, repo, _digest(manifest), manifest, OCI_MANIFEST)
        attestations.append(digest)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": image.digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return BuildkitIndex(push_manifest(handle, repo, tag, index, OCI_INDEX), images, tuple(attestations))


def _digest(data: bytes) -> str:
    from tests.support.content import sha256_digest

    return sha256_digest(data)
