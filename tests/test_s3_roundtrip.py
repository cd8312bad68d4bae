"""Disaster recovery through S3 (moto on loopback): registry -> S3 -> registry with `mirror copy`
and `mirror sync`, digests preserved end to end; OCI layouts stand in where no registry is needed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.copy.synthetic import push_demo_image
from mirror.registry.ocilayout import REF_NAME, OciLayout
from mirror.registry.s3 import S3Layout
from tests.support.images import blob_exists, fetch_manifest, manifest_exists, push_image, push_index

# moto's S3 server and its fixtures, shared with the S3 store's own tests

MiB = 1024 * 1024


def copy(*args: str) -> int:
    return main(["copy", "--quiet", *args])


def index_of(s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/index.json")["Body"].read())
    return doc


def tags_in(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    return {e["annotations"][REF_NAME]: e["digest"] for e in index_of(s3, bucket, prefix)["manifests"]}


def has_key(s3: Any, bucket: str, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_backup_and_restore_a_multi_platform_image(
    registry_pair: Any, s3: Any, bucket: str, media: str
) -> None:
    src, dst = registry_pair
    idx = push_index(src, "base/os", "3", ["linux/amd64", "linux/arm64", "linux/arm/v7"], media=media)
    backup = f"s3://{bucket}/dr/base-os"
    assert copy(f"{src.host}/base/os:3", f"{backup}:3") == 0
    # the bucket holds an OCI layout: the index, every child manifest and blob, by digest
    assert tags_in(s3, bucket, "dr/base-os") == {"3": idx.digest}
    for digest in (*idx.blob_digests, *(c.digest for c in idx.children), idx.digest):
        assert has_key(s3, bucket, f"dr/base-os/blobs/sha256/{digest.split(':')[1]}"), digest

    assert copy(f"{backup}:3", f"{dst.host}/restored/os:3") == 0
    original = fetch_manifest(src, "base/os", "3")
    restored = fetch_manifest(dst, "restored/os", "3")
    assert restored.data == original.data and restored.digest == original.digest == idx.digest
    assert restored.media_type == original.media_type
    for child in idx.children:
        assert manifest_exists(dst, "restored/os", child.digest)
    for digest in idx.blob_digests:
        assert blob_exists(dst, "restored/os", digest)
    # a second backup run finds everything in place
    assert copy(f"{src.host}/base/os:3", f"{backup}:3") == 0


def test_large_layer_goes_through_multipart(
    registry_pair: Any, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRROR_S3_PART_SIZE", str(5 * MiB))
    src, dst = registry_pair
    img = push_image(src, "big/one", "v1", layer_sizes=(12 * MiB + 5,))
    assert copy(f"{src.host}/big/one:v1", f"s3://{bucket}/big:v1") == 0
    big = img.layers[-1].digest.split(":")[1]
    head = s3.head_object(Bucket=bucket, Key=f"big/blobs/sha256/{big}")
    assert head["ContentLength"] == 12 * MiB + 5 and head["ETag"].strip('"').endswith("-3")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert copy(f"s3://{bucket}/big:v1", f"{dst.host}/big/back:v1") == 0
    assert fetch_manifest(dst, "big/back", "v1").digest == img.digest
    assert blob_exists(dst, "big/back", img.layers[-1].digest)


def test_sync_backs_up_every_repository_and_restores(
    registry_pair: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src, dst = registry_pair
    web = push_image(src, "apps/web", "v1", seed="web")
    api = push_index(src, "apps/api", "v2", ["linux/amd64", "linux/arm64"], seed="api")
    backup = tmp_path / "backup.yaml"
    backup.write_text(f"""
version: 1
jobs:
  - name: backup
    source: {src.host}/apps/*
    destinations: ["s3://{bucket}/dr"]
""")
    assert main(["sync", "--config", str(backup), "--once"]) == 0
    assert tags_in(s3, bucket, "dr/web") == {"v1": web.digest}
    assert tags_in(s3, bucket, "dr/api") == {"v2": api.digest}

    restore = tmp_path / "restore.yaml"
    restore.write_text(f"""
version: 1
jobs:
  - name: restore-web
    source: "s3://{bucket}/dr/web"
    destinations: [{dst.host}/restored]
  - name: restore-api
    source: "s3://{bucket}/dr/api"
    destinations: [{dst.host}/restored]
""")
    assert main(["sync", "--config", str(restore), "--once"]) == 0
    assert fetch_manifest(dst, "restored/web", "v1").data == fetch_manifest(src, "apps/web", "v1").data
    got = fetch_manifest(dst, "restored/api", "v2")
    assert got.digest == api.digest and got.data == api.manifest


def test_sync_takes_s3_settings_from_the_config_file(
    registry_pair: Any, s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoint and part size from object_storage (longest matching key), not the environment."""
    moto = str(s3.meta.endpoint_url)
    monkeypatch.setenv("MIRROR_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    src, _dst = registry_pair
    img = push_image(src, "apps/big", "v1", layer_sizes=(12 * MiB + 5,), seed="cfg")
    config = tmp_path / "backup.yaml"
    config.write_text(f"""
version: 1
object_storage:
  "s3://{bucket}": {{endpoint_url: "{moto}", part_size: 64MiB}}
  "s3://{bucket}/dr": {{endpoint_url: "{moto}", part_size: 5MiB, addressing_style: path}}
jobs:
  - name: backup
    source: {src.host}/apps/*
    destinations: ["s3://{bucket}/dr"]
""")
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert tags_in(s3, bucket, "dr/big") == {"v1": img.digest}
    big = img.layers[-1].digest.split(":")[1]
    # 5 MiB parts (the dr key, the longest match): three parts for 12 MiB.
    assert s3.head_object(Bucket=bucket, Key=f"dr/big/blobs/sha256/{big}")["ETag"].strip('"').endswith("-3")


def test_layout_to_s3_to_layout(aws_env: str, bucket: str, tmp_path: Path) -> None:
    async def seed() -> str:
        return str(await push_demo_image(OciLayout(tmp_path / "src", create=True), "v1"))

    digest = asyncio.run(seed())
    assert copy(f"oci:{tmp_path / 'src'}:v1", f"s3://{bucket}/layouts/demo:v1") == 0
    assert copy(f"s3://{bucket}/layouts/demo:v1", f"oci:{tmp_path / 'back'}:restored") == 0

    async def check() -> None:
        back = OciLayout(tmp_path / "back")
        assert str((await back.get_manifest("restored")).digest) == digest
        s3_layout = S3Layout.from_location(f"{bucket}/layouts/demo")
        assert await s3_layout.list_tags() == ["v1"]
        assert str((await s3_layout.head_manifest("v1")).digest) == digest  # type: ignore[union-attr]

    asyncio.run(check())
    src_blobs = {p.name for p in (tmp_path / "src" / "blobs" / "sha256").iterdir()}
    assert {p.name for p in (tmp_path / "back" / "blobs" / "sha256").iterdir()} == src_blobs


def test_report_counts_s3_requests(
    aws_env: str, bucket: str, proxy_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests to S3 do not go through the registry transport: the report counts them too,
    retries included, as many as reached the store (a recording proxy in front of moto)."""
    proxy = proxy_factory.start(aws_env)
    monkeypatch.setenv("MIRROR_S3_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("MIRROR_S3_ADDRESSING_STYLE", "path")

    async def seed() -> None:
        await push_demo_image(OciLayout(tmp_path / "src", create=True), "v1")

    asyncio.run(seed())
    report = tmp_path / "report.json"
    assert copy("--report", str(report), f"oci:{tmp_path / 'src'}:v1", f"s3://{bucket}/counted:v1") == 0
    sent = len(proxy.records)
    assert sent >= 5  # at least: oci-layout, index.json, the manifest and two blobs written
    assert json.loads(report.read_text())["totals"]["requests"] == sent


def test_missing_backup_fails_clearly(aws_env: str, bucket: str, capsys: Any, tmp_path: Path) -> None:
    assert copy(f"s3://{bucket}/nothing:v1", f"oci:{tmp_path / 'x'}:v1") == 1
    err = capsys.readouterr().err
    assert "not an OCI image layout" in err
