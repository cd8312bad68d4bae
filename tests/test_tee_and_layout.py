"""The verified streaming tee and the OCI layout store, without a network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.synthetic import push_demo_image
from mirror.copy.tee import tee
from mirror.registry.base import ChunkSource
from mirror.registry.ocilayout import OciLayout
from mirror.types.digest import Digest
from mirror.types.errors import DigestMismatch, ManifestError, SizeMismatch
from mirror.types.manifest import Descriptor, Platform, parse_manifest


class ListReader:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.size: int | None = sum(map(len, chunks))
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for c in self._chunks:
            await asyncio.sleep(0)
            yield c

    async def close(self) -> None:
        self.closed = True


def desc_of(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of(data), len(data))


async def collect(source: ChunkSource, into: list[bytes]) -> None:
    async for chunk in source():
        into.append(chunk)


async def test_tee_fans_out_verified_bytes() -> None:
    chunks = [bytes([i]) * 1000 for i in range(20)]
    data = b"".join(chunks)
    outs: list[list[bytes]] = [[], [], []]
    reader = ListReader(chunks)
    result = await tee(reader, desc_of(data), [lambda s, o=o: collect(s, o) for o in outs], depth=2)
    assert result.source_error is None and result.sink_errors == [None, None, None]
    assert all(b"".join(o) == data for o in outs)
    assert result.bytes_read == len(data) and reader.closed


async def test_tee_withholds_last_chunk_of_corrupt_blob() -> None:
    good = [b"a" * 100, b"b" * 100, b"c" * 100]
    bad = [b"a" * 100, b"b" * 100, b"X" * 100]
    got: list[bytes] = []
    result = await tee(ListReader(bad), desc_of(b"".join(good)), [lambda s: collect(s, got)])
    assert isinstance(result.source_error, DigestMismatch)
    assert isinstance(result.sink_errors[0], DigestMismatch)
    # The sink saw at most the verified-so-far prefix, never the final (corrupt) chunk.
    assert b"".join(got) in (b"", b"a" * 100, b"a" * 100 + b"b" * 100)


async def test_tee_size_checks() -> None:
    data = b"z" * 50
    longer = await tee(ListReader([data, b"extra"]), desc_of(data), [lambda s: collect(s, [])])
    assert isinstance(longer.source_error, SizeMismatch)
    shorter = await tee(ListReader([data[:10]]), desc_of(data), [lambda s: collect(s, [])])
    assert isinstance(shorter.source_error, SizeMismatch)


async def test_tee_failing_sink_does_not_stop_others() -> None:
    data = [b"q" * 10] * 50
    got: list[bytes] = []

    async def broken(source: ChunkSource) -> None:
        async for _ in source():
            raise OSError("disk full")

    result = await tee(
        ListReader(data), desc_of(b"".join(data)), [broken, lambda s: collect(s, got)], depth=1
    )
    assert isinstance(result.sink_errors[0], OSError) and result.sink_errors[1] is None
    assert b"".join(got) == b"".join(data)


async def test_layout_copy_round_trip(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src", create=True)
    digest = await push_demo_image(src, "v1")
    dst = OciLayout(tmp_path / "dst", create=True)
    engine = CopyEngine()
    [result] = await engine.run([CopyTask(src, "v1", [Destination(dst, "v1")])])
    assert result.ok and result.digest == str(digest)
    assert (await dst.get_manifest("v1")).digest == digest
    assert await dst.list_tags() == ["v1"]
    # Again: nothing to do.
    [again] = await CopyEngine().run([CopyTask(src, "v1", [Destination(dst, "v1")])])
    assert again.status == "skipped"
    # No temporary files are left behind.
    assert not [p for p in (tmp_path / "dst").rglob(".tmp-*")]


async def test_layout_platform_filter_and_conflict(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src", create=True)
    digest = await push_demo_image(src, "v1")
    dst = OciLayout(tmp_path / "dst", create=True)
    task = CopyTask(src, "v1", [Destination(dst, "v1")], platforms=(Platform.parse("linux/arm64"),))
    [result] = await CopyEngine().run([task])
    assert result.ok and result.digest != str(digest) and "filtered" in result.note
    index = parse_manifest((await dst.get_manifest("v1")).raw)
    assert [str(d.platform) for d in index.manifests] == ["linux/arm64"]
    # The full index now conflicts with the filtered one at the same tag.
    [conflict] = await CopyEngine().run([CopyTask(src, "v1", [Destination(dst, "v1")])])
    assert conflict.status == "conflict"
    assert (await dst.get_manifest("v1")).digest == index.digest  # untouched
    [moved] = await CopyEngine().run([CopyTask(src, "v1", [Destination(dst, "v1")], overwrite=True)])
    assert moved.status == "copied" and (await dst.get_manifest("v1")).digest == digest


async def test_layout_rejects_hostile_index(tmp_path: Path) -> None:
    root = tmp_path / "evil"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for entry, message in [
        ({"digest": "sha256:../../../etc/passwd", "size": 1}, "not valid"),
        (
            {
                "digest": "sha256:" + "a" * 64,
                "size": 1,
                "annotations": {"org.opencontainers.image.ref.name": ["../x"]},
            },
            "not a string",
        ),
    ]:
        (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
        with pytest.raises(ManifestError, match=message):
            await OciLayout(root).head_manifest("latest")


async def test_layout_put_blob_rejects_wrong_bytes(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "l", create=True)
    desc = desc_of(b"right")

    async def wrong() -> AsyncIterator[bytes]:
        yield b"wrong"

    with pytest.raises(DigestMismatch):
        await layout.put_blob(desc, wrong, replayable=True)
    assert not await layout.has_blob(desc.digest)
    assert not list((tmp_path / "l" / "blobs" / "sha256").iterdir())


async def test_an_unexpected_error_fails_one_image_not_the_run(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src", create=True)
    await push_demo_image(src, "good")
    await push_demo_image(src, "bad", note="other")

    class Flaky(OciLayout):
        async def head_manifest(self, reference: str) -> Any:
            if reference == "bad":
                raise KeyError("a bug")
            return await super().head_manifest(reference)

        async def get_manifest(self, reference: str) -> Any:
            if reference == "bad":
                raise KeyError("a bug")
            return await super().get_manifest(reference)

    flaky = Flaky(tmp_path / "src")
    dst = OciLayout(tmp_path / "dst", create=True)
    good, bad = await CopyEngine().run(
        [
            CopyTask(flaky, "good", [Destination(dst, "good")]),
            CopyTask(flaky, "bad", [Destination(dst, "bad")]),
        ]
    )
    assert good.status == "copied"
    assert bad.status == "failed" and bad.error_kind == "internal" and "KeyError" in bad.error
    assert await dst.list_tags() == ["good"]
