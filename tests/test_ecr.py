"""ECR as a destination: host detection, CreateRepository against moto's server on loopback, and
a registry that answers 202 to every mount (as ECR does without blob mounting) costing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest
from aiohttp import web

from mirror.cli.main import main
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.synthetic import push_demo_image
from mirror.registry.base import BlobReader
from mirror.registry.distribution import RegistryRepository
from mirror.registry.ecr import delete_tag, ensure_repository, list_repositories, parse_ecr_host
from mirror.registry.ocilayout import OciLayout
from mirror.transport.client import HostOptions, Transport
from mirror.types.errors import AuthError, InputError, InvalidReference
from mirror.types.manifest import Descriptor

ACCOUNT = "123456789012"  # moto's default account
HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (HOST, "us-east-1"),
        (f"{ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com", "eu-west-3"),
        (f"{ACCOUNT}.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        (f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        (f"{ACCOUNT}.dkr-ecr.ap-southeast-2.on.aws", "ap-southeast-2"),
        ("public.ecr.aws", None),
        ("ghcr.io", None),
        ("12345.dkr.ecr.us-east-1.amazonaws.com", None),
        (f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com.evil.example", None),
        ("localhost:5000", None),
    ],
)
def test_ecr_hosts(host: str, region: str | None) -> None:
    parsed = parse_ecr_host(host)
    assert (parsed.region if parsed else None) == region


async def test_repository_created_once(aws_env: str) -> None:
    ecr = boto3.client("ecr", endpoint_url=aws_env, region_name="us-east-1")
    name = f"mirror/app-{uuid.uuid4().hex[:8]}"
    assert await ensure_repository(HOST, name, endpoint_url=aws_env, image_tag_mutability="IMMUTABLE") is True
    assert await ensure_repository(HOST, name, endpoint_url=aws_env) is False  # exists: fine
    [repo] = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert repo["registryId"] == ACCOUNT and repo["imageTagMutability"] == "IMMUTABLE"


async def test_endpoint_from_the_environment(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", aws_env)
    name = f"env/app-{uuid.uuid4().hex[:8]}"
    assert await ensure_repository(HOST, name) is True
    ecr = boto3.client("ecr", endpoint_url=aws_env, region_name="us-east-1")
    assert ecr.describe_repositories(repositoryNames=[name])["repositories"]


async def test_repositories_listed_through_describe_repositories(aws_env: str) -> None:
    """moto's ECR API: the listing names every repository of the host's account and region (the
    account sent as ``registryId``), and none of another account's."""
    ecr = boto3.client("ecr", endpoint_url=aws_env, region_name="us-east-1")
    team = f"team-{uuid.uuid4().hex[:8]}"
    names = [f"{team}/api", f"{team}/web/front", f"{team}x/other"]
    for name in names:
        ecr.create_repository(repositoryName=name)
    listed = await list_repositories(HOST, endpoint_url=aws_env)
    assert set(names) <= set(listed) and len(listed) == len(set(listed))
    elsewhere = await list_repositories(HOST.replace(ACCOUNT, "210987654321"), endpoint_url=aws_env)
    assert not set(names) & set(elsewhere)


async def test_bad_requests_fail_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="not an Amazon ECR registry"):
        await ensure_repository("ghcr.io", "app")
    with pytest.raises(InputError, match="not an Amazon ECR registry"):
        await delete_tag("ghcr.io", "app", "v1")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InputError, match="set AWS_REGION to delete tags there"):
        await delete_tag("127.0.0.1:5999", "app", "v1", any_name=True)
    with pytest.raises(InputError, match="set AWS_REGION to list repositories there"):
        await list_repositories("127.0.0.1:5999", any_name=True)
    with pytest.raises(InvalidReference, match="ECR repository"):
        await ensure_repository(HOST, "Bad/../Name")


def test_copy_creates_the_ecr_repository_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []

    async def fake(host: str, repository: str, **options: object) -> bool:
        calls.append((host, repository))
        raise AuthError("not allowed to create it")

    monkeypatch.setattr("mirror.registry.ecr.ensure_repository", fake)
    asyncio.run(push_demo_image(OciLayout(tmp_path / "src", create=True), "v1"))
    src = f"oci:{tmp_path / 'src'}:v1"
    assert main(["copy", "--quiet", "--create-repository", src, f"{HOST}/team/app:v1"]) == 1
    assert calls == [(HOST, "team/app")]  # before anything was sent to the registry
    # only ECR destinations need it
    assert main(["copy", "--quiet", "--create-repository", src, f"oci:{tmp_path / 'dst'}:v1"]) == 0
    assert calls == [(HOST, "team/app")]


# -- a registry that answers 202 to every mount --------------------------------------------------


class MountlessRegistry:
    """A tiny OCI registry that never mounts: ``POST ?mount=`` opens an upload session (202)."""

    def __init__(self) -> None:
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.sessions: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.app = web.Application()
        r = self.app.router
        r.add_get("/v2/", self.ping)
        r.add_post("/v2/{name:.+}/blobs/uploads/", self.start_upload)
        r.add_put("/upload/{id}", self.finish_upload)
        r.add_route("HEAD", "/v2/{name:.+}/blobs/{digest}", self.head_blob)
        r.add_route("*", "/v2/{name:.+}/manifests/{ref}", self.manifest)

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response()

    async def start_upload(self, request: web.Request) -> web.Response:
        kind = "POST mount" if "mount" in request.query else "POST"
        self.calls[kind] += 1
        session = uuid.uuid4().hex
        self.sessions[session] = request.match_info["name"]
        return web.Response(status=202, headers={"Location": f"/upload/{session}?_state=x"})

    async def finish_upload(self, request: web.Request) -> web.Response:
        self.calls["PUT blob"] += 1
        name = self.sessions.pop(request.match_info["id"])
        assert request.query["_state"] == "x"
        data = await request.read()
        digest = request.query["digest"]
        assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(name, {})[digest] = data
        return web.Response(status=201)

    async def head_blob(self, request: web.Request) -> web.Response:
        self.calls["HEAD blob"] += 1
        present = request.match_info["digest"] in self.blobs.get(request.match_info["name"], {})
        return web.Response(status=200 if present else 404)

    async def manifest(self, request: web.Request) -> web.Response:
        name, ref = request.match_info["name"], request.match_info["ref"]
        store = self.manifests.setdefault(name, {})
        if request.method == "PUT":
            data = await request.read()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            store[ref] = store[digest] = (data, request.content_type)
            return web.Response(status=201, headers={"Docker-Content-Digest": digest})
        if ref not in store:
            return web.Response(status=404)
        data, media_type = store[ref]
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        return web.Response(body=data, headers=headers)


class CountingLayout(OciLayout):
    reads = 0

    async def open_blob(self, desc: Descriptor) -> BlobReader:
        self.reads += 1
        return await super().open_blob(desc)


@pytest.fixture
async def mountless() -> AsyncIterator[tuple[MountlessRegistry, str]]:
    registry = MountlessRegistry()
    runner = web.AppRunner(registry.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield registry, f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_202_to_every_mount_wastes_no_request(
    mountless: tuple[MountlessRegistry, str], tmp_path: Path
) -> None:
    registry, host = mountless
    source = CountingLayout(tmp_path / "src", create=True)
    await push_demo_image(source, "v1")
    names = ("team/a", "team/b", "team/c")
    async with Transport(options={host: HostOptions(plain_http=True)}) as transport:
        repos = [RegistryRepository(transport, host, name) for name in names]
        engine = CopyEngine()
        [result] = await engine.run([CopyTask(source, "v1", [Destination(r, "v1") for r in repos])])
        assert result.ok, result
        # Every blob upload opened exactly one session, a 202 to a mount included: one POST per PUT.
        assert registry.calls["POST mount"] > 0
        assert registry.calls["POST"] + registry.calls["POST mount"] == registry.calls["PUT blob"]
        assert engine._blobs.no_mount == {host}  # learnt from a 202 to a blob it had just pushed there
        mounts, reads = registry.calls["POST mount"], source.reads

        # A second image sharing the base layer: no more mount attempts there, and each new blob
        # is read from the source once for all three repositories.
        await push_demo_image(source, "v2", note="another top layer")
        [again] = await engine.run([CopyTask(source, "v2", [Destination(r, "v2") for r in repos])])
        assert again.ok, again
        assert registry.calls["POST mount"] == mounts
        assert source.reads - reads == 6  # three new top layers and three new configs
    assert registry.calls["POST"] + registry.calls["POST mount"] == registry.calls["PUT blob"]
    assert registry.sessions == {}  # no session left open
    for name in names:
        assert registry.manifests[name]["v1"][0] == (await source.get_manifest("v1")).raw
        assert registry.manifests[name]["v2"][0] == (await source.get_manifest("v2")).raw
    # every blob of both images reached all three repositories, once
    blobs = len(list((tmp_path / "src" / "blobs" / "sha256").iterdir())) - 8  # less 2 x (3 manifests + index)
    assert [len(registry.blobs[name]) for name in names] == [blobs, blobs, blobs]
    assert registry.calls["PUT blob"] == 3 * blobs
