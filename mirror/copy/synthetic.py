"""Synthetic images: small valid multi-platform images made on the fly (demo, tests, bench)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mirror.registry.base import ChunkSource, Repository
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.manifest import Descriptor, Platform

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def layer_tar(files: dict[str, bytes]) -> tuple[bytes, Digest]:
    """A gzip-compressed tar of ``files``, and the digest of the uncompressed tar (diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    compressed = gzip.compress(uncompressed, mtime=0)
    return compressed, Digest.of(uncompressed)


@dataclass(frozen=True)
class Blob:
    desc: Descriptor
    data: bytes


def _blob(media_type: str, data: bytes) -> Blob:
    return Blob(Descriptor(media_type, Digest.of(data), len(data)), data)


def image_for(platform: Platform, base: Blob, base_diff: Digest, note: str) -> tuple[list[Blob], bytes]:
    """The blobs and manifest bytes of a two-layer image for ``platform``."""
    top, top_diff = layer_tar({"etc/mirror-demo": f"{note} {platform}\n".encode()})
    top_blob = _blob(LAYER_TYPE, top)
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": platform.architecture,
        "os": platform.os,
        **({"variant": platform.variant} if platform.variant else {}),
        "config": {"Cmd": ["/bin/sh"], "Labels": {"org.opencontainers.image.title": note}},
        "rootfs": {"type": "layers", "diff_ids": [str(base_diff), str(top_diff)]},
        "history": [{"created_by": "mirror synthetic base"}, {"created_by": "mirror synthetic top"}],
    }
    config_blob = _blob(CONFIG_TYPE, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": _desc_json(config_blob.desc),
        "layers": [_desc_json(base.desc), _desc_json(top_blob.desc)],
    }
    return [base, top_blob, config_blob], json.dumps(manifest, indent=2).encode()


def _desc_json(desc: Descriptor) -> dict[str, object]:
    return {"mediaType": desc.media_type, "digest": str(desc.digest), "size": desc.size}


def _source(data: bytes) -> ChunkSource:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return chunks


async def push_demo_image(
    repo: Repository,
    tag: str,
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64", "linux/arm/v7"),
    note: str = "mirror demo",
) -> Digest:
    """Write a small multi-platform OCI image (an index of per-platform images) under ``tag``."""
    base, base_diff = layer_tar({"etc/os-release": b"NAME=mirror-demo\nID=mirror-demo\n"})
    base_blob = _blob(LAYER_TYPE, base)
    entries = []
    for text in platforms:
        platform = Platform.parse(text)
        blobs, manifest = image_for(platform, base_blob, base_diff, note)
        for blob in blobs:
            if not await repo.has_blob(blob.desc.digest):
                await repo.put_blob(blob.desc, _source(blob.data), replayable=True)
        digest = Digest.of(manifest)
        await repo.put_manifest(str(digest), manifest, mt.OCI_MANIFEST)
        plat: dict[str, str] = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            plat["variant"] = platform.variant
        entries.append(
            {"mediaType": mt.OCI_MANIFEST, "digest": str(digest), "size": len(manifest), "platform": plat}
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}, indent=2)
    raw = index.encode()
    await repo.put_manifest(tag, raw, mt.OCI_INDEX)
    return Digest.of(raw)
