"""Prune: the plan's guard rails (pure), and deletions against real registries, layouts and ECR."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from mirror.cli.main import main
from mirror.jobs.config import parse_config
from mirror.jobs.drift import Listing, Pair, RepoState
from mirror.jobs.mapping import map_repository
from mirror.jobs.prune import (
    OVER_CAP,
    SHARED_DESTINATION,
    SOURCE_EMPTY,
    SOURCE_FAILED,
    default_cap,
    plan_prune,
    writers,
)
from mirror.jobs.syncrun import job_spec
from mirror.registry.distribution import RegistryRepository
from mirror.registry.profiles import profile_for
from mirror.registry.untag import API, Untagger
from mirror.types.errors import ConfigError
from mirror.types.reference import parse_repository
from tests.support.images import fetch_manifest, list_tags, manifest_exists, push_image, push_manifest


def spec(text: str, name: str = "j") -> Any:
    config = parse_config(f"version: 1\njobs:\n{text}")
    return job_spec(config, config.job(name))


JOB = spec("  - {name: j, source: src.example/app, destinations: [dst.example/m], prune: true}")


def state(
    source: set[str] | None, dest: set[str], *, error: str = "", dst: str = "dst.example/m/app"
) -> RepoState:
    return RepoState(
        "j",
        "src.example/app",
        dst,
        tuple(Pair(t, t) for t in sorted(source or ())),
        Listing(None if source is None else frozenset(source), error),
        Listing(frozenset(dest)),
    )


def covers_v(tag: str) -> bool:
    return tag.startswith("v")


def test_plan_deletes_exactly_the_vanished_covered_tags() -> None:
    tags = {f"v{i}" for i in range(20)}
    plan = plan_prune(JOB, [state(tags - {"v3", "v7"}, tags | {"scratch"})], covers_v)
    assert sorted(d.tag for d in plan.deletions) == ["v3", "v7"]
    assert not plan.refusals and plan.covered == 20 and plan.cap == 2


@pytest.mark.parametrize(
    ("source", "error", "reason"),
    [(set(), "", SOURCE_EMPTY), (None, "HTTP 503: unavailable", SOURCE_FAILED)],
)
def test_plan_refuses_on_an_empty_or_failed_source_listing(
    source: set[str] | None, error: str, reason: str
) -> None:
    plan = plan_prune(JOB, [state(source, {"v1", "v2"}, error=error)], covers_v)
    assert plan.deletions == [] and [r.reason for r in plan.refusals] == [reason]


def test_plan_stops_at_its_cap_and_deletes_nothing() -> None:
    dest = {f"v{i}" for i in range(30)}
    plan = plan_prune(JOB, [state({"v0"}, dest)], covers_v)  # 29 gone, default cap 3
    assert plan.deletions == [] and plan.stopped and plan.cap == 3 and plan.candidates == 29
    [refusal] = plan.refusals
    assert refusal.reason == OVER_CAP and "prune_max: 29" in refusal.message
    allowed = spec(
        "  - {name: j, source: s.example/app, destinations: [d.example/m], prune: true, prune_max: 29}"
    )
    assert len(plan_prune(allowed, [state({"v0"}, dest)], covers_v).deletions) == 29
    assert [default_cap(n) for n in (0, 1, 9, 10, 11, 100)] == [0, 1, 1, 1, 2, 10]


def test_plan_refuses_a_destination_another_job_writes_into() -> None:
    config = parse_config("""
version: 1
jobs:
  - {name: a, source: src.example/team/app, destinations: [dst.example/m], prune: true}
  - {name: b, source: other.example/app, destinations: [dst.example/m]}
  - {name: c, source: src.example/apps/*, destinations: [dst.example/all]}
  - {name: d, source: src.example/lone, destinations: ["oci:/srv/mirror"]}
""")
    jobs = [job_spec(config, j) for j in config.jobs]
    target = parse_repository("dst.example/m/app")
    assert writers(jobs, target, besides="a") == ["b"]
    assert writers(jobs, parse_repository("dst.example/all/x/y"), besides="a") == ["c"]
    assert writers(jobs, parse_repository("dst.example/allx/y"), besides="a") == []
    plan = plan_prune(
        jobs[0],
        [state({"v1"}, {"v1", "v2"})],
        covers_v,
        shared_with=lambda _t: writers(jobs, target, besides="a"),
    )
    assert plan.deletions == [] and [r.reason for r in plan.refusals] == [SHARED_DESTINATION]


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        ("oci:/srv/m", "oci:/srv/x/../m/"),
        ("oci:/srv/m", "oci:/srv//m"),
        ("s3://bkt1/m", "s3://bkt1//m/"),
    ],
)
def test_a_prefix_job_writing_into_a_layout_spelled_otherwise_is_a_writer(mine: str, theirs: str) -> None:
    config = parse_config(f"""
version: 1
jobs:
  - {{name: a, source: src.example/team/app, destinations: ["{mine}"], prune: true}}
  - {{name: b, source: "src.example/team/*", destinations: ["{theirs}"]}}
  - {{name: c, source: "src.example/other/*", destinations: ["{theirs}x"]}}
""")
    jobs = [job_spec(config, j) for j in config.jobs]
    target = map_repository(jobs[0].source, jobs[0].source.path, jobs[0].destinations[0])
    assert writers(jobs, target, besides="a") == ["b"]


def test_prune_on_a_single_image_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"jobs\[0\]\.prune: .*names one image"):
        parse_config(
            "version: 1\njobs:\n  - {name: j, source: s.example/a:v1, destinations: [d.example/m], prune: 1}"
        )
    # From defaults it applies to repository jobs only.
    config = parse_config("""
version: 1
defaults: {prune: true}
jobs:
  - {name: one, source: s.example/app:v1, destinations: [d.example/m]}
  - {name: all, source: s.example/app, destinations: [d.example/m]}
""")
    assert not config.job("one").prune and config.job("all").prune


# -- against real registries ------------------------------------------------------------------


def write(path: Path, src: Any, dst: str, extra: str = "") -> Path:
    path.write_text(f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst}]
    tags: {{include: ["^v"]}}
    prune: true
{extra}""")
    return path


def sync(config: Path, *args: str) -> int:
    return main(["sync", "--config", str(config), "--once", *args])


def delete_at(handle: Any, repo: str, tag: str) -> None:
    digest = fetch_manifest(handle, repo, tag).digest
    assert requests.delete(f"{handle.url}/v2/{repo}/manifests/{digest}", timeout=10).status_code == 202


def test_prune_deletes_exactly_the_vanished_tags(
    registry_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_pair
    for i in range(12):
        push_image(src, "apps/web", f"v{i}", seed=f"web{i}")
    config = write(tmp_path / "c.yaml", src, f"{dst.host}/m")
    assert sync(config) == 0
    push_image(dst, "m/web", "scratch", seed="not-the-jobs")  # not covered by ^v: never pruned
    delete_at(src, "apps/web", "v4")
    capsys.readouterr()
    assert sync(config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"DELETE {dst.host}/m/web:v4" in out and manifest_exists(dst, "m/web", "v4")
    report = tmp_path / "r.json"
    assert sync(config, "--report", str(report)) == 0
    assert sorted(list_tags(dst, "m/web")) == sorted([f"v{i}" for i in range(12) if i != 4] + ["scratch"])
    [pruned] = json.loads(report.read_text())["prune"]
    assert [(t["tag"], t["outcome"], t["how"]) for t in pruned["tags"]] == [("v4", "deleted", "digest")]
    assert pruned["refusals"] == []


def test_prune_refuses_on_an_empty_or_failed_source_listing(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "apps/web", "v1", seed="a")
    config = write(tmp_path / "c.yaml", src, f"{dst.host}/m")
    assert sync(config) == 0
    delete_at(src, "apps/web", "v1")  # the source repository is now empty
    report = tmp_path / "r.json"
    sync(config, "--report", str(report))
    [pruned] = json.loads(report.read_text())["prune"]
    assert [r["reason"] for r in pruned["refusals"]] == [SOURCE_EMPTY] and pruned["tags"] == []
    assert manifest_exists(dst, "m/web", "v1")
    src.stop()
    sync(config, "--report", str(report))
    [pruned] = json.loads(report.read_text())["prune"]
    assert [r["reason"] for r in pruned["refusals"]] == [SOURCE_FAILED]
    assert manifest_exists(dst, "m/web", "v1")


def test_prune_stops_at_its_cap(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    for i in range(6):
        push_image(src, "apps/web", f"v{i}", seed=f"c{i}")
    config = write(tmp_path / "c.yaml", src, f"{dst.host}/m", "    prune_max: 2\n")
    assert sync(config) == 0
    for i in (1, 2, 3):
        delete_at(src, "apps/web", f"v{i}")
    report = tmp_path / "r.json"
    assert sync(config, "--report", str(report)) == 0
    [pruned] = json.loads(report.read_text())["prune"]
    assert [r["reason"] for r in pruned["refusals"]] == [OVER_CAP] and pruned["tags"] == []
    assert len(list_tags(dst, "m/web")) == 6


def test_prune_keeps_a_tag_whose_manifest_another_tag_needs(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    for tag in ("v1", "v2"):
        push_image(src, "apps/web", tag, seed=f"k{tag}")
    config = write(tmp_path / "c.yaml", src, f"{dst.host}/m")
    assert sync(config) == 0
    pinned = fetch_manifest(dst, "m/web", "v2")
    push_manifest(dst, "m/web", "release", pinned.data, pinned.media_type)  # not covered, same manifest
    delete_at(src, "apps/web", "v2")
    report = tmp_path / "r.json"
    assert sync(config, "--report", str(report)) == 0
    [pruned] = json.loads(report.read_text())["prune"]
    [kept] = pruned["tags"]
    assert kept["outcome"] == "kept" and "release" in kept["reason"]
    assert manifest_exists(dst, "m/web", "v2") and manifest_exists(dst, "m/web", "release")


def test_prune_in_an_oci_layout_removes_the_tag_only(registry_pair: Any, tmp_path: Path) -> None:
    src, _dst = registry_pair
    for tag in ("v1", "v2"):
        push_image(src, "apps/web", tag, seed=f"o{tag}")
    config = write(tmp_path / "c.yaml", src, f"oci:{tmp_path / 'layout'}")
    assert sync(config) == 0
    delete_at(src, "apps/web", "v1")
    assert sync(config) == 0
    index = json.loads((tmp_path / "layout" / "web" / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert tags == ["v2"]


@pytest.mark.parametrize(
    ("host", "kind"),
    [("123456789012.dkr.ecr.us-east-1.amazonaws.com", None), ("127.0.0.1:5999", "ecr")],
    ids=["ecr-host-name", "kind-ecr"],
)
async def test_ecr_tags_are_deleted_through_its_api(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, host: str, kind: str | None
) -> None:
    """By the host's name or by the config's ``kind: ecr`` (a proxy, a custom domain: the region
    from the AWS configuration, the caller's account)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", aws_env)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    name = f"prune/app-{uuid.uuid4().hex[:8]}"
    ecr = boto3.client("ecr", endpoint_url=aws_env, region_name="us-east-1")
    ecr.create_repository(repositoryName=name)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + "4" * 64,
            },
            "layers": [],
        }
    )
    for tag in ("v1", "keep"):
        ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag=tag)
    repo = RegistryRepository(None, host, name, profile=profile_for(host, kind))  # type: ignore[arg-type]
    assert await Untagger().delete(repo, "v1", kept=["keep"]) == API
    images = ecr.describe_images(repositoryName=name)["imageDetails"]
    assert [sorted(i.get("imageTags", [])) for i in images] == [["keep"]]
    assert await Untagger().delete(repo, "v1", kept=["keep"]) == API  # already gone: not an error


@pytest.mark.parametrize("theirs", ["DST.example/m", "dst.example:443/m", "Dst.Example:443/m"])
def test_a_registry_host_spelled_otherwise_is_one_destination(theirs: str) -> None:
    """Host names are not case-sensitive, and ``:443`` is the registry API's default port: a
    second job writing through another spelling of the host still shares the repository."""
    config = parse_config(f"""
version: 1
jobs:
  - {{name: a, source: src.example/team/app, destinations: [dst.example/m], prune: true}}
  - {{name: b, source: other.example/app, destinations: ["{theirs}"]}}
  - {{name: c, source: "src.example/apps/*", destinations: ["{theirs}"]}}
  - {{name: d, source: other.example/app, destinations: ["dst.example:5000/m"]}}
""")
    jobs = [job_spec(config, j) for j in config.jobs]
    target = parse_repository("dst.example/m/app")
    assert writers(jobs, target, besides="a") == ["b", "c"]
