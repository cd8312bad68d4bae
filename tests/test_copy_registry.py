"""`mirror copy` against real registries: what lands at the destination, and what went on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from tests.support.images import (
    blob_exists,
    corrupt_blob,
    fetch_manifest,
    list_tags,
    manifest_exists,
    push_image,
    push_index,
)
from tests.support.skopeo import skopeo_binary, skopeo_inspect_raw

MiB = 1024 * 1024


def copy(*args: str) -> int:
    return main(["copy", "--quiet", *args])


def report(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def assert_same_image(
    src: Any,
    dst: Any,
    src_repo: str,
    dst_repo: str,
    ref: str,
    blobs: tuple[str, ...],
    children: tuple[str, ...] = (),
) -> None:
    """The destination serves the source's manifest bytes and digest; every blob is there."""
    a = fetch_manifest(src, src_repo, ref, creds=src.seed_creds)
    b = fetch_manifest(dst, dst_repo, ref, creds=dst.seed_creds)
    assert b.status == 200
    assert b.data == a.data and b.digest == a.digest and b.media_type == a.media_type
    for digest in blobs:
        assert blob_exists(dst, dst_repo, digest, creds=dst.seed_creds), digest
    for digest in children:
        assert manifest_exists(dst, dst_repo, digest, creds=dst.seed_creds), digest
    if skopeo_binary() and dst.auth == "none":
        assert skopeo_inspect_raw(f"{dst.host}/{dst_repo}:{ref}") == a.data


def test_single_platform_image(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    img = push_image(src, "apps/web", "v1", layer_sizes=(3000, 70000), media="docker")
    out = tmp_path / "r.json"
    assert copy(f"{src.host}/apps/web:v1", f"{dst.host}/mirror/web:v1", "--report", str(out)) == 0
    assert_same_image(src, dst, "apps/web", "mirror/web", "v1", img.blob_digests)
    doc = report(out)
    assert doc["status"] == "copied" and doc["digest"] == img.digest
    assert doc["blobs_pushed"] == len(img.blob_digests) and doc["blobs_skipped"] == 0
    assert (
        doc["bytes_read"]
        == doc["bytes_written"]
        == sum(s for s in [len(img.config), *[layer.size for layer in img.layers]])
    )
    assert doc["requests"] > 0 and doc["duration_seconds"] > 0
    for key in ("source", "destination", "blobs_mounted"):
        assert key in doc


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_multi_platform_index(registry_pair: Any, media: str) -> None:
    src, dst = registry_pair
    idx = push_index(src, "base/os", "3", ["linux/amd64", "linux/arm64", "linux/arm/v7"], media=media)
    assert copy(f"{src.host}/base/os:3", f"{dst.host}/base/os:3") == 0
    assert_same_image(
        src, dst, "base/os", "base/os", "3", idx.blob_digests, tuple(c.digest for c in idx.children)
    )


def test_large_layer_streams(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    img = push_image(src, "big/one", "v1", layer_sizes=(64 * MiB + 123,))
    out = tmp_path / "r.json"
    assert copy(f"{src.host}/big/one:v1", f"{dst.host}/big/one:v1", "--report", str(out)) == 0
    assert_same_image(src, dst, "big/one", "big/one", "v1", img.blob_digests)
    assert report(out)["bytes_written"] >= 64 * MiB


def test_already_present_sends_nothing(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_index(src, "x/y", "1", ["linux/amd64", "linux/arm64"])
    assert copy(f"{src.host}/x/y:1", f"{dst.host}/x/y:1") == 0
    proxy = proxy_factory.start(dst)
    out = tmp_path / "r.json"
    assert copy(f"{src.host}/x/y:1", f"{proxy.host}/x/y:1", "--report", str(out)) == 0
    doc = report(out)
    assert doc["status"] == "skipped" and doc["bytes_read"] == 0
    methods = [(r.method, r.path) for r in proxy.records]
    assert methods == [("GET", "/v2/"), ("HEAD", "/v2/x/y/manifests/1")], methods


def test_upload_wire_shape_is_monolithic(registry_pair: Any, proxy_factory: Any) -> None:
    src, dst = registry_pair
    img = push_image(src, "wire/app", "v1", layer_sizes=(5 * MiB, 1000))
    proxy = proxy_factory.start(dst)
    assert copy(f"{src.host}/wire/app:v1", f"{proxy.host}/wire/app:v1") == 0
    posts = proxy.select("POST", "/blobs/uploads/")
    puts = proxy.select("PUT", "/blobs/uploads/")
    assert len(posts) == len(puts) == len(img.blob_digests)
    assert not proxy.select("PATCH")
    for post in posts:
        assert post.content_length == 0 and post.body_bytes == 0
        assert not post.chunked
    sizes = {img.config_digest: len(img.config), **{layer.digest: layer.size for layer in img.layers}}
    for put in puts:
        params = dict(put.query_params)
        assert "_state" in params  # the Location's own query is kept
        digest = params["digest"]
        assert put.content_length == sizes[digest] == put.body_bytes
        assert not put.chunked and not put.has_header("Transfer-Encoding")
        assert put.header("Content-Type") == "application/octet-stream"
    assert_same_image(src, dst, "wire/app", "wire/app", "v1", img.blob_digests)


def test_corrupt_source_blob_is_never_accepted(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    img = push_image(src, "bad/app", "v1", layer_sizes=(2 * MiB, 4000))
    victim = img.layers[0].digest
    corrupt_blob(src, victim, offset=MiB + 7)
    out = tmp_path / "r.json"
    assert copy(f"{src.host}/bad/app:v1", f"{dst.host}/bad/app:v1", "--report", str(out)) == 1
    doc = report(out)
    # Read twice: the same wrong digest both times is the source's own corruption, said so.
    assert doc["status"] == "failed" and "serves corrupt bytes for blob" in doc["error"]
    assert doc["images"][0]["destinations"][0]["error_kind"] == "source_corrupt"
    assert doc["totals"]["blobs_read"] == len(img.blob_digests) + 1
    assert not blob_exists(dst, "bad/app", victim)
    assert not manifest_exists(dst, "bad/app", "v1")
    assert list_tags(dst, "bad/app") == []


def test_basic_and_token_auth(registry_factory: Any) -> None:
    src = registry_factory.start(auth="htpasswd")
    dst = registry_factory.start(auth="token")
    idx = push_index(src, "team/svc", "2.0", ["linux/amd64", "linux/arm64"], creds=src.seed_creds)
    user, pw = src.creds
    duser, dpw = dst.creds
    code = copy(
        f"{src.host}/team/svc:2.0",
        f"{dst.host}/team/svc:2.0",
        "--src-creds",
        f"{user}:{pw}",
        "--dest-creds",
        f"{duser}:{dpw}",
    )
    assert code == 0
    assert_same_image(
        src, dst, "team/svc", "team/svc", "2.0", idx.blob_digests, tuple(c.digest for c in idx.children)
    )
    # Wrong credentials: a clear failure, not a crash.
    assert (
        copy(
            f"{src.host}/team/svc:2.0",
            f"{dst.host}/team/other:1",
            "--src-creds",
            f"{user}:wrong",
            "--dest-creds",
            f"{duser}:{dpw}",
        )
        == 1
    )


def test_registry_to_layout_to_registry(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    idx = push_index(src, "air/gap", "v3", ["linux/amd64", "linux/s390x"])
    layout = tmp_path / "usb"
    assert copy(f"{src.host}/air/gap:v3", f"oci:{layout}:v3") == 0
    if skopeo_binary():
        assert skopeo_inspect_raw(f"oci:{layout}:v3") == idx.manifest
    assert copy(f"oci:{layout}:v3", f"{dst.host}/restored/gap:v3") == 0
    b = fetch_manifest(dst, "restored/gap", "v3")
    assert b.data == idx.manifest and b.digest == idx.digest


def test_platform_filter_says_digest_differs(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    idx = push_index(src, "multi/arch", "1", ["linux/amd64", "linux/arm64", "linux/ppc64le"])
    out = tmp_path / "r.json"
    assert (
        copy(
            f"{src.host}/multi/arch:1",
            f"{dst.host}/multi/arch:1",
            "--platform",
            "linux/arm64",
            "--report",
            str(out),
        )
        == 0
    )
    doc = report(out)
    assert doc["digest"] != idx.digest and "filtered" in doc["images"][0]["note"]
    got = fetch_manifest(dst, "multi/arch", "1").json()
    assert [m["platform"]["architecture"] for m in got["manifests"]] == ["arm64"]


def test_tag_conflict_is_reported_not_moved(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "imm/app", "v1", seed="one")
    other = push_image(dst, "imm/app", "v1", seed="two")
    out = tmp_path / "r.json"
    assert copy(f"{src.host}/imm/app:v1", f"{dst.host}/imm/app:v1", "--report", str(out)) == 1
    assert report(out)["status"] == "conflict"
    assert fetch_manifest(dst, "imm/app", "v1").digest == other.digest
    assert copy(f"{src.host}/imm/app:v1", f"{dst.host}/imm/app:v1", "--overwrite") == 0
    assert fetch_manifest(dst, "imm/app", "v1").digest != other.digest


@pytest.mark.parametrize(
    "args",
    [
        ["NOT A REF", "oci:/tmp/x"],
        ["127.0.0.1:1/a@sha256:abc", "oci:/tmp/x"],
        ["127.0.0.1:1/a:v1", "127.0.0.1:1/b", "--platform", "linux"],
        ["127.0.0.1:1/a:v1", "127.0.0.1:1/b", "--src-creds", "nocolon"],
    ],
)
def test_input_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert copy(*args) == 2
    assert "mirror:" in capsys.readouterr().err


def test_missing_source_exits_1(registry_pair: Any, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = registry_pair
    assert main(["copy", f"{src.host}/nope/nope:v1", f"{dst.host}/x:v1"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_one_read_for_several_destinations(registry_factory: Any, proxy_factory: Any, tmp_path: Path) -> None:
    src, d1, d2 = registry_factory.start(), registry_factory.start(), registry_factory.start()
    idx = push_index(src, "fan/out", "v1", ["linux/amd64", "linux/arm64"], layer_sizes=(300_000,))
    proxy = proxy_factory.start(src)
    out = tmp_path / "r.json"
    assert (
        copy(
            f"{proxy.host}/fan/out:v1",
            f"{d1.host}/a/out:v1",
            f"{d2.host}/b/out:v1",
            f"{d2.host}/c/out:v1",
            f"oci:{tmp_path / 'layout'}:v1",
            "--report",
            str(out),
        )
        == 0
    )
    for dst, repo in ((d1, "a/out"), (d2, "b/out"), (d2, "c/out")):
        assert fetch_manifest(dst, repo, "v1").digest == idx.digest
    reads = proxy.select("GET", "/blobs/")
    assert len(reads) == len(idx.blob_digests)  # each blob read once for four destinations
    doc = report(out)
    assert doc["totals"]["bytes_read"] == doc["totals"]["unique_blob_bytes"]
    assert doc["totals"]["blobs_mounted"] == len(idx.blob_digests)  # c/out mounted from b/out
