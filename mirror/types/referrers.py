"""The referrers tag schema of the OCI distribution spec 1.1, for stores without a referrers API. Pure.

A registry with the referrers API (``GET /v2/<name>/referrers/<digest>``) says so by answering
the PUT of a manifest that has a ``subject`` with an ``OCI-Subject`` header. Anywhere else (a
registry without the API, such as distribution 2.8; an OCI image layout) whoever pushes a
manifest with a ``subject`` keeps an OCI image index under the subject's *referrers tag*
(:func:`referrers_tag`) whose ``manifests`` hold a descriptor of every referrer: media type,
digest, size, ``artifactType`` (the manifest's, else its config's media type) and all of the
manifest's annotations (distribution spec, "Pushing Manifests with Subject" and "Referrers Tag
Schema"). :func:`referrer_entry` makes that descriptor, :func:`with_referrer` the new index.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference, ManifestError

_NOT_IN_TAG = re.compile(r"[^a-zA-Z0-9._-]")


def referrers_tag(subject: Digest) -> str:
    """``<alg>-<encoded>``: the algorithm truncated to 32 characters, the encoded part to 64,
    characters a tag may not hold replaced by ``-`` (``sha256:ab…`` -> ``sha256-ab…``)."""
    return _NOT_IN_TAG.sub("-", f"{subject.algorithm[:32]}-{subject.hex[:64]}")


def subject_of(raw: bytes) -> Digest | None:
    """The digest in the ``subject`` of a manifest or index, or None when it has none (or the
    bytes are not a JSON manifest: that is for the parser to say, not this check)."""
    if b'"subject"' not in raw:
        return None
    doc = _json(raw)
    subject = doc.get("subject") if isinstance(doc, dict) else None
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
        return None
    try:
        return Digest.parse(subject["digest"])
    except InvalidReference:  # a malformed subject: the parser refuses the manifest itself
        return None


def referrer_entry(raw: bytes, media_type: str, digest: Digest) -> dict[str, Any]:
    """The descriptor of the referrer ``raw`` (stored as ``digest``) in a referrers index."""
    doc = json.loads(raw)
    entry: dict[str, Any] = {
        "mediaType": media_type or str(doc.get("mediaType") or mt.OCI_MANIFEST),
        "digest": str(digest),
        "size": len(raw),
    }
    artifact_type = doc.get("artifactType")
    if not artifact_type and isinstance(doc.get("config"), dict):
        artifact_type = doc["config"].get("mediaType")
    if isinstance(artifact_type, str) and artifact_type:
        entry["artifactType"] = artifact_type
    annotations = doc.get("annotations")
    if isinstance(annotations, dict) and annotations:
        entry["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return entry


def _json(raw: bytes) -> Any:
    """``raw`` parsed as JSON, or None when it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _index_doc(raw: bytes, where: str) -> dict[str, Any]:
    doc = _json(raw)
    if (
        not isinstance(doc, dict)
        or doc.get("mediaType", mt.OCI_INDEX) != mt.OCI_INDEX
        or doc.get("schemaVersion") != 2
        or not isinstance(doc.get("manifests"), list)
        or not all(isinstance(m, dict) for m in doc["manifests"])
    ):
        kind = doc.get("mediaType") if isinstance(doc, dict) else None
        raise ManifestError(
            f"{where} holds {kind or 'something other than an OCI image index'}, not the referrers "
            "index of the OCI referrers tag schema; it is left alone, and the referrer is not "
            "listed there (delete or move that tag)"
        )
    return doc


def listed(raw: bytes | None, digest: str) -> bool:
    """Whether the referrers index ``raw`` lists ``digest`` (False when there is no index)."""
    doc = None if raw is None else _json(raw)
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    return isinstance(entries, list) and any(
        isinstance(m, dict) and m.get("digest") == digest for m in entries
    )


def with_referrer(raw: bytes | None, entry: dict[str, Any], where: str) -> bytes | None:
    """The referrers index ``raw`` (None: there is none yet) with ``entry`` added at the end, or
    None when it lists that digest already. Its other fields and entries are kept as they are.
    ManifestError when ``raw`` is not an OCI image index (the spec: report it, change nothing)."""
    doc: dict[str, Any] = (
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        if raw is None
        else _index_doc(raw, where)
    )
    if any(m.get("digest") == entry["digest"] for m in doc["manifests"]):
        return None
    doc["manifests"].append(entry)
    return json.dumps(doc, separators=(",", ":")).encode()


REFERRERS_TAG = r"(?:sha256|sha512)-[a-f0-9]{64}"
"""The shape of a referrers tag (a sha512 digest's hex truncated to 64 characters), as a pattern
for the tags built on it too (cosign's ``.sig``, ``.att``, ``.sbom`` suffixes)."""
_REFERRERS_TAG = re.compile(f"^{REFERRERS_TAG}$")


def is_referrers_tag(tag: str) -> bool:
    """Whether ``tag`` has the shape of a referrers tag (``sha256-<64 hex>``; sha512's truncated)."""
    return _REFERRERS_TAG.match(tag) is not None


def subject_of_tag(tag: str) -> Digest | None:
    """The subject a referrers tag stands for, when the tag holds all of it (a sha256 digest; a
    sha512 digest's tag is truncated, so it cannot be told back)."""
    algorithm, _, hexpart = tag.partition("-")
    if not is_referrers_tag(tag) or algorithm != "sha256":
        return None
    return Digest(algorithm, hexpart)
