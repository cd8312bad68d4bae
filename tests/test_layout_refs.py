"""OCI image layouts whose reference names are not Docker-style tags, and layouts written by
several processes at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.registry.filelock import LockTimeout, run_locked
from mirror.registry.ocilayout import LOCK_FILE, OciLayout
from mirror.types.digest import Digest
from mirror.types.errors import InvalidReference
from mirror.types.reference import LayoutRef, parse_reference
from tests.support.images import fetch_manifest, push_image, push_index
from tests.support.skopeo import skopeo_binary, skopeo_copy, skopeo_inspect_raw

D256 = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "location", "name"),
    [
        ("oci:/srv/lay:127.0.0.1:5610/app:v1", "/srv/lay", "127.0.0.1:5610/app:v1"),
        ("oci:/srv/lay:1.0+build.5", "/srv/lay", "1.0+build.5"),
        ("oci:/srv/lay:app:v1", "/srv/lay", "app:v1"),
        ("oci:rel/lay:v1", "rel/lay", "v1"),
        ("oci:/srv/lay", "/srv/lay", "latest"),
        ("s3://bucket/pre/fix:registry.example/app:1.4", "bucket/pre/fix", "registry.example/app:1.4"),
    ],
)
def test_layout_reference_name_follows_the_first_colon(text: str, location: str, name: str) -> None:
    """As skopeo reads oci:DIR:REF (before, the last ':' split it, so a full reference became a
    directory that 'has no index.json')."""
    ref = parse_reference(text)
    assert isinstance(ref, LayoutRef) and (ref.location, ref.tag) == (location, name)
    assert parse_reference(str(ref)) == ref


def test_layout_reference_with_a_digest() -> None:
    ref = parse_reference(f"oci:/srv/lay@{D256}")
    assert isinstance(ref, LayoutRef) and ref.location == "/srv/lay" and ref.digest == Digest.parse(D256)


@pytest.mark.parametrize(
    "text", ["oci:/srv/lay:", "oci:/srv/lay:a//b", "oci:/srv/lay:-x", "oci:/srv/lay:a b"]
)
def test_bad_layout_reference_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference, match=r"reference name|empty"):
        parse_reference(text)


def test_podman_style_layout_copies_by_name_and_by_digest(
    registry_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """skopeo (like podman save) writes the full reference as ref.name: mirror reads the layout
    by that name and by digest, lists it, and writes such names too (before, the layout was
    refused whole: "tag '127.0.0.1:5610/app:v1' is not valid")."""
    if not skopeo_binary():
        pytest.skip("skopeo is not installed")
    src, dst = registry_pair
    img = push_image(src, "apps/web", "v1", seed="web")
    idx = push_index(src, "apps/multi", "v2", ["linux/amd64", "linux/arm64"])
    layout = tmp_path / "lay"
    name = f"{src.host}/apps/web:v1"
    skopeo_copy(f"{src.host}/apps/web:v1", f"oci:{layout}:{name}")
    skopeo_copy(f"{src.host}/apps/multi:v2", f"oci:{layout}:1.0+build.5")
    names = [e["annotations"]["org.opencontainers.image.ref.name"] for e in index_of(layout)["manifests"]]
    assert names == [name, "1.0+build.5"]

    assert main(["copy", "--quiet", f"oci:{layout}:{name}", f"{dst.host}/lay/web:v1"]) == 0
    assert fetch_manifest(dst, "lay/web", "v1").digest == img.digest
    assert main(["copy", "--quiet", f"oci:{layout}@{idx.digest}", f"{dst.host}/lay/multi@{idx.digest}"]) == 0
    assert main(["copy", "--quiet", f"oci:{layout}:1.0+build.5", f"{dst.host}/lay/multi:v2"]) == 0
    assert fetch_manifest(dst, "lay/multi", "v2").digest == idx.digest

    assert main(["ls", f"oci:{layout}", "--format", "json", "--include-tags"]) == 0
    rows = {row["digest"]: row["tags"] for row in json.loads(capsys.readouterr().out)}
    assert rows == {img.digest: [name], idx.digest: ["1.0+build.5"]}

    # Written by mirror under such a name, read back by skopeo under it.
    copy = tmp_path / "copy"
    assert main(["copy", "--quiet", f"{dst.host}/lay/web:v1", f"oci:{copy}:{name}"]) == 0
    assert skopeo_inspect_raw(f"oci:{copy}:{name}") == img.manifest


def index_of(layout: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((layout / "index.json").read_text())
    return doc


@pytest.mark.interop
def test_podman_saved_layout_copies_by_tag_and_by_digest(
    interop_source: Any, interop_destination: Any, podman: Any, tmp_path: Path
) -> None:
    """A layout written by `podman save --format oci-dir` (ref.name: the full name pulled)."""
    ref = interop_source.ref("oci-gzip")
    podman.pull(ref)
    layout = podman.save_oci_dir(ref, tmp_path / "saved")
    [entry] = index_of(layout)["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == ref
    dst = interop_destination.host
    assert main(["copy", "--quiet", f"oci:{layout}:{ref}", f"{dst}/saved/app:v1"]) == 0
    assert main(["copy", "--quiet", f"oci:{layout}@{entry['digest']}", f"{dst}/saved/bydigest:v1"]) == 0
    for repo in ("saved/app", "saved/bydigest"):
        data = skopeo_inspect_raw(f"{dst}/{repo}:v1")
        assert Digest.of(data) == Digest.parse(entry["digest"]), repo


WRITER = """
import asyncio, json, sys
from mirror.registry.ocilayout import OciLayout

async def main(path, writer, tags):
    layout = OciLayout(path, create=True)
    for i in range(tags):
        raw = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                          "manifests": [], "annotations": {"w": f"{writer}-{i}"}}).encode()
        await layout.put_manifest(f"w{writer}-t{i}", raw, "application/vnd.oci.image.index.v1+json")

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_parallel_writers_keep_every_tag(tmp_path: Path) -> None:
    """8 processes tag into one layout at once: every tag stays (before, the index lock was per
    process, and writers overwrote each other's index.json: 78 of 80 tags, exit 0)."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    layout, writers, tags = tmp_path / "shared", 8, 25
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(layout), str(w), str(tags)], env=env)
        for w in range(writers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * writers
    found = {e["annotations"]["org.opencontainers.image.ref.name"] for e in index_of(layout)["manifests"]}
    assert found == {f"w{w}-t{i}" for w in range(writers) for i in range(tags)}


async def test_a_held_lock_is_waited_for_with_a_deadline(tmp_path: Path) -> None:
    """A writer waits for the lock another holds, and gives up at its deadline with a message."""
    layout = OciLayout(tmp_path / "lay", create=True, lock_timeout=0.3)
    raw = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    await layout.put_manifest("v1", raw, "application/vnd.oci.image.index.v1+json")
    held = tmp_path / "lay" / LOCK_FILE
    import fcntl

    fd = os.open(held, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockTimeout, match=f"another process held {LOCK_FILE} for more than 0.3s"):
            await layout.put_manifest("v2", raw, "application/vnd.oci.image.index.v1+json")
    finally:
        os.close(fd)
    await layout.put_manifest("v2", raw, "application/vnd.oci.image.index.v1+json")
    assert await layout.list_tags() == ["v1", "v2"]
    assert await run_locked(held, lambda: 42, max_wait=0.1, what="x") == 42


def test_any_reference_name_in_index_json_is_read_never_used_as_a_path(registry: Any, tmp_path: Path) -> None:
    """Names outside the grammar ('../x') do not refuse the layout: they are listed and read by
    that name; where one would become a registry tag, that image alone fails, before any write."""
    layout = tmp_path / "lay"
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    demo = tmp_path / "demo" / "copy"
    [entry] = index_of(demo)["manifests"]
    doc = index_of(demo)
    doc["manifests"] = [
        {**entry, "annotations": {"org.opencontainers.image.ref.name": name}} for name in ("../x", "ok")
    ]
    (demo / "index.json").write_text(json.dumps(doc))
    assert main(["copy", "--quiet", f"oci:{demo}:ok", f"oci:{layout}:v1"]) == 0
    report = tmp_path / "r.json"
    code = main(
        [
            "copy",
            "--quiet",
            f"oci:{demo}@{entry['digest']}",
            f"{registry.host}/x/y:v1",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    listed = OciLayout(demo)
    import asyncio

    assert asyncio.run(listed.list_tags()) == ["../x", "ok"]
    assert asyncio.run(listed.head_manifest("../x")) is not None
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: lay
    source: oci:{demo}
    destinations: [{registry.host}/fromlay]
"""
    )
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1
    statuses = {
        i["source"]: (i["status"], i["destinations"][0]["error"])
        for i in json.loads(report.read_text())["images"]
    }
    assert statuses[f"oci:{demo}:ok"][0] == "copied"
    status, error = statuses[f"oci:{demo}:../x"]
    assert status == "failed" and "tag '../x' is not valid" in error
    assert not (tmp_path / "x").exists()
