"""Prune of OCI layout destinations: a directory (``oci:DIR``) and an S3 prefix (``s3://BUCKET/PREFIX``,
against moto's server). A pruned tag leaves ``index.json`` and nothing else does: the other tags,
the referrers (their untagged entries and the referrers tag), every manifest and blob stay, so a
manifest another tag shares still reads whole. The guard rails and ``prune_max`` hold, a dry run
writes nothing, and the run report and ``mirror verify`` agree afterwards. Judges: ``index.json``
and the blobs read as files or S3 objects, skopeo (``oci:``), ``mirror verify`` (which walks every
manifest and blob a layout tag names)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mirror.cli.main import main
from mirror.jobs.prune import OVER_CAP, SHARED_DESTINATION, SOURCE_EMPTY, SOURCE_FAILED
from tests.support.images import fetch_manifest, push_image
from tests.support.skopeo import run_skopeo
from tests.test_referrers_dest import REF_NAME, referrers_tag, signed_in_registry

Read = Callable[[str], bytes]


@dataclass
class Layout:
    """A layout destination of the job: where the job writes it, and how its files are read."""

    destination: str  # as the config names it
    repo: str  # the web repository under it, as a reference's location
    index: Callable[[], dict[str, Any]]
    blob: Callable[[str], bytes | None]  # None when absent


def oci_layout(tmp_path: Path) -> Layout:
    root = tmp_path / "layout"

    def blob(digest: str) -> bytes | None:
        path = root / "web" / "blobs" / "sha256" / digest.split(":")[1]
        return path.read_bytes() if path.exists() else None

    return Layout(
        f"oci:{root}",
        f"oci:{root / 'web'}",
        lambda: json.loads((root / "web" / "index.json").read_text()),
        blob,
    )


def s3_layout(s3: Any, bucket: str) -> Layout:
    def get(key: str) -> bytes | None:
        try:
            data: bytes = s3.get_object(Bucket=bucket, Key=f"backup/web/{key}")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return data

    def index() -> dict[str, Any]:
        raw = get("index.json")
        assert raw is not None
        return dict(json.loads(raw))

    return Layout(
        f"s3://{bucket}/backup",
        f"s3://{bucket}/backup/web",
        index,
        lambda digest: get(f"blobs/sha256/{digest.split(':')[1]}"),
    )


@pytest.fixture(params=["oci", "s3"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Layout:
    if request.param == "oci":
        return oci_layout(tmp_path)
    s3, bucket = request.getfixturevalue("s3"), request.getfixturevalue("bucket")
    return s3_layout(s3, bucket)


def tags(index: dict[str, Any]) -> dict[str, str]:
    return {
        e["annotations"][REF_NAME]: e["digest"]
        for e in index["manifests"]
        if REF_NAME in (e.get("annotations") or {})
    }


def untagged(index: dict[str, Any]) -> list[str]:
    return sorted(e["digest"] for e in index["manifests"] if REF_NAME not in (e.get("annotations") or {}))


def write_config(path: Path, src: Any, destination: str, prune_max: int) -> Path:
    path.write_text(f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: ["{destination}"]
    referrers: true
    prune: true
    prune_max: {prune_max}
""")
    return path


def sync(config: Path, *args: str) -> int:
    return main(["sync", "--config", str(config), "--once", *args])


def pruned(report: Path) -> dict[str, Any]:
    [found] = json.loads(report.read_text())["prune"]
    return dict(found)


def delete_at(handle: Any, repo: str, tag: str) -> None:
    digest = fetch_manifest(handle, repo, tag).digest
    assert requests.delete(f"{handle.url}/v2/{repo}/manifests/{digest}", timeout=10).status_code == 202


def test_prune_of_a_layout_removes_the_tag_only(
    registry: Any, layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = registry
    signed = signed_in_registry(src, "apps/web")  # v1, a signature and an SBOM, the referrers tag
    images = {t: push_image(src, "apps/web", t, seed=f"lp-{t}") for t in ("v2", "v3", "v4")}
    config = write_config(tmp_path / "c.yaml", src, layout.destination, prune_max=1)
    assert sync(config) == 0
    before = layout.index()
    rtag = referrers_tag(signed.subject)
    assert set(tags(before)) == {"v1", "v2", "v3", "v4", rtag}
    assert untagged(before) == sorted(r.digest for r in signed.referrers)

    # v9: a tag only the destination has, naming v2's manifest (shared); v3 leaves the source.
    assert main(["copy", "-q", f"{src.host}/apps/web:v2", f"{layout.repo}:v9"]) == 0
    delete_at(src, "apps/web", "v3")
    shared = layout.index()

    # Two deletions, over prune_max 1: nothing goes, and the report says why.
    report = tmp_path / "r.json"
    assert sync(config, "--report", str(report)) == 0
    found = pruned(report)
    assert [r["reason"] for r in found["refusals"]] == [OVER_CAP] and found["tags"] == []
    assert layout.index() == shared

    # A dry run within the cap lists both and writes nothing.
    config = write_config(tmp_path / "c.yaml", src, layout.destination, prune_max=2)
    capsys.readouterr()
    assert sync(config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"DELETE {layout.repo}:v3" in out and f"DELETE {layout.repo}:v9" in out, out
    assert layout.index() == shared

    # verify names the same two tags extra; after the pass that deletes them it is in sync.
    drift = tmp_path / "drift.json"
    assert main(["verify", "--config", str(config), "--report", str(drift)]) == 1
    rows = json.loads(drift.read_text())["rows"]
    assert sorted(r["destination"] for r in rows if r["state"] == "extra") == [
        f"{layout.repo}:v3",
        f"{layout.repo}:v9",
    ]
    assert {r["state"] for r in rows} == {"in_sync", "extra"}

    assert sync(config, "--report", str(report)) == 0
    found = pruned(report)
    assert sorted((t["tag"], t["outcome"], t["how"]) for t in found["tags"]) == [
        ("v3", "deleted", "tag"),
        ("v9", "deleted", "tag"),
    ]
    assert found["refusals"] == []
    after = layout.index()
    assert tags(after) == {t: d for t, d in tags(shared).items() if t not in ("v3", "v9")}
    assert untagged(after) == untagged(before)  # the referrers stay listed
    kept = [e for e in shared["manifests"] if (e.get("annotations") or {}).get(REF_NAME) not in ("v3", "v9")]
    assert after["manifests"] == kept  # every other entry as it was, in its place

    # Blobs stay: v2's manifest (v9 shared it) and its blobs, and even the pruned v3's.
    for image in (images["v2"], images["v3"]):
        assert layout.blob(image.digest) == image.manifest
        assert layout.blob(image.config_digest) == image.config
        assert all(layout.blob(b.digest) is not None for b in image.layers)

    # verify walks every manifest and blob the remaining tags name: in sync, and the next pass
    # neither copies nor prunes anything.
    capsys.readouterr()
    assert main(["verify", "--config", str(config), "--report", str(drift)]) == 0, capsys.readouterr().out
    assert {r["state"] for r in json.loads(drift.read_text())["rows"]} == {"in_sync"}
    assert sync(config, "--report", str(report)) == 0
    assert pruned(report)["tags"] == []
    assert layout.index() == after
    if layout.destination.startswith("oci:"):
        for tag in ("v1", "v2", "v4"):
            raw = run_skopeo(["inspect", "--raw", f"{layout.repo}:{tag}"]).stdout
            assert raw == fetch_manifest(src, "apps/web", tag).data
        assert run_skopeo(["inspect", "--raw", f"{layout.repo}:v3"], check=False).returncode != 0
    # mirror reads the layout back: every remaining image copies out whole.
    out_dir = tmp_path / "out"
    for tag in ("v1", "v2", "v4"):
        assert main(["copy", "-q", f"{layout.repo}:{tag}", f"oci:{out_dir}:{tag}"]) == 0


def test_prune_of_a_layout_holds_its_guard_rails(registry: Any, layout: Layout, tmp_path: Path) -> None:
    src = registry
    push_image(src, "apps/web", "v1", seed="lg-v1")
    config = write_config(tmp_path / "c.yaml", src, layout.destination, prune_max=5)
    assert sync(config) == 0
    held = layout.index()
    delete_at(src, "apps/web", "v1")  # the source repository is now empty
    report = tmp_path / "r.json"
    sync(config, "--report", str(report))
    found = pruned(report)
    assert [r["reason"] for r in found["refusals"]] == [SOURCE_EMPTY] and found["tags"] == []
    assert layout.index() == held
    src.stop()
    sync(config, "--report", str(report))
    found = pruned(report)
    assert [r["reason"] for r in found["refusals"]] == [SOURCE_FAILED] and found["tags"] == []
    assert layout.index() == held


@pytest.mark.parametrize(
    "spelling",
    ["{root}/", "{root}/../layout", "{root}//.", "{relative}", "{link}", "s3:{bucket}//backup/"],
    ids=["trailing-slash", "dot-dot", "dot", "relative", "symlink", "s3-empty-parts"],
)
def test_a_layout_another_job_writes_into_is_not_pruned_however_it_is_spelled(
    registry: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
    request: pytest.FixtureRequest,
) -> None:
    """Two jobs writing into one layout repository are recognised by where the layout is (the
    directory, the bucket and prefix), not by how each job spells it: the pruning job refuses
    (shared_destination) instead of deleting the other job's tags, and verify counts neither
    job's tag as an extra of the other."""
    src = registry
    push_image(src, "apps/web", "v1", seed="sh-v1")
    push_image(src, "team/web", "v2", seed="sh-v2")
    if spelling.startswith("s3:"):
        bucket = request.getfixturevalue("bucket")
        mine, theirs = f"s3://{bucket}/backup", "s3://" + spelling[3:].format(bucket=bucket)
    else:
        monkeypatch.chdir(tmp_path)
        root = tmp_path / "layout"
        root.mkdir()
        (tmp_path / "alias").symlink_to(root)
        theirs = "oci:" + spelling.format(root=root, relative="layout", link=tmp_path / "alias")
        mine = f"oci:{root}"
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
jobs:
  - {{name: mine, source: {src.host}/apps/web, destinations: ["{mine}"], prune: true, prune_max: 5}}
  - {{name: theirs, source: {src.host}/team/web, destinations: ["{theirs}"]}}
""")
    report = tmp_path / "r.json"
    assert sync(config, "--report", str(report)) == 0
    [found] = json.loads(report.read_text())["prune"]
    assert found["tags"] == []
    assert [r["reason"] for r in found["refusals"]] == [SHARED_DESTINATION]
    assert main(["copy", "-q", f"{mine}/web:v2", f"oci:{tmp_path / 'out'}:v2"]) == 0
    assert main(["verify", "--config", str(config)]) == 0  # each job's tag is no extra of the other
