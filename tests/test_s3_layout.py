"""The S3 store against moto's S3 server on loopback: protocol, multipart, aborts, hostile input."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as bce

from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.synthetic import push_demo_image
from mirror.registry.aws import PreconditionFailed, translate
from mirror.registry.base import ChunkSource
from mirror.registry.layoutindex import parse_index
from mirror.registry.multipart import MiB
from mirror.registry.ocilayout import REF_NAME, OciLayout
from mirror.registry.s3 import S3Layout, S3Options, split_location
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import (
    AuthError,
    DigestMismatch,
    InputError,
    InvalidReference,
    ManifestError,
    MirrorError,
    NotFound,
    RegistryError,
    SizeMismatch,
    TransportError,
)
from mirror.types.manifest import Descriptor
from tests.support.aws import uploads


def layout(bucket: str, prefix: str = "backup/app", *, create: bool = True, **options: Any) -> S3Layout:
    return S3Layout.from_location(
        f"{bucket}/{prefix}",
        create=create,
        options=S3Options.from_env() if not options else _options(**options),
    )


def _options(**changes: Any) -> S3Options:
    base = S3Options.from_env()
    return S3Options(**{**base.__dict__, **changes})


def blob(size: int, seed: int = 1) -> tuple[Descriptor, bytes]:
    data = random.Random(seed).randbytes(size)
    return Descriptor("application/octet-stream", Digest.of(data), size), data


def chunks_of(
    data: bytes, chunk: int = MiB, fail_after: int | None = None, read: list[int] | None = None
) -> ChunkSource:
    async def source() -> AsyncIterator[bytes]:
        for offset in range(0, len(data), chunk):
            if fail_after is not None and offset >= fail_after:
                raise RuntimeError("the source broke mid-stream")
            if read is not None:
                read.append(offset)
            await asyncio.sleep(0)
            yield data[offset : offset + chunk]

    return source


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


async def read_all(repo: S3Layout, desc: Descriptor) -> bytes:
    reader = await repo.open_blob(desc)
    try:
        return b"".join([c async for c in reader.chunks()])
    finally:
        await reader.close()


# -- the protocol --------------------------------------------------------------------------------


async def test_blobs_manifests_tags(s3: Any, bucket: str) -> None:
    repo = layout(bucket)
    assert repo.name == f"s3://{bucket}/backup/app" and repo.registry == repo.name
    desc, data = blob(3000)
    assert not await repo.has_blob(desc.digest)
    await repo.put_blob(desc, chunks_of(data, 1000), replayable=False)
    assert await repo.has_blob(desc.digest)
    assert await read_all(repo, desc) == data

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(desc.digest),
                "size": desc.size,
            },
            "layers": [],
        }
    ).encode()
    digest = Digest.of(manifest)
    await repo.put_manifest("v1", manifest, mt.OCI_MANIFEST)
    await repo.put_manifest("v2", manifest, mt.OCI_MANIFEST)
    assert await repo.list_tags() == ["v1", "v2"]
    for ref in ("v1", str(digest)):
        info = await repo.head_manifest(ref)
        assert info is not None and info.digest == digest and info.media_type == mt.OCI_MANIFEST
        assert info.size == len(manifest)
        fetched = await repo.get_manifest(ref)
        assert fetched.raw == manifest and fetched.digest == digest and fetched.media_type == mt.OCI_MANIFEST
    assert await repo.head_manifest("nope") is None
    with pytest.raises(NotFound):
        await repo.get_manifest("nope")

    # the OCI image layout, under the prefix
    assert keys(s3, bucket) == sorted(
        [
            "backup/app/oci-layout",
            "backup/app/index.json",
            f"backup/app/blobs/sha256/{desc.digest.hex}",
            f"backup/app/blobs/sha256/{digest.hex}",
        ]
    )
    layout_doc = json.loads(s3.get_object(Bucket=bucket, Key="backup/app/oci-layout")["Body"].read())
    assert layout_doc == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(s3.get_object(Bucket=bucket, Key="backup/app/index.json")["Body"].read())
    assert index["schemaVersion"] == 2 and index["mediaType"] == mt.OCI_INDEX
    assert [e["annotations"][REF_NAME] for e in index["manifests"]] == ["v1", "v2"]

    await repo.delete_manifest("v1")
    assert await repo.list_tags() == ["v2"]
    await repo.delete_manifest(str(digest))
    assert await repo.list_tags() == []
    assert await repo.mount_blob(desc.digest, "elsewhere") is False
    assert repo._client is not None  # one client, kept for the next operation
    await repo.aclose()
    assert repo._client is None


async def test_reader_keeps_the_client_until_closed(bucket: str) -> None:
    repo = layout(bucket)
    desc, data = blob(10)
    await repo.put_blob(desc, chunks_of(data), replayable=True)
    reader = await repo.open_blob(desc)
    await repo.aclose()
    assert repo._client is not None and reader.size == 10  # the open reader still uses it
    assert b"".join([c async for c in reader.chunks()]) == data
    await reader.close()
    await reader.close()
    assert repo._client is None
    async with repo:
        assert await repo.has_blob(desc.digest)
        assert repo._client is not None
    assert repo._client is None
    with pytest.raises(NotFound, match="not found"):
        await repo.open_blob(blob(5, seed=9)[0])


async def test_idle_client_closes_by_itself(bucket: str) -> None:
    repo = layout(bucket, idle_timeout=0.1)
    await repo.list_tags()
    first = repo._client
    assert first is not None
    await repo.list_tags()
    assert repo._client is first  # reused while busy
    for _ in range(40):
        if repo._client is None:
            break
        await asyncio.sleep(0.05)
    assert repo._client is None
    assert await repo.list_tags() == []  # and reopened on the next use


async def test_a_bucket_root_is_a_layout_too(s3: Any, bucket: str) -> None:
    repo = S3Layout.from_location(bucket, create=True)
    assert repo.name == f"s3://{bucket}"
    digest = await push_demo_image(repo, "latest")
    assert (await repo.get_manifest("latest")).digest == digest
    assert "oci-layout" in keys(s3, bucket) and "index.json" in keys(s3, bucket)


# -- the same layout as an OCI layout directory --------------------------------------------------


async def test_s3_holds_exactly_an_oci_layout(s3: Any, bucket: str, tmp_path: Path) -> None:
    source = OciLayout(tmp_path / "src", create=True)
    digest = await push_demo_image(source, "v1")
    dest = layout(bucket, "mirror/demo")
    engine = CopyEngine()
    [result] = await engine.run([CopyTask(source, "v1", [Destination(dest, "v1")])])
    assert result.ok, result
    # download every object of the prefix: the result is an OCI layout directory
    out = tmp_path / "downloaded"
    for key in keys(s3, bucket):
        path = out / key.removeprefix("mirror/demo/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    copied = OciLayout(out)
    assert await copied.list_tags() == ["v1"]
    fetched = await copied.get_manifest("v1")
    assert fetched.digest == digest
    src_blobs = sorted(p.name for p in (tmp_path / "src" / "blobs" / "sha256").iterdir())
    assert sorted(p.name for p in (out / "blobs" / "sha256").iterdir()) == src_blobs
    # and back: S3 as the source of a copy
    back = OciLayout(tmp_path / "back", create=True)
    [again] = await CopyEngine().run([CopyTask(dest, "v1", [Destination(back, "v1")])])
    assert again.ok and (await back.get_manifest("v1")).digest == digest


# -- multipart -----------------------------------------------------------------------------------


async def test_blob_larger_than_one_part_uses_multipart(s3: Any, bucket: str) -> None:
    repo = layout(bucket, part_size=5 * MiB, concurrency=2)
    desc, data = blob(12 * MiB + 7)
    await repo.put_blob(desc, chunks_of(data, 256 * 1024), replayable=False)
    key = f"backup/app/blobs/sha256/{desc.digest.hex}"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == desc.size
    assert head["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + 2 MiB
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert uploads(s3, bucket) == []
    assert await read_all(repo, desc) == data


async def test_exact_multiple_of_the_part_size(s3: Any, bucket: str) -> None:
    repo = layout(bucket, part_size=5 * MiB)
    desc, data = blob(10 * MiB)
    await repo.put_blob(desc, chunks_of(data, 3 * MiB), replayable=False)
    head = s3.head_object(Bucket=bucket, Key=f"backup/app/blobs/sha256/{desc.digest.hex}")
    assert head["ETag"].strip('"').endswith("-2")
    assert await read_all(repo, desc) == data


async def test_failure_mid_upload_leaves_no_incomplete_upload(s3: Any, bucket: str) -> None:
    repo = layout(bucket, part_size=5 * MiB)
    desc, data = blob(12 * MiB)
    with pytest.raises(RuntimeError, match="broke"):
        await repo.put_blob(desc, chunks_of(data, fail_after=11 * MiB), replayable=False)
    assert uploads(s3, bucket) == []
    assert not await repo.has_blob(desc.digest)


async def test_cancellation_mid_upload_aborts(s3: Any, bucket: str) -> None:
    repo = layout(bucket, part_size=5 * MiB)
    desc, data = blob(12 * MiB)
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        for offset in range(0, len(data), MiB):
            if offset >= 6 * MiB:
                started.set()
                await asyncio.sleep(30)
            yield data[offset : offset + MiB]

    task = asyncio.create_task(repo.put_blob(desc, slow, replayable=False))
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.2)  # let the first part go out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not uploads(s3, bucket) and not repo._uploads.background:
            break
        await asyncio.sleep(0.05)
    assert uploads(s3, bucket) == []
    assert not await repo.has_blob(desc.digest)


@pytest.mark.parametrize("size", [3000, 12 * MiB])
async def test_wrong_digest_stores_nothing(s3: Any, bucket: str, size: int) -> None:
    repo = layout(bucket, part_size=5 * MiB)
    desc, data = blob(size)
    corrupt = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(DigestMismatch):
        await repo.put_blob(desc, chunks_of(corrupt), replayable=False)
    with pytest.raises(SizeMismatch):
        await repo.put_blob(desc, chunks_of(data + b"x"), replayable=False)
    with pytest.raises(SizeMismatch):
        await repo.put_blob(desc, chunks_of(data[:-1]), replayable=False)
    assert uploads(s3, bucket) == []
    assert not any("/blobs/" in k for k in keys(s3, bucket))


async def test_present_blob_is_not_sent_again(s3: Any, bucket: str) -> None:
    repo = layout(bucket, part_size=5 * MiB)
    desc, data = blob(11 * MiB)
    await repo.put_blob(desc, chunks_of(data), replayable=False)
    read: list[int] = []
    await repo.put_blob(desc, chunks_of(data, read=read), replayable=False)
    assert read == []  # the source was never read
    small, small_data = blob(100, seed=3)
    await repo.put_blob(small, chunks_of(small_data), replayable=False)
    first = s3.head_object(Bucket=bucket, Key=f"backup/app/blobs/sha256/{small.digest.hex}")
    await repo.put_blob(small, chunks_of(small_data), replayable=False)  # If-None-Match: kept as is
    again = s3.head_object(Bucket=bucket, Key=f"backup/app/blobs/sha256/{small.digest.hex}")
    assert again["LastModified"] == first["LastModified"]


async def test_a_wrong_object_under_the_digest_is_replaced(s3: Any, bucket: str) -> None:
    repo = layout(bucket, part_size=5 * MiB)
    desc, data = blob(11 * MiB)
    key = f"backup/app/blobs/sha256/{desc.digest.hex}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the blob")
    await repo.put_blob(desc, chunks_of(data), replayable=False)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == desc.size
    assert await read_all(repo, desc) == data


async def test_without_conditional_writes(bucket: str) -> None:
    repo = layout(bucket, conditional_writes=False)
    digest = await push_demo_image(repo, "v1")
    await repo.put_manifest("v2", (await repo.get_manifest("v1")).raw, mt.OCI_INDEX)
    assert await repo.list_tags() == ["v1", "v2"]
    assert (await repo.get_manifest("v2")).digest == digest


async def test_parts_upload_concurrently_with_bounded_memory(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = layout(bucket, part_size=5 * MiB, concurrency=2)
    desc, data = blob(16 * MiB)
    in_flight = peak = 0
    original = repo._s3.acquire

    async def acquire() -> Any:
        client = await original()
        if getattr(client, "_counted", False):
            return client
        client._counted = True
        real = client.upload_part

        async def upload_part(**kwargs: Any) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await asyncio.sleep(0.05)
                return await real(**kwargs)
            finally:
                in_flight -= 1

        monkeypatch.setattr(client, "upload_part", upload_part, raising=False)
        return client

    monkeypatch.setattr(repo._s3, "acquire", acquire)
    await repo.put_blob(desc, chunks_of(data), replayable=False)
    assert peak == 2  # concurrent, and never more than `concurrency` parts in flight
    assert await read_all(repo, desc) == data


# -- index.json ----------------------------------------------------------------------------------


async def test_concurrent_writers_do_not_lose_tags(bucket: str) -> None:
    writers = [layout(bucket) for _ in range(4)]  # separate stores: no shared in-process lock
    digest = await push_demo_image(writers[0], "base")
    raw = (await writers[0].get_manifest("base")).raw
    await asyncio.gather(*(w.put_manifest(f"t{i}", raw, mt.OCI_INDEX) for i, w in enumerate(writers)))
    assert await writers[0].list_tags() == ["base", "t0", "t1", "t2", "t3"]
    assert (await writers[3].head_manifest("t2")).digest == digest  # type: ignore[union-attr]


HEX = "a" * 64
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "layers": [],
        "config": {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2},
    }
).encode()


async def with_config(repo: S3Layout) -> S3Layout:
    """``repo`` holding MANIFEST's config (a layout writes a manifest only over its blobs)."""
    await repo.put_blob(Descriptor(mt.OCI_EMPTY, Digest.of(b"{}"), 2), chunks_of(b"{}"), replayable=True)
    return repo


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"digest": "sha256:../../../etc/passwd", "size": 1}, "digest"),
        ({"digest": "md5:abc", "size": 1}, "unsupported algorithm"),
        ({"digest": f"sha256:{HEX}", "size": 1, "annotations": {REF_NAME: 7}}, "not a string"),
        ({"digest": f"sha256:{HEX}", "size": -1}, "size"),
        ({"digest": f"sha256:{HEX}", "size": "1"}, "size"),
        ({"digest": f"sha256:{HEX}", "mediaType": 7}, "mediaType"),
        ("not an object", "not an object"),
    ],
)
async def test_hostile_index_is_rejected(s3: Any, bucket: str, entry: Any, message: str) -> None:
    repo = await with_config(layout(bucket))
    await repo.put_manifest("good", MANIFEST, mt.OCI_MANIFEST)
    doc = {"schemaVersion": 2, "manifests": [entry]}
    s3.put_object(Bucket=bucket, Key="backup/app/index.json", Body=json.dumps(doc).encode())
    for call in (repo.list_tags(), repo.head_manifest("good"), repo.get_manifest("good")):
        with pytest.raises(ManifestError, match=message) as info:
            await call
        assert f"s3://{bucket}/backup/app/index.json manifests[0]" in info.value.message
    with pytest.raises(ManifestError):
        await repo.put_manifest("other", b"{}", mt.OCI_MANIFEST)
    # nothing was written outside the layout's blobs
    assert all(k.startswith("backup/app/") for k in keys(s3, bucket))


async def test_reference_names_are_opaque(s3: Any, bucket: str) -> None:
    """Any reference name index.json holds is listed and read by that name, never used as a key;
    a name written must follow the image-layout grammar."""
    repo = await with_config(layout(bucket))
    await repo.put_manifest("127.0.0.1:5000/app:v1", MANIFEST, mt.OCI_MANIFEST)
    digest = str(Digest.of(MANIFEST))
    entries = [
        {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(MANIFEST), "annotations": {REF_NAME: n}}
        for n in ("../../escape", "127.0.0.1:5000/app:v1", "1.0+build.5")
    ]
    s3.put_object(
        Bucket=bucket, Key="backup/app/index.json", Body=json.dumps({"manifests": entries}).encode()
    )
    assert await repo.list_tags() == sorted(["../../escape", "127.0.0.1:5000/app:v1", "1.0+build.5"])
    for name in ("../../escape", "1.0+build.5"):
        assert (await repo.get_manifest(name)).raw == MANIFEST
    with pytest.raises(InvalidReference, match=r"reference name '\.\./x' is not valid"):
        await repo.put_manifest("../x", MANIFEST, mt.OCI_MANIFEST)
    assert all(k.startswith("backup/app/") for k in keys(s3, bucket))


def test_index_documents() -> None:
    assert parse_index(b'{"manifests": []}', "x") == []
    for raw, message in (
        (b"[]", "no 'manifests'"),
        (b"{", "not valid JSON"),
        (b'{"manifests": {}}', "no 'manifests'"),
        (b"\xff", "not valid JSON"),
    ):
        with pytest.raises(ManifestError, match=message):
            parse_index(raw, "x")


# -- errors and configuration --------------------------------------------------------------------


async def test_missing_layout_and_bucket(s3: Any, bucket: str) -> None:
    absent = layout(bucket, "nothing/here", create=False)
    with pytest.raises(NotFound, match="not an OCI image layout"):
        await absent.list_tags()
    with pytest.raises(NotFound, match="not an OCI image layout"):
        await absent.get_manifest("latest")
    desc, data = blob(10)
    with pytest.raises(NotFound, match="no oci-layout"):
        await absent.put_blob(desc, chunks_of(data), replayable=False)
    assert keys(s3, bucket) == []
    assert await absent.head_manifest(str(desc.digest)) is None
    no_bucket = layout("no-such-bucket-here", "x")
    with pytest.raises(NotFound, match="bucket does not exist"):
        await no_bucket.put_blob(desc, chunks_of(data), replayable=False)
    with pytest.raises(NotFound, match="bucket does not exist"):
        await no_bucket.list_tags()


def test_options_from_environment() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://a",
        "AWS_REGION": "eu-west-3",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MIRROR_S3_PART_SIZE": str(8 * MiB),
        "MIRROR_S3_CONCURRENCY": "6",
        "MIRROR_S3_ADDRESSING_STYLE": "path",
        "MIRROR_S3_CONDITIONAL_WRITES": "0",
    }
    o = S3Options.from_env(env)
    assert (o.endpoint_url, o.region, o.part_size, o.concurrency) == ("http://a", "eu-west-3", 8 * MiB, 6)
    assert o.addressing_style == "path" and not o.conditional_writes
    assert S3Options.from_env({**env, "MIRROR_S3_ENDPOINT_URL": "http://b"}).endpoint_url == "http://b"
    assert S3Options.from_env({}) == S3Options()
    for bad in (
        {"MIRROR_S3_PART_SIZE": "big"},
        {"MIRROR_S3_PART_SIZE": "1024"},
        {"MIRROR_S3_CONCURRENCY": "0"},
        {"MIRROR_S3_CONDITIONAL_WRITES": "maybe"},
        {"MIRROR_S3_ADDRESSING_STYLE": "sideways"},
    ):
        with pytest.raises(InputError):
            S3Options.from_env(bad)
    assert "secret" not in repr(S3Options(secret_access_key="secret", access_key_id="AKIA"))


@pytest.mark.parametrize(
    "location", ["Bad_Bucket/x", "b/x", "bucket/../x", "bucket/a//b", "bucket/./a", "bucket/a\\..\\b"]
)
def test_bad_locations(location: str) -> None:
    with pytest.raises(InvalidReference):
        split_location(location)
    with pytest.raises(InvalidReference):
        S3Layout.from_location(location, env={})


def test_split_location() -> None:
    assert split_location("bucket") == ("bucket", "")
    assert split_location("bucket/a/b/") == ("bucket", "a/b")


def _client_error(code: str, status: int) -> bce.ClientError:
    return bce.ClientError(
        {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


def test_error_translation() -> None:
    cases: list[tuple[BaseException, type[MirrorError]]] = [
        (_client_error("NoSuchKey", 404), NotFound),
        (_client_error("404", 404), NotFound),
        (_client_error("NoSuchBucket", 404), NotFound),
        (_client_error("AccessDenied", 403), AuthError),
        (_client_error("InvalidAccessKeyId", 403), AuthError),
        (_client_error("PreconditionFailed", 412), PreconditionFailed),
        (_client_error("SlowDown", 503), RegistryError),
        (bce.NoCredentialsError(), AuthError),
        (bce.EndpointConnectionError(endpoint_url="http://x"), TransportError),
        (bce.ParamValidationError(report="bad"), MirrorError),
    ]
    for exc, kind in cases:
        error = translate(exc, "op")
        assert type(error) is kind, (exc, error)
        assert error.message.startswith("op")
    # botocore retried the request already: an outer loop must not retry it again
    assert not translate(_client_error("SlowDown", 503), "op").temporary
    assert not translate(bce.EndpointConnectionError(endpoint_url="http://x"), "op").temporary
    # a body that broke while streaming was not retried by botocore
    assert translate(ConnectionResetError("reset"), "op", streaming=True).temporary
