"""Hostile and malformed input from a registry: each bad thing gets one clear error, and the run
carries on with the rest.

The source is an "evil registry" (tests/support/evil.py) on loopback that serves lying digests,
wrong media types, descriptor sizes that do not match the bytes, nesting beyond the engine's
limit, loops, unknown digest algorithms, oversize and endless bodies, invalid tags, and
`Location`/`Link`/realm/redirect headers that point at other hosts or schemes. The destination,
where there is one, is a real `docker-registry`, checked from outside afterwards.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import example, given, settings
from hypothesis import strategies as st
from yarl import URL

from mirror.auth.credentials import Credential, StaticProvider
from mirror.cli.main import main
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.resolve import MAX_INDEX_DEPTH
from mirror.copy.results import ImageResult
from mirror.registry.distribution import RegistryRepository, list_catalog
from mirror.transport.client import Transport
from mirror.transport.retry import RetryPolicy
from mirror.transport.urls import host_of, next_link, resolve_location
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import AuthError, InvalidReference, ManifestError, UnsafeRequest
from mirror.types.manifest import MAX_INDEX_ENTRIES, Descriptor
from mirror.types.reference import is_loopback_host, validate_tag
from tests.support.check import assert_complete
from tests.support.evil import Answer, EvilRegistry, sha256
from tests.support.images import fetch_manifest, list_tags
from tests.support.images import list_catalog as registry_catalog

USER, PASSWORD = "robot", "hostile-test-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
REPO = "fleet/app"
FAST = RetryPolicy(attempts=2, base=0.01, cap=0.05)


@pytest.fixture
def evil() -> Iterator[EvilRegistry]:
    with EvilRegistry() as server:
        yield server


def index_of(children: list[tuple[str, bytes, str]], media_type: str = mt.OCI_INDEX) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {
                "mediaType": t,
                "digest": d,
                "size": len(b),
                "platform": {"os": "linux", "architecture": "amd64"},
            }
            for d, b, t in children
        ],
    }
    return json.dumps(doc).encode()


def build_hostile_repo(evil: EvilRegistry) -> dict[str, str]:
    """Tags of REPO -> the fragment its one error must contain ("" for the good ones)."""
    expected: dict[str, str] = {}
    evil.image(REPO, "good-1", seed="good-1")
    evil.image(REPO, "good-2", seed="good-2", media_type=mt.DOCKER_MANIFEST)
    expected.update({"good-1": "", "good-2": ""})

    schema1 = json.dumps({"schemaVersion": 1, "name": REPO, "tag": "schema1", "fsLayers": []}).encode()
    evil.manifest(REPO, "schema1", schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws")
    expected["schema1"] = "Docker schema 1 manifests are deprecated and not supported"

    unknown = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}).encode()
    evil.manifest(REPO, "unknown-type", unknown, "application/vnd.example.thing+json")
    expected["unknown-type"] = "unsupported manifest media type 'application/vnd.example.thing+json'"

    clash = evil.image(REPO, None, seed="clash")
    evil.manifest(REPO, "type-clash", clash.manifest, mt.DOCKER_MANIFEST_LIST)
    expected["type-clash"] = (
        f"manifest body says '{mt.OCI_MANIFEST}' but it was served as '{mt.DOCKER_MANIFEST_LIST}'"
    )

    def grow(doc: dict[str, Any]) -> None:
        doc["layers"][0]["size"] += 1000

    def shrink(doc: dict[str, Any]) -> None:
        doc["layers"][0]["size"] -= 10

    for tag, edit, delta in (("size-long", grow, 1000), ("size-short", shrink, -10)):
        digest, data = evil.image(REPO, tag, seed=tag, edit=edit).blobs[1]
        expected[tag] = f"blob {Digest.parse(digest).short} size mismatch: expected {len(data) + delta} bytes"

    liar = evil.image(REPO, None, seed="digest-lie")
    fake = sha256(b"some other manifest")
    evil.manifest(REPO, "digest-lie", liar.manifest, mt.OCI_MANIFEST, digest_header=fake)
    evil.answer(
        "GET", f"/v2/{REPO}/manifests/{fake}", Answer(200, {"Content-Type": mt.OCI_MANIFEST}, liar.manifest)
    )
    # The tag is read with one GET (nothing at the destination yet): the header is checked there.
    expected["digest-lie"] = f"Docker-Content-Digest says {fake} but the bytes hash to {liar.digest}"

    deep = evil.image(REPO, None, seed="deep")
    level = (deep.digest, deep.manifest, mt.OCI_MANIFEST)
    for _ in range(MAX_INDEX_DEPTH + 2):
        body = index_of([level])
        level = (evil.manifest(REPO, None, body, mt.OCI_INDEX), body, mt.OCI_INDEX)
    evil.manifest(REPO, "deep", level[1], mt.OCI_INDEX)
    expected["deep"] = f"index nesting deeper than {MAX_INDEX_DEPTH} levels"

    # A loop: the index's child, fetched by its digest, is answered with the index itself.
    child = sha256(b"the child the index names")
    loop = index_of([(child, b"x" * 300, mt.OCI_INDEX)])
    evil.manifest(REPO, "cycle", loop, mt.OCI_INDEX)
    evil.answer("GET", f"/v2/{REPO}/manifests/{child}", Answer(200, {"Content-Type": mt.OCI_INDEX}, loop))
    expected["cycle"] = f"@{child}: the registry served a manifest whose digest is {sha256(loop)}"

    def md5(doc: dict[str, Any]) -> None:
        doc["layers"][0]["digest"] = "md5:" + "0" * 32

    evil.image(REPO, "md5-layer", seed="md5", edit=md5)
    expected["md5-layer"] = "uses unsupported algorithm 'md5'"

    sha1 = evil.image(REPO, None, seed="sha1")
    evil.manifest(REPO, "sha1-get", sha1.manifest, mt.OCI_MANIFEST, digest_header="sha1:" + "a" * 40)
    expected["sha1-get"] = "bad Docker-Content-Digest"

    huge = b'{"schemaVersion": 2, "layers": [' + b" " * (mt.MAX_MANIFEST_BYTES + 10) + b"]}"
    evil.manifest(REPO, "huge", huge, mt.OCI_MANIFEST)
    expected["huge"] = f"response larger than {mt.MAX_MANIFEST_BYTES} bytes"
    endless = sha256(b"endless")
    evil.answer(
        "HEAD",
        f"/v2/{REPO}/manifests/endless",
        Answer(200, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": endless}),
    )
    for name in (endless, "endless"):  # by tag (a cold copy reads the tag) and by digest
        evil.answer(
            "GET",
            f"/v2/{REPO}/manifests/{name}",
            Answer(200, {"Content-Type": mt.OCI_MANIFEST}, endless=True),
        )
    expected["endless"] = f"response larger than {mt.MAX_MANIFEST_BYTES} bytes"

    wide = index_of([(sha256(str(i).encode()), b"{}", mt.OCI_MANIFEST) for i in range(MAX_INDEX_ENTRIES + 1)])
    evil.manifest(REPO, "wide", wide, mt.OCI_INDEX)
    expected["wide"] = f"index lists {MAX_INDEX_ENTRIES + 1} manifests: over {MAX_INDEX_ENTRIES}"

    flood = f"endless-blob-layer-{'z' * 50}".encode() * 10
    evil.image(REPO, "endless-blob", seed="endless-blob", layers=[flood])
    evil.blob(REPO, flood, get=Answer(200, {"Content-Type": "application/octet-stream"}, endless=True))
    expected["endless-blob"] = f"size mismatch: expected {len(flood)} bytes, got"

    # Tags that would leave the repository's path: another source repository is served under it,
    # so following it would copy that manifest into another destination repository.
    evil.image("fleet/victim", "pwned", seed="victim")
    for bad in ("../../victim/manifests/pwned", "a?mount=x", "-dash", "x" * 129):
        expected[bad] = f"tag {bad!r} is not valid"
    evil.tags(REPO, sorted(expected))
    return expected


def error_of(image: dict[str, Any]) -> str:
    return str(image["error"] or "; ".join(d["error"] for d in image["destinations"] if d["error"]))


def test_hostile_source_each_image_fails_alone(evil: EvilRegistry, registry: Any, tmp_path: Path) -> None:
    expected = build_hostile_repo(evil)
    evil.tags(
        "fleet/linky", ["v1"], link='<http://registry.invalid/v2/fleet/linky/tags/list?last=v1>; rel="next"'
    )
    evil.image("other/ok", "v1", seed="ok")
    evil.tags("other/ok", ["v1"])
    bad_names = ["other/../../etc", "other/UPPER", "other/a//b"]
    evil.answer(
        "GET",
        "/v2/_catalog",
        Answer(200, {}, json.dumps({"repositories": ["other/ok", *bad_names]}).encode()),
    )
    config = tmp_path / "sync.yaml"
    config.write_text(f"""
version: 1
jobs:
  - name: hostile
    source: {evil.host}/{REPO}
    destinations: [{registry.host}/mirror]
  - name: linky
    source: {evil.host}/fleet/linky
    destinations: [{registry.host}/mirror]
  - name: names
    source: {evil.host}/other/*
    destinations: [{registry.host}/names]
""")
    report = tmp_path / "report.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1
    doc = json.loads(report.read_text())
    images = {i["source"].split(f"{REPO}:", 1)[1]: i for i in doc["images"] if i["job"] == "hostile"}
    assert sorted(images) == sorted(expected)
    for tag, fragment in expected.items():
        image = images[tag]
        if not fragment:
            assert image["status"] == "copied", image
            continue
        assert image["status"] == "failed", (tag, image)
        assert fragment in error_of(image), (tag, error_of(image))
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert jobs["hostile"]["failed"] == len(expected) - 2
    assert not jobs["linky"]["ok"] and "pagination link points to another host" in jobs["linky"]["error"]
    # Bad repository names from the catalog: one error each, the good repository still copied.
    assert jobs["names"]["images"] == 1 and jobs["names"]["failed"] == 0
    for name in bad_names:
        assert f"repository {name!r}: component" in jobs["names"]["error"]
    # Only the good images landed, complete; nothing was written anywhere else.
    assert sorted(list_tags(registry, "mirror/app")) == ["good-1", "good-2"]
    assert_complete(registry, "mirror/app")
    assert registry_catalog(registry) == ["mirror/app", "names/ok"]
    for tag in ("good-1", "good-2"):
        served = fetch_manifest(registry, "mirror/app", tag)
        assert served.digest == sha256(served.data)
    allowed = ("/v2/fleet/app/", "/v2/fleet/linky/", "/v2/other/ok/", "/v2/_catalog?")
    assert all(s.path.startswith(allowed) or s.path == "/v2/" for s in evil.requests), sorted(
        {s.path for s in evil.requests}
    )
    assert not evil.seen(part="victim")


# -- headers pointing elsewhere ----------------------------------------------------------------


def transport_for(host: str, *, creds: bool = False) -> Transport:
    provider = StaticProvider({host: Credential(username=USER, password=PASSWORD)} if creds else {})
    return Transport(provider, retry=FAST)


async def copy_within(evil: EvilRegistry, *, creds: bool = False) -> ImageResult:
    """Copy `src/app:v1` to `dst/app:v1`, both on the evil registry."""
    evil.image("src/app", "v1", seed="within")
    async with transport_for(evil.host, creds=creds) as transport:
        engine = CopyEngine(retry=FAST)
        task = CopyTask(
            RegistryRepository(transport, evil.host, "src/app"),
            "v1",
            [Destination(RegistryRepository(transport, evil.host, "dst/app"), "v1")],
        )
        try:
            [result] = await engine.run([task])
        finally:
            await engine.aclose()
    return result


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "refusing to follow a URL with scheme 'file'"),
        ("ftp://127.0.0.1:21/upload", "refusing to follow a URL with scheme 'ftp'"),
        ("gopher://x/", "refusing to follow a URL with scheme 'gopher'"),
        ("http://[", "malformed URL 'http://['"),
        ("0://[", "malformed URL '0://['"),
        ("http://127.0.0.1:99999/upload", "malformed URL 'http://127.0.0.1:99999/upload'"),
    ],
)
async def test_upload_location_with_another_scheme_is_refused(
    evil: EvilRegistry, location: str, message: str
) -> None:
    evil.answer("POST", "/v2/dst/app/blobs/uploads/", Answer(202, {"Location": location}))
    result = await copy_within(evil)
    assert not result.ok
    [dest] = result.destinations
    assert message in dest.error and dest.error_kind == "unsafe", dest
    assert not evil.seen("PUT")  # no blob body, no manifest went anywhere
    uploads = [s for s in evil.seen("POST", "/v2/dst/app/blobs/uploads/") if "mount=" not in s.path]
    assert 1 <= len(uploads) <= 2  # at most one per blob (after a mount answered the same way): no retry


async def test_upload_location_on_another_host_gets_no_credentials(evil: EvilRegistry) -> None:
    evil.challenge = 'Basic realm="evil"'
    evil.accept = lambda auth: auth == BASIC
    with EvilRegistry() as storage:

        async def stored(request: web.BaseRequest) -> web.StreamResponse:
            return web.Response(status=201)

        # `localhost` reaches the same loopback server as 127.0.0.1 but is another host.
        target = f"http://localhost:{storage.port}/upload/session-1?_state=opaque"
        evil.answer("POST", "/v2/dst/app/blobs/uploads/", Answer(202, {"Location": target}))
        storage.answer("PUT", "/upload/session-1", stored)
        evil.answer("PUT", "/v2/dst/app/manifests/v1", Answer(201))
        result = await copy_within(evil, creds=True)
        assert result.ok, result
        puts = storage.seen("PUT")
        assert len(puts) == 2 and all(p.authorization is None for p in puts)
        assert all(p.path.startswith("/upload/session-1?_state=opaque&digest=sha256:") for p in puts)
    assert [s.path for s in evil.seen() if s.authorization != BASIC] == ["/v2/"]  # the first ping only
    assert [s.authorization for s in evil.seen("PUT", "/manifests/v1")] == [BASIC]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (
            '<http://registry.invalid/v2/_catalog?last=a>; rel="next"',
            "pagination link points to another host",
        ),
        ('<https://{host}/v2/_catalog?last=a>; rel="next"', "pagination link points to another host"),
        ('<ftp://{host}/v2/_catalog?last=a>; rel="next"', "pagination link points to another host"),
        ('<0://[>; rel="next"', "malformed URL"),
        ('<http://{host}:0x1/>; rel="next"', "malformed URL"),
    ],
)
async def test_catalog_link_to_another_host_or_scheme_is_refused(
    evil: EvilRegistry, link: str, message: str
) -> None:
    evil.answer(
        "GET", "/v2/_catalog", Answer(200, {"Link": link.format(host=evil.host)}, b'{"repositories": ["a"]}')
    )
    async with transport_for(evil.host) as transport:
        with pytest.raises(UnsafeRequest, match=message):
            await list_catalog(transport, evil.host)
    assert len(evil.seen("GET", "/v2/_catalog")) == 1


async def test_relative_catalog_link_is_followed(evil: EvilRegistry) -> None:
    evil.answer(
        "GET",
        "/v2/_catalog",
        Answer(200, {"Link": '</v2/next-page?last=a>; rel="next"'}, b'{"repositories": ["a"]}'),
    )
    evil.answer("GET", "/v2/next-page", Answer(200, {}, b'{"repositories": ["b"]}'))
    async with transport_for(evil.host) as transport:
        assert await list_catalog(transport, evil.host) == ["a", "b"]


@pytest.mark.parametrize(
    "realm",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/token",
        "javascript:alert(1)",
        "",
        "http://[",
        "http://127.0.0.1:99999/token",
    ],
)
async def test_token_realm_with_another_scheme_is_refused(evil: EvilRegistry, realm: str) -> None:
    evil.challenge = f'Bearer realm="{realm}",service="evil"'
    evil.accept = lambda auth: False
    async with transport_for(evil.host, creds=True) as transport:
        with pytest.raises(AuthError, match="sent a bearer challenge without a usable realm"):
            await RegistryRepository(transport, evil.host, "src/app").head_manifest("v1")


async def test_plain_http_realm_on_a_remote_host_gets_no_credentials(
    evil: EvilRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before anything is sent: no name is even resolved for the realm's host."""
    import aiohttp.connector

    resolved: list[str] = []
    original = aiohttp.connector.TCPConnector._resolve_host

    async def recording(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        if host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"tried to resolve {host}")
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(aiohttp.connector.TCPConnector, "_resolve_host", recording)
    evil.challenge = 'Bearer realm="http://auth.registry.invalid/token",service="evil"'
    evil.accept = lambda auth: False
    async with transport_for(evil.host, creds=True) as transport:
        with pytest.raises(
            UnsafeRequest,
            match=r"refusing to send credentials for 127\.0\.0\.1:\d+ over "
            r"plain HTTP to auth\.registry\.invalid",
        ):
            await RegistryRepository(transport, evil.host, "src/app").head_manifest("v1")
    assert "auth.registry.invalid" not in resolved
    assert all(s.authorization is None for s in evil.requests)


async def test_a_head_with_an_unsupported_digest_is_refused(evil: EvilRegistry) -> None:
    """HEAD is how a warm run compares tags: its Docker-Content-Digest is validated like a GET's."""
    headers = {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": "sha1:" + "a" * 40}
    evil.answer("HEAD", "/v2/src/app/manifests/v1", Answer(200, {**headers, "Content-Length": "10"}))
    async with transport_for(evil.host) as transport:
        with pytest.raises(ManifestError, match="bad Docker-Content-Digest"):
            await RegistryRepository(transport, evil.host, "src/app").head_manifest("v1")


async def test_redirect_chain_longer_than_the_limit_is_refused(evil: EvilRegistry) -> None:
    data = b"blob behind many redirects"
    digest = sha256(data)
    hops = 8
    evil.answer("GET", f"/v2/src/app/blobs/{digest}", Answer(307, {"Location": "/hop/1"}))
    for i in range(1, hops):
        evil.answer("GET", f"/hop/{i}", Answer(302, {"Location": f"/hop/{i + 1}"}))
    evil.answer("GET", f"/hop/{hops}", Answer(200, {}, data))
    async with transport_for(evil.host) as transport:
        repo = RegistryRepository(transport, evil.host, "src/app")
        with pytest.raises(UnsafeRequest, match="more than 5 redirects"):
            await repo.open_blob(Descriptor("application/octet-stream", Digest.parse(digest), len(data)))
    assert len(evil.seen("GET", "/hop/")) == 5  # the limit, then it stopped: no retry of an unsafe answer


@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1/blob", "data:text/plain,hello", "//", "http://[", "0://::"]
)
async def test_blob_redirect_to_another_scheme_is_refused(evil: EvilRegistry, location: str) -> None:
    data = b"blob"
    digest = sha256(data)
    evil.answer("GET", f"/v2/src/app/blobs/{digest}", Answer(307, {"Location": location}))
    async with transport_for(evil.host) as transport:
        repo = RegistryRepository(transport, evil.host, "src/app")
        with pytest.raises(UnsafeRequest):
            await repo.open_blob(Descriptor("application/octet-stream", Digest.parse(digest), len(data)))


# -- properties: whatever a registry puts in a header -----------------------------------------

BASE = URL("http://127.0.0.1:5000/v2/app/blobs/uploads/")
_url_text = st.text(max_size=80) | st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(
        [
            "http://",
            "https://",
            "//",
            "/",
            "?",
            "ftp:",
            "file:",
            "http:",
            "http://[",
            "0://",
            "http://127.0.0.1:",
            "http://user@127.0.0.1:5000",
            "HTTP://127.0.0.1:5000/",
        ]
    ),
    st.text(max_size=40),
)


@settings(max_examples=500, deadline=None)
@given(_url_text)
def test_any_location_resolves_to_http_or_is_refused(location: str) -> None:
    try:
        url = resolve_location(BASE, location)
    except UnsafeRequest:
        return
    assert url.scheme in ("http", "https") and str(url)


@settings(max_examples=500, deadline=None)
@given(_url_text, st.sampled_from(['rel="next"', "rel=next", 'rel="prev"']))
def test_any_link_stays_on_the_host_or_is_refused(target: str, rel: str) -> None:
    try:
        url = next_link(BASE, f"<{target}>; {rel}")
    except UnsafeRequest:
        return
    assert url is None or (host_of(url) == host_of(BASE) and url.scheme == BASE.scheme)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
@example("::1")  # a bare IPv6 address: its colons are no port separator
@example("[::1]:5000")
def test_loopback_is_only_localhost_127_and_v6_one(host: str) -> None:
    if is_loopback_host(host):
        if host.startswith("["):
            name = host[1 : host.find("]")]
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        assert name == "localhost" or ipaddress.ip_address(name).is_loopback


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=140))
def test_a_listed_tag_either_validates_or_is_refused_before_any_request(tag: str) -> None:
    try:
        validate_tag(tag)
    except InvalidReference as exc:
        assert repr(tag) in exc.message
        return
    assert not {"/", "?", "#", "%", ":"} & set(tag) and not tag.startswith((".", "-"))


# -- config files with bad types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency: many\n", "concurrency: expected a whole number, got 'many'"),
        (
            "registries:\n  r.example.com: {plain_http: maybe}\n",
            "registries[\"r.example.com\"].plain_http: expected true or false, got 'maybe'",
        ),
        (
            "registries:\n  r.example.com: {ca_file: 5}\n",
            'registries["r.example.com"].ca_file: expected text',
        ),
        ("registries:\n  'bad host!': {}\n", "registry host 'bad host!' is not a valid host name"),
        (
            "jobs:\n  - {name: a, source: r.example.com/a, destinations: 7}\n",
            "jobs[0].destinations: expected a list, got 7",
        ),
        (
            "jobs:\n  - {name: a, source: r.example.com/a, destinations: [d.example.com/x],\n"
            "     tags: {latest: 1e400}}\n",
            "jobs[0].tags.latest: expected a whole number",
        ),
        ("a: &a [*a]\n", "nested more than 50 levels deep"),
    ],
)
def test_config_with_bad_types_is_one_clear_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("version: 1\n" + text)
    assert main(["sync", "--config", str(config), "--once"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
