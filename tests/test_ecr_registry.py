"""ECR as a registry, through its emulator (tests/support/ecr_emulator.py): immutable tags, mounts
that are off by default, upload sessions that cannot be continued, 0-byte blobs, repositories
created, listed and tags deleted through the ECR API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mirror.auth.credentials import ChainProvider, Credential, StaticProvider
from mirror.auth.ecrpublic import EcrPublicProvider
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.jobs.config import parse_config
from mirror.registry.distribution import RegistryRepository
from mirror.registry.profiles import profile_for
from mirror.service.daemon import Daemon
from mirror.transport.client import HostOptions, Transport
from mirror.types.errors import MirrorError, RegistryError
from tests.support.ecr_emulator import EcrEmulator
from tests.support.ecr_public_emulator import EcrPublicEmulator
from tests.support.faults import RequestReset
from tests.support.images import fetch_manifest, layer, push_image

KiB = 1024


@pytest.fixture
def ecr_factory(registry_factory: Any) -> Iterator[Any]:
    started: list[EcrEmulator] = []

    def start(**options: Any) -> EcrEmulator:
        ecr = EcrEmulator(registry_factory.start(), **options).start()
        started.append(ecr)
        return ecr

    yield start
    for ecr in started:
        ecr.stop()


def sync_once(text: str) -> Any:
    config = parse_config(text)
    return asyncio.run(Daemon(config, list(config.jobs), metrics=None).once())


def config_text(ecr: EcrEmulator, source: str, destinations: list[str], extra: str = "") -> str:
    return f"""
version: 1
registries:
  "{ecr.host}": {{kind: ecr, plain_http: true, username: AWS, password: "{ecr.authorization_token()}"}}
jobs:
  - {{name: to-ecr, source: "{source}", destinations: {destinations!r}{extra}}}
"""


def test_an_immutable_tag_ends_as_a_conflict_or_as_nothing_to_do(ecr_factory: Any, registry: Any) -> None:
    ecr = ecr_factory()
    ecr.create_repository("team/web", immutable=True)
    theirs = push_image(ecr.upstream, "team/web", "v1", seed="theirs")
    same = push_image(ecr.upstream, "team/web", "v2", seed="same")
    push_image(registry, "apps/web", "v1", seed="ours")
    push_image(registry, "apps/web", "v2", seed="same")
    # overwrite: true asks to move v1; ECR refuses (TAG_INVALID): a conflict, one PUT, no retry.
    result = sync_once(
        config_text(ecr, f"{registry.host}/apps/web", [f"{ecr.host}/team"], ", overwrite: true")
    )
    by_tag = {i.source.rsplit(":", 1)[1]: i for i in result.images}
    assert by_tag["v1"].status == "conflict" and by_tag["v2"].status == "skipped"
    [dest] = by_tag["v1"].destinations
    assert theirs.digest in dest.error and "cannot be overwritten" in dest.error
    assert len(ecr.select("PUT", "/manifests/v1")) == 1
    assert fetch_manifest(ecr.upstream, "team/web", "v1").digest == theirs.digest

    # ECR refuses even the digest the tag names: re-reading the tag shows there is nothing to do.
    async def put_same() -> None:
        creds = StaticProvider({ecr.host: Credential("AWS", ecr.authorization_token())})
        async with Transport(creds, options={ecr.host: HostOptions(plain_http=True)}) as transport:
            repo = RegistryRepository(transport, ecr.host, "team/web", profile=profile_for(ecr.host, "ecr"))
            got = fetch_manifest(registry, "apps/web", "v2")
            await repo.put_manifest("v2", got.data, got.media_type)

    asyncio.run(put_same())
    assert [r.status for r in ecr.select("PUT", "/manifests/v2")] == [400]
    assert fetch_manifest(ecr.upstream, "team/web", "v2").digest == same.digest


@pytest.mark.parametrize("mounting", [False, True])
def test_mounts_and_broken_uploads(ecr_factory: Any, registry: Any, mounting: bool) -> None:
    """Without blob mounting a mount opens a session (202), used for the upload, and no more mounts
    are asked; an upload that broke off is sent again in a fresh session, never the broken one."""
    ecr = ecr_factory(mounting=mounting)
    for name in ("dr/a/web", "dr/b/web"):
        ecr.create_repository(name)
    image = push_image(registry, "apps/web", "v1", layer_sizes=(256 * KiB, 3 * KiB), seed="web")
    ecr.add_fault(RequestReset(after_bytes=64 * KiB, method="PUT", path=r"^/v2/dr/a/web/blobs/uploads/"))
    result = sync_once(
        config_text(ecr, f"{registry.host}/apps/web", [f"{ecr.host}/dr/a", f"{ecr.host}/dr/b"])
    )
    assert result.ok and [d.status for d in result.images[0].destinations] == ["copied", "copied"]
    for repo in ("dr/a/web", "dr/b/web"):
        assert fetch_manifest(ecr.upstream, repo, "v1").digest == image.digest
    assert len(ecr.broken) == 1 and not ecr.refusals  # never continued a broken session
    assert len(ecr.sessions_put) == len(set(ecr.sessions_put))
    mounts = [r for r in ecr.select("POST", "/blobs/uploads/") if "mount=" in r.query]
    if mounting:
        assert len(mounts) == 3 and all(r.status == 201 for r in mounts)  # config and 2 layers
    else:
        # Each 202 opened the session its blob was then uploaded in; once learnt, no more mounts
        # (blobs moving at the same time may each have asked before it was learnt).
        assert 1 <= len(mounts) <= 3 and all(r.status == 202 for r in mounts)
        # A session per blob and repository, and a fresh one for the upload that broke off.
        assert len(ecr.select("POST", "/blobs/uploads/")) == 6 + 1


@pytest.mark.parametrize("empty_uploads", ["refuse", "accept"])
def test_a_zero_byte_blob(ecr_factory: Any, registry: Any, empty_uploads: str) -> None:
    ecr = ecr_factory(empty_uploads=empty_uploads)
    ecr.create_repository("dr/web")
    empty = layer(0, "empty")
    image = push_image(registry, "apps/web", "v1", layer_sizes=(2 * KiB,), base_layers=(empty,), seed="web")
    result = sync_once(config_text(ecr, f"{registry.host}/apps/web", [f"{ecr.host}/dr"]))
    empty_puts = [r for r in ecr.select("PUT", "/blobs/uploads/") if r.content_length == 0]
    assert len(empty_puts) == 1  # sent once, never retried in a loop
    [dest] = result.images[0].destinations
    if empty_uploads == "refuse":
        assert not result.ok and dest.status == "failed"
        assert "ECR does not store a blob of 0 bytes" in dest.error and "any parts" in dest.error
        assert not ecr.select("PUT", "/manifests/")  # no tag over a missing blob
    else:
        assert result.ok and dest.status == "copied"
        assert fetch_manifest(ecr.upstream, "dr/web", "v1").digest == image.digest


def aws_api_at(ecr: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ECR API calls (aiobotocore) go to the emulator; its host name says no region."""
    for name, value in {
        "AWS_ENDPOINT_URL_ECR": ecr.url,
        "AWS_REGION": "eu-west-3",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def served_tags(ecr: EcrEmulator, repo: str) -> list[str]:
    auth = ("AWS", ecr.authorization_token())
    answer = requests.get(f"{ecr.url}/v2/{repo}/tags/list", auth=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    return sorted(answer.json()["tags"])


def api_calls(ecr: EcrEmulator, operation: str) -> int:
    targets = [r.header("X-Amz-Target") or "" for r in ecr.select("POST") if r.path == "/"]
    return sum(1 for t in targets if t.endswith(f".{operation}"))


def test_repositories_created_through_the_ecr_api(
    ecr_factory: Any, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecr = ecr_factory()
    aws_api_at(ecr, monkeypatch)
    push_image(registry, "apps/web", "v1", seed="web")
    text = config_text(ecr, f"{registry.host}/apps/web", [f"{ecr.host}/dr"])
    result = sync_once(text)
    [dest] = result.images[0].destinations
    assert dest.status == "failed" and "NAME_UNKNOWN" in dest.error
    result = sync_once(text.replace("]}", "], create_repositories: true}"))
    assert result.ok and result.images[0].status == "copied"
    assert ecr.repositories == {"dr/web": "MUTABLE"}
    assert api_calls(ecr, "CreateRepository") == 1


def test_prune_removes_tags_through_the_ecr_api(
    ecr_factory: Any, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECR under a host name that does not say so (``kind: ecr`` on loopback): a tag gone from the
    source leaves the destination through ``BatchDeleteImage``, in the caller's account and the
    region of the AWS configuration; the other tag stays."""
    ecr = ecr_factory()
    ecr.create_repository("dr/web")
    aws_api_at(ecr, monkeypatch)
    for tag in ("v1", "v2"):
        push_image(registry, "apps/web", tag, seed=f"prune-{tag}")
    config = parse_config(config_text(ecr, f"{registry.host}/apps/web", [f"{ecr.host}/dr"], ", prune: true"))
    assert asyncio.run(Daemon(config, list(config.jobs), metrics=None).once()).ok
    assert served_tags(ecr, "dr/web") == ["v1", "v2"]
    gone = fetch_manifest(registry, "apps/web", "v1").digest
    assert requests.delete(f"{registry.url}/v2/apps/web/manifests/{gone}", timeout=10).status_code == 202

    daemon = Daemon(config, list(config.jobs), metrics=None)
    assert asyncio.run(daemon.once()).ok
    [pruned] = daemon.last_prune
    [outcome] = pruned.outcomes
    assert (outcome.tag, outcome.outcome, outcome.how) == ("v1", "deleted", "api")
    assert api_calls(ecr, "BatchDeleteImage") == 1 and not ecr.select("DELETE")
    assert served_tags(ecr, "dr/web") == ["v2"]


def describe_requests(ecr: EcrEmulator) -> list[dict[str, Any]]:
    return [body for operation, body in ecr.api_requests if operation == "DescribeRepositories"]


def test_a_prefix_job_lists_ecr_repositories_through_the_api(
    ecr_factory: Any, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HOST/team/*`` on ECR (``kind: ecr`` on loopback): the repositories come from
    ``DescribeRepositories``, every page of it (1,107 repositories, pages of 1,000), and the job
    copies those strictly under ``team/``, wherever they fall in the pages; no ``_catalog``."""
    ecr = ecr_factory()
    aws_api_at(ecr, monkeypatch)
    for name in ("team/api", "team", "teamwork/app"):
        ecr.create_repository(name)
    for i in range(1100):
        ecr.create_repository(f"filler/r{i:04d}")
    for name in ("team/web/front", "team/empty", "other/team/web"):  # on the second page
        ecr.create_repository(name)
    pushed = {
        (repo, tag): push_image(ecr.upstream, repo, tag, seed=f"{repo}-{tag}")
        for repo, tag in [("team/api", "v1"), ("team/api", "v2"), ("team/web/front", "v1")]
    }
    for repo in ("team", "teamwork/app", "other/team/web"):
        push_image(ecr.upstream, repo, "v1", seed=repo)

    result = sync_once(config_text(ecr, f"{ecr.host}/team/*", [f"{registry.host}/m"]))
    assert result.ok, [j.error for j in result.jobs]
    [job] = result.jobs
    assert job.repositories == ["team/api", "team/empty", "team/web/front"]  # the empty one has no tag
    assert sorted((i.source, i.status) for i in result.images) == [
        (f"{ecr.host}/team/api:v1", "copied"),
        (f"{ecr.host}/team/api:v2", "copied"),
        (f"{ecr.host}/team/web/front:v1", "copied"),
    ]
    for (repo, tag), image in pushed.items():
        assert fetch_manifest(registry, "m/" + repo.removeprefix("team/"), tag).digest == image.digest
    # Two pages, the second asked for with the first's token; the caller's account (no registryId).
    first, second = describe_requests(ecr)
    assert first == {"maxResults": 1000} and set(second) == {"maxResults", "nextToken"}
    assert not ecr.select("GET", "/_catalog")
    listed = {r.path for r in ecr.select("GET", "/tags/list")}
    assert listed == {f"/v2/{repo}/tags/list" for repo in job.repositories}


@pytest.mark.parametrize("refusal", ["access-denied", "no-credentials"])
def test_an_ecr_listing_refused_fails_the_job_naming_the_permission(
    ecr_factory: Any, registry: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, refusal: str
) -> None:
    """A prefix job whose ``DescribeRepositories`` is refused (the principal lacks the permission,
    or there is no AWS credential at all) fails, and says which permission the listing needs; it
    never passes as a job that found nothing to copy."""
    ecr = ecr_factory(denied={"DescribeRepositories"} if refusal == "access-denied" else set())
    aws_api_at(ecr, monkeypatch)
    if refusal == "no-credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ecr.create_repository("team/api")
    push_image(ecr.upstream, "team/api", "v1", seed="api")

    result = sync_once(config_text(ecr, f"{ecr.host}/team/*", [f"{registry.host}/m"]))
    assert not result.ok and not result.images
    [job] = result.jobs
    assert "needs the ecr:DescribeRepositories permission" in job.error and job.error_kind == "auth"
    if refusal == "access-denied":
        assert "not authorized to perform: ecr:DescribeRepositories" in job.error
        assert len(describe_requests(ecr)) == 1  # a refusal is not retried
    else:
        assert "no usable AWS credentials" in job.error and not ecr.api_requests
    assert not ecr.select("GET", "/_catalog") and not ecr.select("GET", "/tags/list")


def test_an_ecr_listing_that_would_not_end_fails_the_job(
    ecr_factory: Any, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DescribeRepositories`` giving back a ``nextToken`` already followed: the listing stops
    there and the job fails, rather than asking for pages for ever."""
    ecr = ecr_factory(stuck_pages=True)
    aws_api_at(ecr, monkeypatch)
    for i in range(1001):
        ecr.create_repository(f"team/r{i:04d}")
    result = sync_once(config_text(ecr, f"{ecr.host}/team/*", [f"{registry.host}/m"]))
    [job] = result.jobs
    assert not result.ok and not result.images and "a nextToken came back twice" in job.error
    assert len(describe_requests(ecr)) == 2  # the second page gave back the token that asked for it


def test_a_refused_upload_is_not_mistaken_for_an_empty_blob() -> None:
    profile = profile_for("123456789012.dkr.ecr.eu-west-3.amazonaws.com")
    refusal = RegistryError("PUT ...: HTTP 400 BLOB_UPLOAD_INVALID: ... does not have any parts", status=400)
    assert isinstance(profile.upload_refusal(refusal, 0), RegistryError)
    assert profile.upload_refusal(refusal, 10) is None
    assert profile_for("ghcr.io").upload_refusal(refusal, 0) is None
    assert not isinstance(profile.upload_refusal(MirrorError("x"), 0), RegistryError)


# -- ECR Public ----------------------------------------------------------------------------------


@pytest.fixture
def ecr_public(registry_factory: Any) -> Iterator[EcrPublicEmulator]:
    public = EcrPublicEmulator(registry_factory.start()).start()
    try:
        yield public
    finally:
        public.stop()


def aws_env(monkeypatch: pytest.MonkeyPatch, **endpoints: str) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **endpoints,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


async def copy_twice(
    public: EcrPublicEmulator, registry: Any, provider: EcrPublicProvider | None
) -> list[str]:
    """Copy lib/app:v1, let every token expire, copy lib/app:v2, through one transport."""
    profile = profile_for(public.host, "ecr-public")
    chain = ChainProvider([provider] if provider else [])
    options = {public.host: profile.host_options(HostOptions(plain_http=True))}
    statuses = []
    async with Transport(chain, options=options) as transport:
        source = RegistryRepository(transport, public.host, "lib/app", profile=profile)
        dest = RegistryRepository(transport, registry.host, "mirror/app")
        engine = CopyEngine()
        for tag in ("v1", "v2"):
            [result] = await engine.run([CopyTask(source, tag, [Destination(dest, tag)])])
            statuses.append(result.status)
            public.expire_tokens()
        await engine.aclose()
    return statuses


@pytest.mark.parametrize("authenticated", [False, True])
def test_ecr_public_tokens_refused_with_400_are_fetched_again(
    ecr_public: EcrPublicEmulator, registry: Any, monkeypatch: pytest.MonkeyPatch, authenticated: bool
) -> None:
    for tag in ("v1", "v2"):
        push_image(ecr_public.upstream, "lib/app", tag, seed=tag)
    provider = None
    if authenticated:  # GetAuthorizationToken of ecr-public, then Basic AWS at the realm
        aws_env(monkeypatch, AWS_ENDPOINT_URL_ECR_PUBLIC=ecr_public.url)
        provider = EcrPublicProvider(hosts=(ecr_public.host,))
    assert asyncio.run(copy_twice(ecr_public, registry, provider)) == ["copied", "copied"]
    # The expired token met a 400 (no challenge); a fresh token was fetched and the copy went on.
    assert ecr_public.expired_answers == 1
    assert ecr_public.token_requests == ["AWS" if authenticated else ""] * 2


def test_ecr_public_without_aws_credentials_is_anonymous(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", "http://127.0.0.1:9")  # never reached
    provider = EcrPublicProvider()
    assert asyncio.run(provider.resolve("public.ecr.aws")) is None
    assert asyncio.run(provider.resolve("ghcr.io")) is None
