"""``index.json`` of an OCI image layout: validated parsing and serialising. Pure.

Shared by the layout stores (a directory, an S3 prefix). Entries are validated before use, so a
hostile index cannot name a path outside the layout. Reference names
(``org.opencontainers.image.ref.name``) are kept as opaque strings: they are matched, listed and
written back, never used as a path, and are validated where they become something else (a
registry tag).
"""

from __future__ import annotations

import json
from typing import Any

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference, ManifestError

REF_NAME = "org.opencontainers.image.ref.name"
MAX_INDEX_BYTES = 64 * 1024 * 1024


def parse_index(raw: bytes, where: str) -> list[dict[str, Any]]:
    """The validated ``manifests`` of an ``index.json``; ManifestError saying what is wrong."""
    if len(raw) > MAX_INDEX_BYTES:
        raise ManifestError(f"{where} is larger than {MAX_INDEX_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where} is not valid JSON: {exc}") from None
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ManifestError(f"{where} has no 'manifests' list")
    for i, entry in enumerate(entries):
        at = f"{where} manifests[{i}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{at} is not an object")
        try:
            Digest.parse(str(entry.get("digest", "")))
        except InvalidReference as exc:
            raise ManifestError(f"{at}: {exc.message}") from None
        if not isinstance(entry.get("mediaType", ""), str):
            raise ManifestError(f"{at}: mediaType is not a string")
        size = entry.get("size", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{at}: size must be a non-negative integer")
        annotations = entry.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            raise ManifestError(f"{at}: annotations is not an object")
        name = (annotations or {}).get(REF_NAME)
        if name is not None and not isinstance(name, str):
            raise ManifestError(f"{at}: {REF_NAME} is not a string")
    return entries


def index_bytes(entries: list[dict[str, Any]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return json.dumps(doc, indent=2).encode() + b"\n"


def tag_of(entry: dict[str, Any]) -> str | None:
    name = (entry.get("annotations") or {}).get(REF_NAME)
    return str(name) if name is not None else None
