"""Artifact Registry, through its emulator (tests/support/ar_emulator.py): prefix jobs listed by the
API (its `_catalog` lists nothing), tags past the 10,000 the Docker listing gives, quota answers,
immutable tags, repositories created through the API, and the API's refusals."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror.auth.credentials import Credential, StaticProvider
from mirror.cli.main import main
from mirror.jobs.config import parse_config
from mirror.jobs.syncrun import JobOutcome, SyncRun, job_spec
from mirror.registry.distribution import RegistryRepository
from mirror.registry.profiles import ArtifactRegistryProfile
from mirror.service.daemon import Daemon
from mirror.service.metrics import Metrics
from mirror.transport.client import HostOptions, Transport
from mirror.types.errors import MirrorError, RegistryError
from tests.support.aiohttp_compat import let_aioresponses_build_responses
from tests.support.ar_emulator import ArtifactRegistryEmulator
from tests.support.images import fetch_manifest, list_tags, push_image
from tests.test_metrics import scrape

LOCATION = "europe-west1"


@pytest.fixture
def ar(registry_factory: Any) -> Iterator[ArtifactRegistryEmulator]:
    emulator = ArtifactRegistryEmulator(registry_factory.start(), location=LOCATION, page_size_cap=7).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def registry_entry(ar: ArtifactRegistryEmulator, token: str | None) -> str:
    creds = f", username: oauth2accesstoken, password: {token}" if token else ""
    return (
        f'"{ar.host}": {{kind: artifact-registry, location: {LOCATION}, '
        f'api_endpoint: "{ar.url}", plain_http: true{creds}}}'
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mirror.yaml"
    path.write_text(text)
    return path


def seed_project(ar: ArtifactRegistryEmulator) -> dict[str, str]:
    """3 Docker repositories of 10 images each (and a Maven repository), repo:tag -> digest."""
    digests: dict[str, str] = {}
    for repo in ("alpha", "beta", "gamma"):
        ar.create_repository("proj", repo)
        for i in range(10):
            image = f"proj/{repo}/img{i}"
            digests[f"{image}:v1"] = push_image(
                ar.upstream, image, "v1", layer_sizes=(512 + i,), seed=image
            ).digest
    ar.create_repository("proj", "jars", fmt="MAVEN")
    return digests


def test_prefix_job_copies_every_image_the_api_lists(
    ar: ArtifactRegistryEmulator, registry: Any, tmp_path: Path
) -> None:
    digests = seed_project(ar)
    report = tmp_path / "report.json"
    # Control: read as a distribution registry, Artifact Registry's _catalog gives nothing to copy.
    plain = f'"{ar.host}": {{plain_http: true, username: oauth2accesstoken, password: {ar.access_token()}}}'
    control = write(
        tmp_path,
        f"version: 1\nregistries:\n  {plain}\njobs:\n  - {{name: dr, source: {ar.host}/proj/*, "
        f"destinations: [{registry.host}/dr]}}\n",
    )
    assert main(["sync", "--config", str(control), "--once", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["images"] == [] and ar.select("GET", "/v2/_catalog")
    ar.clear()

    config = write(
        tmp_path,
        f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
jobs:
  - name: dr
    source: {ar.host}/proj/*
    destinations: [{registry.host}/dr]
""",
    )
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["ok"] and len(doc["images"]) == 30
    assert {i["status"] for i in doc["images"]} == {"copied"}
    for key, digest in digests.items():
        image, tag = key.split(":")
        assert fetch_manifest(registry, "dr/" + image.split("/", 1)[1], tag).digest == digest
    # The API was paged by 7 (30 images over 3 repositories: 2 pages each); _catalog never asked.
    pages = ar.select("GET", "/dockerImages")
    assert len(pages) == 6 and all(("pageSize", "1000") in p.query_params for p in pages)
    assert len(ar.select("GET", "/repositories")) - len(pages) == 1
    assert not ar.select("GET", "/v2/_catalog") and not ar.select("GET", "/tags/list")
    assert not ar.refusals  # never a chunked upload, never a push anywhere


def test_an_image_with_12000_tags_gets_all_of_them(
    ar: ArtifactRegistryEmulator, registry: Any, tmp_path: Path
) -> None:
    ar.create_repository("proj", "big")
    image = push_image(ar.upstream, "proj/big/app", "t00000", seed="big")
    tags = [f"t{i:05d}" for i in range(12_000)]
    ar.add_tags("proj/big/app", image.digest, tags[1:])
    text = f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
jobs:
  - name: all
    source: {ar.host}/proj/big/app
    destinations: [{registry.host}/all]
  - name: late
    source: {ar.host}/proj/big/app
    destinations: [{registry.host}/late]
    tags: {{include: ["^t1199[0-9]$"]}}
"""
    config = parse_config(text)

    async def listings() -> tuple[int, int, list[int]]:
        static = StaticProvider(config.credentials())
        async with Transport(static, options=config.host_options()) as transport:
            docker = RegistryRepository(transport, ar.host, "proj/big/app")  # read as distribution
            complete = RegistryRepository(transport, ar.host, "proj/big/app", profile=config.profile(ar.host))
            run = SyncRun(transport, profiles=config.profile)
            planned = [len(await run.plan_job(job_spec(config, j), JobOutcome(j.name))) for j in config.jobs]
            return len(await docker.list_tags()), len(set(await complete.list_tags())), planned

    # The Docker listing stops at 10,000; the API gives the rest, and every tag is planned.
    assert asyncio.run(listings()) == (10_000, 12_000, [12_000, 10])
    # The ten tags past the Docker listing's cut are copied end to end.
    report = tmp_path / "report.json"
    config_path = write(tmp_path, text)
    assert (
        main(["sync", "--config", str(config_path), "--once", "--job", "late", "--report", str(report)]) == 0
    )
    assert sorted(list_tags(registry, "late/app")) == tags[-10:]
    assert fetch_manifest(registry, "late/app", "t11999").digest == image.digest


def sync_once(config_text: str) -> tuple[Any, Metrics]:
    """One pass of every job through the daemon, with metrics; (SyncResult, Metrics)."""
    config = parse_config(config_text)
    metrics = Metrics()
    daemon = Daemon(config, list(config.jobs), metrics=metrics)
    return asyncio.run(daemon.once()), metrics


def test_quota_answers_back_off_and_are_counted(ar: ArtifactRegistryEmulator, registry: Any) -> None:
    ar.create_repository("proj", "apps")
    for i in range(3):
        push_image(ar.upstream, f"proj/apps/svc{i}", "v1", seed=f"svc{i}")
    api = ar.quota(times=2, path=r"/dockerImages$")
    manifests = ar.quota(times=2, method="GET", path=r"/manifests/")
    result, metrics = sync_once(
        f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
jobs:
  - {{name: apps, source: "{ar.host}/proj/apps/*", destinations: ["{registry.host}/m"]}}
"""
    )
    assert result.ok and [i.status for i in result.images] == ["copied"] * 3
    assert api.fired == 2 and manifests.fired == 2
    samples = scrape(metrics)
    throttled = sum(v for (name, _), v in samples.items() if name == "mirror_throttled_total")
    retries = sum(v for (name, _), v in samples.items() if name == "mirror_retries_total")
    assert throttled == 4 and retries == 4


@pytest.mark.parametrize(
    "answer",
    [
        (403, "DENIED", "Failed to update tag: the tag is immutable"),
        (400, "TAG_INVALID", "tag invalid"),
        (409, "", "conflict"),
        (412, "FAILED_PRECONDITION", "precondition failed"),
    ],
)
def test_immutable_tags_end_as_conflict_or_nothing_to_do(
    ar: ArtifactRegistryEmulator, registry: Any, answer: tuple[int, str, str]
) -> None:
    """The refusal's status and code are not documented: whatever they are, the tag is read again;
    another digest is a conflict (one PUT, no retry), the same digest is nothing to do."""
    ar.create_repository("proj", "dr", immutable=True)
    ar.immutable_answer = answer
    ar.refuse_same_digest = True
    theirs = push_image(ar.upstream, "proj/dr/web", "v1", seed="theirs")
    push_image(ar.upstream, "proj/dr/web", "v2", seed="same")
    push_image(registry, "apps/web", "v1", seed="ours")
    push_image(registry, "apps/web", "v2", seed="same")
    token = ar.access_token()

    async def put_both() -> tuple[BaseException | None, BaseException | None]:
        static = StaticProvider({ar.host: Credential("oauth2accesstoken", token)})
        options = {ar.host: HostOptions(plain_http=True)}
        async with Transport(static, options=options) as transport:
            profile = ArtifactRegistryProfile.build(ar.host, location=LOCATION, api_endpoint=ar.url)
            dest = RegistryRepository(transport, ar.host, "proj/dr/web", profile=profile)
            outcomes: list[BaseException | None] = []
            for seed_tag in ("v1", "v2"):
                got = fetch_manifest(registry, "apps/web", seed_tag)
                try:
                    await dest.put_manifest(seed_tag, got.data, got.media_type)
                    outcomes.append(None)
                except MirrorError as exc:
                    outcomes.append(exc)
            return outcomes[0], outcomes[1]

    moved, same = asyncio.run(put_both())
    assert isinstance(moved, RegistryError) and moved.kind == "tag_conflict" and not moved.temporary
    assert theirs.digest in moved.message and answer[2] in moved.message
    assert same is None  # the tag already names those bytes: nothing to do
    assert len(ar.select("PUT", "/manifests/v1")) == 1 and len(ar.select("PUT", "/manifests/v2")) == 1
    assert fetch_manifest(ar.upstream, "proj/dr/web", "v1").digest == theirs.digest


def test_destination_repositories_are_created_through_the_api(
    ar: ArtifactRegistryEmulator, registry: Any
) -> None:
    push_image(registry, "apps/web", "v1", seed="web")
    push_image(registry, "apps/api", "v1", seed="api")
    text = f"""
version: 1
registries:
  {registry_entry(ar, ar.access_token())}
jobs:
  - {{name: apps, source: "{registry.host}/apps/*", destinations: ["{ar.host}/proj/dr"]CREATE}}
"""
    # Without create_repositories the push is refused: the repository does not exist.
    result, _ = sync_once(text.replace("CREATE", ""))
    assert not result.ok and {i.status for i in result.images} == {"failed"}
    assert all("NAME_UNKNOWN" in d.error for i in result.images for d in i.destinations)
    result, _ = sync_once(text.replace("CREATE", ", create_repositories: true"))
    assert result.ok and [i.status for i in result.images] == ["copied", "copied"]
    assert ar.repositories["proj/dr"] == "DOCKER"
    creates = ar.select("POST", "/v1/projects/proj/locations/europe-west1/repositories")
    assert len(creates) == 1 and ("repositoryId", "dr") in creates[0].query_params
    assert ar.select("GET", "/operations/")  # waited for the creation to finish
    # Again: the repository exists (409 ALREADY_EXISTS is fine) and the images are there.
    result, _ = sync_once(text.replace("CREATE", ", create_repositories: true"))
    assert result.ok and [i.status for i in result.images] == ["skipped", "skipped"]


def test_an_api_refusal_names_the_fix(ar: ArtifactRegistryEmulator, registry: Any) -> None:
    ar.require_auth = False  # a registry that lets anyone pull, an API that does not
    ar.create_repository("proj", "apps")
    push_image(ar.upstream, "proj/apps/web", "v1", seed="web")
    text = f"""
version: 1
registries:
  {registry_entry(ar, None)}
jobs:
  - {{name: apps, source: "{ar.host}/proj/apps/*", destinations: ["{registry.host}/m"]}}
"""
    result, _ = sync_once(text)
    [job] = result.jobs
    assert not result.ok and job.error_kind == "auth"
    assert "UNAUTHENTICATED" in job.error and "needs a Google credential" in job.error
    assert "oauth2accesstoken" in job.error
    # A public repository: the API answers anonymous calls, and the job copies.
    ar.public = True
    result, _ = sync_once(text)
    assert result.ok and [i.status for i in result.images] == ["copied"]
    assert all(r.header("Authorization") is None for r in ar.select(path_contains="/v1/"))


def test_ls_prints_what_gcloud_prints(ar: ArtifactRegistryEmulator, tmp_path: Path, capsys: Any) -> None:
    ar.create_repository("proj", "apps")
    web = push_image(ar.upstream, "proj/apps/web", "v1", seed="web")
    push_image(ar.upstream, "proj/apps/web", "stable", seed="web")
    api = push_image(ar.upstream, "proj/apps/api", "v3", seed="api")
    config = write(
        tmp_path,
        f"version: 1\nregistries:\n  {registry_entry(ar, ar.access_token())}\n"
        f"jobs:\n  - {{name: x, source: {ar.host}/proj/apps/*, destinations: [127.0.0.1:1/x]}}\n",
    )
    assert main(["ls", f"{ar.host}/proj/apps", "--config", str(config), "--include-tags"]) == 0
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["IMAGE", "DIGEST", "TAGS", "CREATE_TIME", "UPDATE_TIME"]
    assert [r.split()[:3] for r in rows] == [
        [f"{ar.host}/proj/apps/api", api.digest, "v3"],
        [f"{ar.host}/proj/apps/web", web.digest, "stable,v1"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r.split()[3]) for r in rows)
    assert main(["ls", f"{ar.host}/proj/apps/web", "--config", str(config), "--format", "json"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["digest"] == web.digest and doc["image"] == f"{ar.host}/proj/apps/web" and "tags" not in doc
    assert doc["size"] > 0 and doc["media_type"].endswith("manifest.v1+json")
    assert not ar.select("GET", "/manifests/")  # from the API alone


def test_a_service_account_key_is_exchanged_for_the_api(
    ar: ArtifactRegistryEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry takes a key as `_json_key_base64`; the API wants an access token: one is
    minted from the key (Google's token endpoint mocked) and kept while it lasts."""
    from aioresponses import aioresponses
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    let_aioresponses_build_responses(monkeypatch)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "kid-1",
        "private_key": pem.decode(),
        "client_email": "mirror@proj.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    ar.create_repository("proj", "apps")
    ar.access_tokens["ya29.minted"] = time.time() + 3600
    cred = Credential("_json_key_base64", base64.b64encode(json.dumps(key).encode()).decode())

    async def listed() -> list[str]:
        async with Transport(StaticProvider({ar.host: cred})) as transport:
            api = ArtifactRegistryProfile.build(ar.host, location=LOCATION, api_endpoint=ar.url).api(
                transport
            )
            return [*await api.repositories("proj"), *await api.repositories("proj")]

    with aioresponses(passthrough=[ar.url]) as mocked:
        mocked.post(key["token_uri"], payload={"access_token": "ya29.minted", "expires_in": 3599})
        assert asyncio.run(listed()) == ["apps", "apps"]
        assert sum(len(c) for c in mocked.requests.values()) == 1  # one token for both calls
    assert [r.header("Authorization") for r in ar.select(path_contains="/v1/")] == ["Bearer ya29.minted"] * 2
