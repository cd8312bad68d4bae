"""Completeness by construction: an `oci:` or `s3://` layout writes a manifest only when it holds
every blob (with its size) and every child manifest the manifest names; `missing_content` walks
what a tag names in any store, for a pass or a test to assert a destination is whole.

Before the fix a layout stored any manifest it was given: a referrer whose empty config blob a
transfer had left out was written and tagged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.registry.completeness import missing_content
from mirror.registry.ocilayout import OciLayout
from mirror.registry.s3 import S3Layout, S3Options
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import IncompleteManifest
from mirror.types.manifest import Descriptor
from tests.support.images import push_index
from tests.support.mediatypes import OCI_CONFIG, OCI_LAYER

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes " * 100


def desc(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type, Digest.of(data), len(data))


def image_manifest() -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(Digest.of(CONFIG)), "size": len(CONFIG)},
            "layers": [{"mediaType": OCI_LAYER, "digest": str(Digest.of(LAYER)), "size": len(LAYER)}],
        }
    ).encode()


def index_of(child: bytes) -> bytes:
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(child)), "size": len(child)}
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]}).encode()


def source_of(data: bytes) -> Any:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return chunks


async def put(repo: Any, data: bytes) -> None:
    await repo.put_blob(desc(data), source_of(data), replayable=True)


async def refuses_until_whole(repo: Any) -> None:
    manifest = image_manifest()
    await put(repo, CONFIG)
    with pytest.raises(
        IncompleteManifest, match=f"names {Digest.of(LAYER)} .* which this store does not hold"
    ):
        await repo.put_manifest("v1", manifest, mt.OCI_MANIFEST)
    assert await repo.head_manifest("v1") is None and not await repo.has_blob(Digest.of(manifest))
    with pytest.raises(IncompleteManifest, match=f"names {Digest.of(manifest)}"):
        await repo.put_manifest("i1", index_of(manifest), mt.OCI_INDEX)  # its child is not there
    await put(repo, LAYER)
    await repo.put_manifest(str(Digest.of(manifest)), manifest, mt.OCI_MANIFEST)
    await repo.put_manifest("i1", index_of(manifest), mt.OCI_INDEX)
    assert await missing_content(repo, "i1") == []


async def test_an_oci_layout_writes_a_manifest_only_over_what_it_names(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "lay", create=True)
    await refuses_until_whole(layout)
    # A blob cut short afterwards: the walk names it.
    path = tmp_path / "lay" / "blobs" / "sha256" / Digest.of(LAYER).hex
    path.write_bytes(LAYER[:10])
    assert await missing_content(layout, "i1") == [
        f"blob {Digest.of(LAYER)} ({len(LAYER)} bytes) of {Digest.of(image_manifest())} is missing"
    ]


async def test_an_s3_layout_writes_a_manifest_only_over_what_it_names(bucket: str) -> None:
    repo = S3Layout.from_location(f"{bucket}/lay", create=True, options=S3Options.from_env())
    await refuses_until_whole(repo)
    # What it wrote itself is known: writing another tag asks the bucket nothing about the blobs.
    asked: list[str] = []
    head = repo._s3.head

    async def spy(key: str) -> int | None:
        asked.append(key)
        return await head(key)

    repo._s3.head = spy  # type: ignore[method-assign]
    await repo.put_manifest("v2", image_manifest(), mt.OCI_MANIFEST)
    blob_keys = {f"lay/blobs/sha256/{Digest.of(b).hex}" for b in (CONFIG, LAYER)}
    assert not blob_keys & set(asked), asked
    await repo.aclose()


def test_a_copied_index_is_whole_in_both_layouts(
    registry: Any,
    tmp_path: Path,
    aws_env: str,
    bucket: str,
) -> None:
    push_index(registry, "apps/multi", "v1", seed="whole")
    out = tmp_path / "out"
    args = ["copy", "-q", registry.ref("apps/multi", "v1"), f"oci:{out}:v1", f"s3://{bucket}/multi:v1"]
    assert main(args) == 0

    async def check() -> None:
        s3_layout = S3Layout.from_location(f"{bucket}/multi", options=S3Options.from_env())
        assert await missing_content(OciLayout(out), "v1") == []
        assert await missing_content(s3_layout, "v1") == []
        await s3_layout.aclose()

    import asyncio

    asyncio.run(check())
