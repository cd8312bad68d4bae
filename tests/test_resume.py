"""A source read that breaks mid-blob continues from the offset reached instead of restarting.

Real registries on loopback; a recording proxy in front of each side cuts the source's blob body
at a byte offset, strips range support, or changes the bytes of a ranged answer. The checks are
on what the servers saw: the ranged GET, the bytes read, one destination PUT, and the
destination's blob read back and hashed. Unit tests cover the reader's bounds and the
Content-Range check without a network.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.copy.reads import MISMATCH_READS
from mirror.registry.ocilayout import OciLayout
from mirror.registry.resume import RANGE, REREAD, Reopened, ResumingReader, range_mismatch
from mirror.types.digest import Digest
from mirror.types.errors import TransportError
from mirror.types.manifest import Descriptor
from tests.support.faults import FlipBytes, IgnoreRange, Truncate
from tests.support.images import fetch_blob, push_image

# moto's S3 server and its fixtures, shared with the S3 store's own tests

KiB = 1024
SIZE = 768 * KiB  # the layer whose body is cut
CUT = 500 * KiB


class TruncateWhole(Truncate):
    """Truncate only reads of the whole blob (no Range header)."""

    def claim(self, record: Any) -> bool:
        return record.header("Range") is None and super().claim(record)


class FlipRanged(FlipBytes):
    """FlipBytes on ranged requests only: the source's content changed between the two reads."""

    def claim(self, record: Any) -> bool:
        return record.header("Range") is not None and super().claim(record)


def _seed(src: Any) -> tuple[str, int]:
    """The cut layer's digest, and the bytes of every blob of the image."""
    image = push_image(src, "apps/big", "v1", layer_sizes=(SIZE, 3 * KiB), seed="resume")
    return image.layers[0].digest, SIZE + 3 * KiB + len(image.config)


def _copy(src: Any, dst: Any, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    report = tmp_path / f"r-{time.monotonic_ns()}.json"
    code = main(
        ["copy", "-q", f"{src.host}/apps/big:v1", f"{dst.host}/mirror/big:v1", "--report", str(report)]
    )
    return code, json.loads(report.read_text())


def _offsets(proxy: Any, digest: str) -> list[int | None]:
    """Where each GET of ``digest`` started: None for a read of the whole blob. A reset loses
    what was still in flight, so a read resumes at or before the byte the proxy cut at."""
    out: list[int | None] = []
    for r in proxy.select("GET", digest):
        value = r.header("Range")
        out.append(None if value is None else int(value.removeprefix("bytes=").rstrip("-")))
    return out


def _blob_puts(proxy: Any, digest: str) -> list[Any]:
    return [
        r for r in proxy.select("PUT", "/blobs/uploads/") if f"digest={digest}" in r.query.replace("%3A", ":")
    ]


def _check_destination(dst: Any, digest: str) -> None:
    data = fetch_blob(dst, "mirror/big", digest)
    assert len(data) == SIZE and "sha256:" + hashlib.sha256(data).hexdigest() == digest


def test_a_reset_mid_blob_resumes_with_a_range(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    layer, total = _seed(src)
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    cut = sp.add_fault(Truncate(CUT, method="GET", path=layer))
    code, doc = _copy(sp, dp, tmp_path)
    assert code == 0, doc
    assert cut.fired == 1
    gets = sp.select("GET", layer)
    first, offset = _offsets(sp, layer)
    assert first is None and offset is not None and 0 < offset <= CUT
    assert [r.status for r in gets] == [200, 206]
    assert gets[1].header("If-Range")  # distribution's ETag, so a changed blob comes back whole
    totals = doc["totals"]
    assert totals["blob_resumes"] == 1 and totals["bytes_reread"] == 0
    assert totals["bytes_read"] == total  # each byte once: the cut read's and then the range's
    puts = _blob_puts(dp, layer)
    assert len(puts) == 1 and puts[0].status == 201  # the monolithic PUT survived the source reset
    _check_destination(dst, layer)


def test_twice_in_one_blob(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    layer, _ = _seed(src)
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    cut = sp.add_fault(Truncate(200 * KiB, times=2, method="GET", path=layer))
    code, doc = _copy(sp, dp, tmp_path)
    assert code == 0, doc
    first, a, b = _offsets(sp, layer)
    assert cut.fired == 2 and first is None and a is not None and b is not None
    assert 0 < a <= 200 * KiB and a < b <= a + 200 * KiB
    assert doc["totals"]["blob_resumes"] == 2
    assert len(_blob_puts(dp, layer)) == 1
    _check_destination(dst, layer)


def test_a_source_without_range_support_is_read_afresh(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """The whole blob comes again; what was already sent is dropped, and the PUT goes on."""
    src, dst = registry_pair
    layer, _ = _seed(src)
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    sp.add_fault(Truncate(CUT, method="GET", path=layer))
    ignored = sp.add_fault(IgnoreRange(method="GET", path=layer))
    code, doc = _copy(sp, dp, tmp_path)
    assert code == 0, doc
    assert ignored.fired == 1
    assert [r.status for r in sp.select("GET", layer)] == [200, 200]
    assert doc["totals"]["blob_resumes"] == 1 and 0 < doc["totals"]["bytes_reread"] <= CUT
    assert len(_blob_puts(dp, layer)) == 1
    _check_destination(dst, layer)


def test_content_that_changes_between_reads_is_never_accepted(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """The ranged answer's bytes differ: the spliced stream fails its digest, its upload is cut
    before the last byte, and a fresh full read (which verifies) is what lands."""
    src, dst = registry_pair
    layer, _ = _seed(src)
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    sp.add_fault(TruncateWhole(CUT, method="GET", path=layer))
    flip = sp.add_fault(FlipRanged(offset=1000, method="GET", path=layer))
    code, doc = _copy(sp, dp, tmp_path)
    assert code == 0, doc
    assert flip.fired == 1
    offsets = _offsets(sp, layer)
    assert len(offsets) == 3 and offsets[0] is None and offsets[1] and offsets[2] is None
    assert doc["totals"]["blob_resumes"] == 1
    puts = _blob_puts(dp, layer)
    assert [p.status for p in puts].count(201) == 1 and puts[-1].status == 201
    # The spliced blob's upload (if it had started) never got its last chunk.
    assert all(p.body_bytes < SIZE for p in puts[:-1])
    _check_destination(dst, layer)


def test_content_that_keeps_changing_fails_and_lands_nothing(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    layer, _ = _seed(src)
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    cuts = sp.add_fault(TruncateWhole(CUT, times=None, method="GET", path=layer))
    flips = sp.add_fault(FlipRanged(offset=10, times=None, method="GET", path=layer))
    code, doc = _copy(sp, dp, tmp_path)
    assert code == 1
    dest = doc["images"][0]["destinations"][0]
    # Four different wrong digests, or the same wrong one twice (a cut at the same byte).
    assert dest["error_kind"] in ("digest_mismatch", "source_corrupt"), dest
    assert all(r.status != 201 for r in _blob_puts(dp, layer))
    # Bounded: the engine's reads after a mismatch (4), each a cut read of the whole blob and a
    # changed range.
    assert 2 <= cuts.fired == flips.fired <= MISMATCH_READS
    assert len(sp.select("GET", layer)) == 2 * cuts.fired


# -- the reader alone -----------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, cut: int | None = None, piece: int = 100) -> None:
        self.data, self.cut, self.piece = data, cut, piece
        self.size: int | None = len(data)
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        end = len(self.data) if self.cut is None else self.cut
        for i in range(0, end, self.piece):
            yield self.data[i : min(end, i + self.piece)]
        if self.cut is not None:
            raise TransportError(f"cut at {self.cut}")

    async def close(self) -> None:
        self.closed = True


async def _read(reader: ResumingReader) -> bytes:
    return b"".join([c async for c in reader.chunks()])


def test_reader_splices_ranges_and_drops_rereads() -> None:
    data = bytes(range(256)) * 40
    answers = [
        lambda off: Reopened(_Reader(data[off:], cut=1000)),  # a range, cut again
        lambda off: Reopened(_Reader(data), skip=off, reason="whole"),  # then the whole blob
    ]
    asked: list[int] = []

    async def reopen(offset: int) -> Reopened:
        asked.append(offset)
        return answers[len(asked) - 1](offset)

    reader = ResumingReader(_Reader(data, cut=3000), len(data), reopen)
    assert asyncio.run(_read(reader)) == data
    assert asked == [3000, 4000]
    assert [(r.offset, r.how) for r in reader.resumes] == [(3000, RANGE), (4000, REREAD)]
    assert reader.bytes_reread == 4000


def test_reader_gives_up_after_stalls_and_at_its_bound() -> None:
    data = b"x" * 1000

    async def nothing(offset: int) -> Reopened:
        return Reopened(_Reader(data[offset:], cut=0))

    stalled = ResumingReader(_Reader(data, cut=500), len(data), nothing)
    with pytest.raises(TransportError):
        asyncio.run(_read(stalled))
    assert len(stalled.resumes) == 3  # the third empty answer in a row ends it

    async def a_little(offset: int) -> Reopened:
        return Reopened(_Reader(data[offset:], cut=10))

    bounded = ResumingReader(_Reader(data, cut=10), len(data), a_little, max_resumes=4)
    with pytest.raises(TransportError):
        asyncio.run(_read(bounded))
    assert len(bounded.resumes) == 4


def test_content_range_must_name_exactly_the_rest_of_this_blob() -> None:
    assert range_mismatch("bytes 100-999/1000", 100, 1000) == ""
    assert "instead of 100-999" in range_mismatch("bytes 0-999/1000", 100, 1000)
    assert "of 2000 bytes" in range_mismatch("bytes 100-999/2000", 100, 1000)
    assert "of * bytes" in range_mismatch("bytes 100-999/*", 100, 1000)
    assert "Content-Range" in range_mismatch(None, 100, 1000)


def test_an_oci_layout_read_resumes_by_seeking(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    path = tmp_path / "blobs" / "sha256" / digest.hex
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    desc = Descriptor("application/octet-stream", digest, len(data))
    reader = asyncio.run(OciLayout(tmp_path).open_blob(desc))
    assert isinstance(reader, ResumingReader)
    first = reader._reader  # an I/O error after the first chunk
    original = first.chunks

    async def failing() -> AsyncIterator[bytes]:
        async for chunk in original():
            yield chunk
            raise TransportError("reading broke")

    first.chunks = failing  # type: ignore[method-assign]
    assert asyncio.run(_read(reader)) == data
    assert [(r.offset, r.how) for r in reader.resumes] == [(1024 * 1024, RANGE)]


# -- S3 ---------------------------------------------------------------------------------------------


def test_an_s3_read_resumes_with_a_ranged_get(
    registry_pair: Any, proxy_factory: Any, moto_url: str, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import boto3

    src, dst = registry_pair
    layer, _ = _seed(src)
    bucket = f"mirror-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(Bucket=bucket)
    assert main(["copy", "-q", f"{src.host}/apps/big:v1", f"s3://{bucket}/dr/big:v1"]) == 0
    proxy = proxy_factory.start(moto_url)
    monkeypatch.setenv("MIRROR_S3_ENDPOINT_URL", proxy.url)
    key = f"blobs/sha256/{layer.split(':')[1]}"
    cut = proxy.add_fault(Truncate(CUT, method="GET", path=key))
    report = Path(str(dst.root)) / "s3-resume.json"
    assert (
        main(["copy", "-q", f"s3://{bucket}/dr/big:v1", f"{dst.host}/mirror/big:v1", "--report", str(report)])
        == 0
    )
    gets = proxy.select("GET", key)
    assert cut.fired == 1 and [r.status for r in gets] == [200, 206]
    assert gets[1].header("Range") is not None and gets[1].header("If-Match")
    assert json.loads(report.read_text())["totals"]["blob_resumes"] == 1
    _check_destination(dst, layer)
