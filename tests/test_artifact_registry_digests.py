"""Artifact Registry prefix jobs read each listed tag by the digest ``dockerImages.list`` gave
(through the emulator, tests/support/ar_emulator.py): a warm pass asks the source nothing per tag,
a cold pass reads each manifest once by digest, verified, and a tag that moved after the listing
is never written with bytes other than the listed digest's. Tags listed any other way are looked
up by tag as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mirror.auth.credentials import StaticProvider
from mirror.cli.main import main
from mirror.copy.manifestmemo import ManifestMemo
from mirror.jobs.config import parse_config
from mirror.jobs.syncrun import JobOutcome, JobSpec, SyncResult, SyncRun, job_spec
from mirror.registry.arapi import DockerImage
from mirror.registry.profiles.artifact_registry import listed_digests
from mirror.service.daemon import Daemon
from mirror.transport.client import Transport
from mirror.types.digest import Digest
from mirror.types.events import Fanout
from mirror.types.manifest import parse_manifest
from tests.support.ar_emulator import ArtifactRegistryEmulator
from tests.support.faults import ErrorReply, FlipBytes
from tests.support.images import fetch_manifest, list_tags, push_image, push_index
from tests.support.proxy import RecordedRequest, RegistryProxy
from tests.test_artifact_registry import ar, registry_entry, write

__all__ = ["ar"]  # the emulator fixture


def by_tag(proxy: RegistryProxy) -> list[RecordedRequest]:
    """Manifest HEADs and GETs by tag that ``proxy`` answered."""
    return [
        r
        for r in proxy.records
        if r.method in ("HEAD", "GET") and "/manifests/" in r.path and "/manifests/sha256:" not in r.path
    ]


def by_digest(proxy: RegistryProxy) -> list[RecordedRequest]:
    """Manifest HEADs and GETs by digest that ``proxy`` answered."""
    return [r for r in proxy.records if r.method in ("HEAD", "GET") and "/manifests/sha256:" in r.path]


def seed_apps(ar: ArtifactRegistryEmulator) -> dict[str, str]:
    """``proj/apps``: three images tagged v1 (img0 tagged stable too) and a two-platform index;
    image:tag -> digest."""
    ar.create_repository("proj", "apps")
    digests = {}
    for i in range(3):
        digests[f"img{i}:v1"] = push_image(ar.upstream, f"proj/apps/img{i}", "v1", seed=f"img{i}").digest
    ar.add_tags("proj/apps/img0", digests["img0:v1"], ["stable"])
    digests["img0:stable"] = digests["img0:v1"]
    digests["multi:v1"] = push_index(ar.upstream, "proj/apps/multi", "v1", seed="multi").digest
    return digests


def listed_tops(digests: dict[str, str]) -> list[str]:
    """The manifest path of each seeded image by its digest (``stable`` names img0:v1's)."""
    listed = [(key.split(":")[0], d) for key, d in digests.items() if "stable" not in key]
    return sorted(f"/v2/proj/apps/{name}/manifests/{d}" for name, d in listed)


def sync(config: Path, report: Path, *more: str) -> dict[str, Any]:
    code = main(["sync", "--config", str(config), "--once", "--report", str(report), *more])
    doc: dict[str, Any] = json.loads(report.read_text())
    assert code == 0, doc
    return doc


def test_a_cold_pass_reads_listed_tags_by_digest_and_a_warm_pass_asks_the_source_nothing(
    ar: ArtifactRegistryEmulator, registry: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    digests = seed_apps(ar)
    tops = listed_tops(digests)
    # Tags not listed by the API: an Artifact Registry job naming one image (its Docker tag
    # listing), and a prefix job over another kind of registry (its _catalog and tag lists).
    ar.create_repository("proj", "other")
    push_image(ar.upstream, "proj/other/solo", "v1", seed="solo")
    plain = proxy_factory.start(registry)
    for i in range(3):
        push_image(registry, f"plain/img{i}", "v1", seed=f"plain{i}")
    config = write(
        tmp_path,
        f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
  "{plain.host}": {{plain_http: true}}
jobs:
  - {{name: listed, source: "{ar.host}/proj/apps/*", destinations: ["{registry.host}/dr"]}}
  - name: amd64
    source: "{ar.host}/proj/apps/*"
    destinations: ["{registry.host}/amd64"]
    platforms: [linux/amd64]
  - {{name: one, source: "{ar.host}/proj/other/solo", destinations: ["{registry.host}/one"]}}
  - {{name: plain, source: "{plain.host}/plain/*", destinations: ["{registry.host}/copies"]}}
""",
    )
    report = tmp_path / "report.json"

    def statuses(doc: dict[str, Any], job: str) -> dict[str, str]:
        return {i["source"].split("/", 1)[1]: i["status"] for i in doc["images"] if i["job"] == job}

    # A dry run reads the listed manifests by digest and writes nothing.
    doc = sync(config, report, "--dry-run")
    assert statuses(doc, "listed") == {f"proj/apps/{key}": "planned" for key in digests}
    assert [r.path for r in by_tag(ar)] == ["/v2/proj/other/solo/manifests/v1"]
    assert sorted(r.path for r in by_digest(ar) if r.path in tops) == tops
    assert list_tags(registry, "dr/img0") == []
    ar.clear()
    plain.clear()

    # Cold: each listed manifest is read once, by the digest the listing gave (img0's two tags
    # share one read; the index's children by theirs); by tag only the one-image job's, as
    # before (a GET: its destination lacks the tag), and the other registry's.
    doc = sync(config, report)
    assert doc["ok"] and set(statuses(doc, "listed").values()) == {"copied"}
    for key, digest in digests.items():
        image, tag = key.split(":")
        assert fetch_manifest(registry, f"dr/{image}", tag).digest == digest
    amd64 = fetch_manifest(registry, "amd64/multi", "v1")
    assert amd64.digest != digests["multi:v1"] and len(json.loads(amd64.data)["manifests"]) == 1
    assert [(r.method, r.path) for r in by_tag(ar)] == [("GET", "/v2/proj/other/solo/manifests/v1")]
    assert sorted((r.method, r.path) for r in by_digest(ar) if r.path in tops) == [("GET", p) for p in tops]
    assert sorted(r.method for r in by_tag(plain)) == ["GET"] * 3
    ar.clear()
    plain.clear()

    # Warm: the listed tags send no manifest request to the source. The platform-filtered job
    # reads each listed manifest by digest (to filter it), never by tag; the other jobs HEAD
    # each tag, as before.
    doc = sync(config, report)
    assert doc["ok"] and {i["status"] for i in doc["images"]} == {"skipped"}
    assert len(statuses(doc, "listed")) == len(digests)
    assert [(r.method, r.path) for r in by_tag(ar)] == [("HEAD", "/v2/proj/other/solo/manifests/v1")]
    assert sorted((r.method, r.path) for r in by_digest(ar)) == [("GET", p) for p in tops]
    assert sorted(r.method for r in by_tag(plain)) == ["HEAD"] * 3


def test_a_daemon_filtering_to_a_platform_reads_each_listed_index_once_across_passes(
    ar: ArtifactRegistryEmulator, registry: Any
) -> None:
    digests = seed_apps(ar)
    tops = listed_tops(digests)
    config = parse_config(
        f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
jobs:
  - name: amd64
    source: "{ar.host}/proj/apps/*"
    destinations: ["{registry.host}/amd64"]
    platforms: [linux/amd64]
"""
    )
    daemon = Daemon(config, list(config.jobs), metrics=None)
    passes: list[tuple[SyncResult, list[Any]]] = []

    async def two_scheduled_passes() -> None:  # as serve runs them: one transport, one daemon
        events = Fanout()
        async with daemon.transport(events) as transport:
            for _ in range(2):
                result = await daemon.run_jobs(transport, events, daemon.jobs)
                passes.append((result, list(ar.records)))
                ar.clear()

    asyncio.run(two_scheduled_passes())
    (first, first_records), (second, second_records) = passes

    # First pass: each listed manifest is read once, by the listed digest, to filter it.
    assert first.ok and {i.status for i in first.images} == {"copied"}
    assert sorted((r.method, r.path) for r in first_records if r.path in tops) == [("GET", p) for p in tops]
    copied = {i.source: i.digest for i in first.images}
    filtered = fetch_manifest(registry, "amd64/multi", "v1")
    assert filtered.digest != digests["multi:v1"] and len(json.loads(filtered.data)["manifests"]) == 1

    # Second pass: only the listing pages reach the source; every manifest comes from the memo.
    assert second.ok and {i.status for i in second.images} == {"skipped"}
    assert {i.source: i.digest for i in second.images} == copied
    assert [r for r in second_records if "/manifests/" in r.path] == []
    assert second_records and all(r.path.endswith("/dockerImages") for r in second_records)
    assert fetch_manifest(registry, "amd64/multi", "v1").digest == filtered.digest


def test_the_manifest_memo_stays_within_its_count_and_bytes() -> None:
    def manifest(i: int, padding: int = 0) -> Any:
        raw = json.dumps({"schemaVersion": 2, "manifests": [], "n": i, "pad": "x" * padding}).encode()
        return parse_manifest(raw, "application/vnd.oci.image.index.v1+json")

    memo = ManifestMemo(keep=3, max_bytes=1000)
    kept = [manifest(i) for i in range(4)]
    for m in kept:
        memo.put("h/r", m)
    assert len(memo) == 3 and memo.get("h/r", kept[0].digest) is None
    assert memo.get("h/r", kept[1].digest) is kept[1]  # now the most recently used
    assert memo.get("h/other", kept[1].digest) is None  # by repository and digest
    small = kept[0].size
    big = manifest(9, padding=1000 - 2 * small - small // 2)  # room for it and one small one
    memo.put("h/r", big)  # the fourth: the oldest goes for the count, the next for the bytes
    assert memo.bytes <= 1000 and memo.get("h/r", big.digest) is big
    assert [memo.get("h/r", m.digest) is not None for m in kept[1:]] == [True, False, False]
    memo.put("h/r", manifest(10, padding=2000))  # larger than the whole memo: not kept
    assert memo.get("h/r", big.digest) is big and memo.get("h/r", Digest.of(b"absent")) is None


def config_text(ar: ArtifactRegistryEmulator, registry: Any, *, overwrite: bool = False) -> str:
    return f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
jobs:
  - name: apps
    source: "{ar.host}/proj/apps/*"
    destinations: ["{registry.host}/dr"]
    overwrite: {str(overwrite).lower()}
"""


def pass_with_a_move(text: str, move: Any) -> SyncResult:
    """One pass in which ``move`` runs after the listing and planning, before the copy."""
    config = parse_config(text)

    async def go() -> SyncResult:
        async with Transport(
            StaticProvider(config.credentials()), options=config.host_options()
        ) as transport:
            run = SyncRun(transport, profiles=config.profile)

            async def planner(job: JobSpec, outcome: JobOutcome) -> list[Any]:
                tasks = await run.plan_job(job, outcome)
                await asyncio.to_thread(move)
                return tasks

            try:
                return await run.run([job_spec(config, j) for j in config.jobs], planner)
            finally:
                await run.aclose()

    return asyncio.run(go())


def test_a_tag_moved_after_the_listing_gets_only_verified_bytes_of_the_listed_digest(
    ar: ArtifactRegistryEmulator, registry: Any
) -> None:
    ar.create_repository("proj", "apps")
    old = push_image(ar.upstream, "proj/apps/web", "v1", seed="old").digest
    new = ""

    def move() -> None:
        nonlocal new
        new = push_image(ar.upstream, "proj/apps/web", "v1", seed="new").digest

    # Listed at `old`, moved to `new` before the copy: the copy reads `old` by digest, verified,
    # and writes it under the tag; the move is the next pass's, as for a HEAD made at listing time.
    result = pass_with_a_move(config_text(ar, registry), move)
    assert result.ok and [(i.status, i.digest) for i in result.images] == [("copied", old)]
    assert fetch_manifest(registry, "dr/web", "v1").digest == old != new
    assert not [r for r in by_tag(ar) if r.method in ("HEAD", "GET")]

    # The next pass lists `new`: the destination tag's HEAD shows a conflict (tags are
    # immutable by default), and with overwrite the tag moves.
    result = pass_with_a_move(config_text(ar, registry), lambda: None)
    assert [(i.status, i.digest) for i in result.images] == [("conflict", new)]
    assert fetch_manifest(registry, "dr/web", "v1").digest == old
    result = pass_with_a_move(config_text(ar, registry, overwrite=True), lambda: None)
    assert result.ok and [(i.status, i.digest) for i in result.images] == [("copied", new)]
    assert fetch_manifest(registry, "dr/web", "v1").digest == new


def test_bytes_that_do_not_match_the_listed_digest_are_never_written(
    ar: ArtifactRegistryEmulator, registry: Any
) -> None:
    ar.create_repository("proj", "apps")
    web = push_image(ar.upstream, "proj/apps/web", "v1", seed="web").digest
    ar.add_fault(FlipBytes(offset=10, times=None, method="GET", path=f"/manifests/{web}$"))
    result = pass_with_a_move(config_text(ar, registry), lambda: None)
    assert [i.status for i in result.images] == ["failed"]
    assert "hash" in result.images[0].error or "digest" in result.images[0].error
    assert list_tags(registry, "dr/web") == []
    assert not by_tag(ar)


def test_a_listed_digest_the_source_no_longer_has_is_looked_up_by_tag(
    ar: ArtifactRegistryEmulator, registry: Any
) -> None:
    ar.create_repository("proj", "apps")
    web = push_image(ar.upstream, "proj/apps/web", "v1", seed="web").digest
    gone = ar.add_fault(
        ErrorReply(404, "MANIFEST_UNKNOWN", "manifest unknown", method="GET", path=f"/manifests/{web}$")
    )
    result = pass_with_a_move(config_text(ar, registry), lambda: None)
    assert result.ok and [(i.status, i.digest) for i in result.images] == [("copied", web)]
    assert gone.fired == 1 and [(r.method, r.path) for r in by_tag(ar)] == [
        ("GET", "/v2/proj/apps/web/manifests/v1")
    ]
    assert fetch_manifest(registry, "dr/web", "v1").digest == web


def test_a_tag_the_listing_names_twice_or_unclearly_gets_no_digest() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    images = [
        DockerImage("p/r/web", a, uri=f"h/p/r/web@{a}", tags=("v1", "moved")),
        DockerImage("p/r/web", b, uri=f"h/p/r/web@{b}", tags=("moved", "v2")),
        DockerImage("p/r/api", a, tags=("v1",)),  # no uri: the name's digest
        DockerImage("p/r/db", a, uri=f"h/p/r/db@{b}", tags=("v1",)),  # name and uri disagree
        DockerImage("p/r/odd", "sha256:short", tags=("v1",)),
    ]
    assert listed_digests(images) == {"p/r/web": {"v1": a, "v2": b}, "p/r/api": {"v1": a}}
