"""Descriptors, image manifests and indexes: parsed from bytes, never re-serialised.

Bytes are kept as received so digests are preserved; parsing only extracts what the copy
needs (children, platforms) and validates it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference, ManifestError

MAX_INDEX_ENTRIES = 10_000
MAX_LAYERS = 10_000

# BuildKit's attestation manifests (SBOM, provenance): index entries with platform
# unknown/unknown whose annotations name the image manifest they describe.
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION = "attestation-manifest"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidReference(
                f"platform {text!r} is not valid: expected os/arch[/variant], e.g. linux/arm64/v8"
            )
        return cls(*parts)

    def matches(self, other: Platform) -> bool:
        """Whether ``other`` (an index entry) satisfies this wanted platform."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not self.variant or self.variant == other.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    urls: tuple[str, ...] = ()

    @property
    def is_manifest(self) -> bool:
        return mt.is_manifest(self.media_type)

    @property
    def distributable(self) -> bool:
        """False for a foreign / non-distributable layer: it stays a reference to its URLs."""
        return not mt.is_non_distributable(self.media_type)

    def annotation(self, key: str) -> str | None:
        return next((v for k, v in self.annotations if k == key), None)

    @property
    def attests(self) -> str | None:
        """For a BuildKit attestation manifest, the digest of the image it describes."""
        if self.annotation(REFERENCE_TYPE) != ATTESTATION:
            return None
        return self.annotation(REFERENCE_DIGEST)


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: descriptor is not an object")
    media_type = raw.get("mediaType", "")
    digest_text = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str):
        raise ManifestError(f"{where}: mediaType is not a string")
    if not isinstance(digest_text, str):
        raise ManifestError(f"{where}: digest is missing")
    try:
        digest = Digest.parse(digest_text)
    except InvalidReference as exc:
        raise ManifestError(f"{where}: {exc.message}") from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestError(f"{where}: size must be a non-negative integer, got {size!r}")
    platform = None
    plat = raw.get("platform")
    if plat is not None:
        if not isinstance(plat, dict):
            raise ManifestError(f"{where}: platform is not an object")
        os_, arch = plat.get("os", ""), plat.get("architecture", "")
        variant = plat.get("variant", "")
        if not all(isinstance(v, str) for v in (os_, arch, variant)):
            raise ManifestError(f"{where}: platform fields must be strings")
        platform = Platform(os_, arch, variant)
    annotations: tuple[tuple[str, str], ...] = ()
    ann = raw.get("annotations")
    if isinstance(ann, dict):
        annotations = tuple(sorted((str(k), str(v)) for k, v in ann.items()))
    urls = raw.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestError(f"{where}: urls must be a list of strings")
    # Interned: a pass keeps a descriptor per blob, and a few media types name them all.
    return Descriptor(sys.intern(media_type), digest, size, platform, annotations, tuple(urls))


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index, with the exact bytes it came from."""

    media_type: str
    raw: bytes
    digest: Digest
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.media_type)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config then layers: every blob a store holding this image manifest must hold too.
        Foreign / non-distributable layers are not among them: they stay references."""
        return ((self.config,) if self.config else ()) + tuple(b for b in self.layers if b.distributable)

    @property
    def references(self) -> tuple[Descriptor, ...]:
        """Config then every layer, foreign ones included: all the image is made of."""
        return ((self.config,) if self.config else ()) + self.layers

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


def parse_manifest(raw: bytes, media_type: str = "", *, digest: Digest | None = None) -> Manifest:
    """Parse manifest bytes. ``media_type`` is the Content-Type, used when the body has none."""
    if len(raw) > mt.MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(raw)} bytes: over the {mt.MAX_MANIFEST_BYTES} limit")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    body_type = doc.get("mediaType")
    header_type = media_type.split(";")[0].strip()
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestError("manifest mediaType is not a string")
    if body_type and header_type and mt.is_manifest(header_type) and body_type != header_type:
        raise ManifestError(f"manifest body says {body_type!r} but it was served as {header_type!r}")
    kind = body_type or header_type
    if not kind:
        # OCI allows omitting mediaType; infer from the shape.
        kind = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if not mt.is_manifest(kind):
        if doc.get("schemaVersion") == 1:
            raise ManifestError(
                "Docker schema 1 manifests are deprecated and not supported: push the image "
                "again with a current client"
            )
        raise ManifestError(f"unsupported manifest media type {kind!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"manifest schemaVersion must be 2, got {doc.get('schemaVersion')!r}")
    computed = Digest.of(raw, digest.algorithm if digest else "sha256")
    if digest is not None and computed != digest:
        raise ManifestError(f"manifest digest mismatch: expected {digest}, got {computed}")
    subject = _descriptor(doc["subject"], "subject") if "subject" in doc else None
    annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
    ann = {str(k): str(v) for k, v in (annotations or {}).items()}
    if mt.is_index(kind):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("index has no 'manifests' list")
        if len(entries) > MAX_INDEX_ENTRIES:
            raise ManifestError(f"index lists {len(entries)} manifests: over {MAX_INDEX_ENTRIES}")
        children = tuple(_descriptor(e, f"manifests[{i}]") for i, e in enumerate(entries))
        for i, child in enumerate(children):
            if child.digest == computed:
                raise ManifestError(f"manifests[{i}]: index refers to itself")
        return Manifest(kind, raw, computed, manifests=children, subject=subject, annotations=ann)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("image manifest has no 'layers' list")
    if len(layers) > MAX_LAYERS:
        raise ManifestError(f"image manifest lists {len(layers)} layers: over {MAX_LAYERS}")
    if "config" not in doc:
        raise ManifestError("image manifest has no 'config'")
    config = _descriptor(doc["config"], "config")
    parsed = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers))
    return Manifest(kind, raw, computed, config=config, layers=parsed, subject=subject, annotations=ann)


def platforms(index: Manifest) -> list[str]:
    """The platforms an index offers, each once, in order; attestation manifests are not one."""
    seen: dict[str, None] = {}
    for desc in index.manifests:
        if desc.platform is not None and desc.attests is None:
            seen.setdefault(str(desc.platform))
    return list(seen)


def filter_index(index: Manifest, wanted: list[Platform]) -> Manifest:
    """A new index holding only the children whose platform matches one of ``wanted``, and the
    attestation manifests (SBOM, provenance) of those children.

    The result has new bytes and therefore a new digest; everything else in the document
    (annotations, order, descriptor fields) is kept.
    """
    doc = json.loads(index.raw)
    chosen = {
        desc.digest
        for desc in index.manifests
        if desc.attests is None
        and desc.platform is not None
        and any(w.matches(desc.platform) for w in wanted)
    }
    if not chosen:
        available = ", ".join(platforms(index)) or "none"
        raise ManifestError(
            f"no manifest in the index matches {', '.join(map(str, wanted))}; available: {available}"
        )
    kept = [
        raw_entry
        for raw_entry, desc in zip(doc["manifests"], index.manifests, strict=True)
        if desc.digest in chosen or desc.attests in {str(d) for d in chosen}
    ]
    doc["manifests"] = kept
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return parse_manifest(raw, index.media_type)
