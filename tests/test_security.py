"""Security defaults: TLS verified (a custom CA when configured), plain HTTP only for loopback or
on opt-in, credentials never over plain HTTP to a non-loopback host nor to another host except
a token realm over https, secrets redacted from what a run writes.

Nothing leaves the machine: "remote" hosts are either checked by the pure decision functions in
`mirror.transport.urls`, or simulated by telling those functions that 127.0.0.1 is not loopback.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from mirror.auth.credentials import Credential, StaticProvider
from mirror.cli.main import main
from mirror.registry.distribution import RegistryRepository
from mirror.transport import urls
from mirror.transport.client import HostOptions, Transport
from mirror.transport.retry import RetryPolicy
from mirror.types.errors import TransportError, UnsafeRequest
from tests.support.check import assert_complete
from tests.support.evil import EvilRegistry
from tests.support.images import fetch_manifest, list_tags, push_image
from tests.support.tls import Pki, make_pki

USER, PASSWORD = "robot", "security-test-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TOKEN = "registry-token-7f3a9c"
FAST = RetryPolicy(attempts=2, base=0.01, cap=0.05)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, 127.0.0.1 and localhost count as remote hosts (nothing else changes)."""
    monkeypatch.setattr(urls, "is_loopback_host", lambda host: False)


def provider(*hosts: str) -> StaticProvider:
    return StaticProvider({h: Credential(username=USER, password=PASSWORD) for h in hosts})


# -- the decisions, without a network ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "plain_http", "schemes"),
    [
        ("registry.invalid", False, ("https",)),
        ("registry.example.com:5000", False, ("https",)),
        ("10.0.0.1:5000", False, ("https",)),
        ("192.168.1.20", False, ("https",)),
        ("[2001:db8::1]:5000", False, ("https",)),
        ("127.0.0.1:5000", False, ("https", "http")),
        ("127.1.2.3", False, ("https", "http")),
        ("localhost:5000", False, ("https", "http")),
        ("[::1]:5000", False, ("https", "http")),
        # Names that merely look like loopback are remote hosts.
        ("127.evil.example:5000", False, ("https",)),
        ("127.0.0.1.nip.io", False, ("https",)),
        ("localhost.evil.example", False, ("https",)),
        ("registry.invalid", True, ("http",)),
        ("127.0.0.1:5000", True, ("http",)),
    ],
)
def test_ping_schemes(host: str, plain_http: bool, schemes: tuple[str, ...]) -> None:
    assert urls.ping_schemes(host, plain_http) == schemes


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://registry.invalid/v2/", True),
        ("https://auth.example.com/token", True),
        ("http://registry.invalid/v2/", False),
        ("http://10.1.2.3/token", False),
        ("http://127.evil.example/token", False),
        ("http://127.0.0.1:5000/token", True),
        ("http://localhost/token", True),
        ("http://[::1]:8080/token", True),
        ("ftp://127.0.0.1/token", False),
    ],
)
def test_credentials_allowed(url: str, allowed: bool) -> None:
    assert urls.credentials_allowed(URL(url)) is allowed


_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    labels=st.lists(_label, min_size=1, max_size=4),
    port=st.integers(1, 65535) | st.none(),
    plain_http=st.booleans(),
)
def test_any_non_loopback_name_is_https_only(labels: list[str], port: int | None, plain_http: bool) -> None:
    name = ".".join(labels)
    if name == "localhost":
        name = "localhost.example"
    host = f"{name}:{port}" if port else name
    schemes = urls.ping_schemes(host, plain_http)
    loopback = name.startswith("127.") and all(p.isdigit() for p in labels) and len(labels) == 4
    assert schemes == (("http",) if plain_http else (("https", "http") if loopback else ("https",)))
    assert urls.credentials_allowed(URL.build(scheme="https", host=name, port=port))
    assert urls.credentials_allowed(URL.build(scheme="http", host=name, port=port)) is (
        loopback and all(int(p) < 256 for p in labels)
    )


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def tls_registry(pki: Pki) -> Iterator[EvilRegistry]:
    with EvilRegistry(ssl_context=pki.server_context()) as server:
        server.image("apps/web", "v1", seed="tls")
        server.tags("apps/web", ["v1"])
        yield server


async def test_tls_is_verified_by_default(tls_registry: EvilRegistry) -> None:
    async with Transport(retry=FAST) as transport:
        with pytest.raises(TransportError, match="certificate verify failed") as failure:
            await RegistryRepository(transport, tls_registry.host, "apps/web").head_manifest("v1")
    # The https answer is the error: no fall back to plain HTTP on a server that speaks TLS.
    assert failure.value.message.startswith(f"GET https://{tls_registry.host}/v2/: TLS error")
    assert "needs ca_file set for its host" in failure.value.message
    assert tls_registry.requests == []  # the handshake failed: no request was ever read


async def test_tls_with_the_custom_ca_is_accepted(tls_registry: EvilRegistry, pki: Pki) -> None:
    options = {tls_registry.host: HostOptions(ca_file=str(pki.ca_file))}
    async with Transport(options=options, retry=FAST) as transport:
        info = await RegistryRepository(transport, tls_registry.host, "apps/web").head_manifest("v1")
        assert info is not None
        assert str(await transport.base_url(tls_registry.host)).startswith("https://")


def test_sync_with_ca_file_from_config(
    tls_registry: EvilRegistry, pki: Pki, registry: Any, tmp_path: Path
) -> None:
    config = tmp_path / "sync.yaml"
    text = f"""
version: 1
registries:
  "{tls_registry.host}": {{ca_file: "{pki.ca_file}"}}
jobs:
  - name: tls
    source: {tls_registry.host}/apps/web
    destinations: [{registry.host}/mirror]
"""
    config.write_text(text.replace(f'{{ca_file: "{pki.ca_file}"}}', "{}"))
    report = tmp_path / "report.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1  # no CA
    [job] = json.loads(report.read_text())["jobs"]
    assert "certificate verify failed" in job["error"] and "ca_file" in job["error"]
    assert list_tags(registry, "mirror/web") == []
    config.write_text(text)
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert list_tags(registry, "mirror/web") == ["v1"]
    source = tls_registry.image("apps/web", None, seed="tls")  # the same bytes the tag serves
    copied = fetch_manifest(registry, "mirror/web", "v1")
    assert copied.digest == source.digest and copied.data == source.manifest
    assert_complete(registry, "mirror/web")


# -- plain HTTP and credentials -----------------------------------------------------------------


async def test_remote_host_without_opt_in_is_never_spoken_to_in_plain_http(remote: None) -> None:
    with EvilRegistry() as plain:
        async with Transport(provider(plain.host), retry=FAST) as transport:
            with pytest.raises(TransportError, match=r"GET https://127\.0\.0\.1:\d+/v2/"):
                await RegistryRepository(transport, plain.host, "apps/web").head_manifest("v1")
        assert plain.requests == []  # a TLS hello is not an HTTP request: nothing in plain text


async def test_basic_credentials_never_go_over_plain_http_to_a_remote_host(remote: None) -> None:
    with EvilRegistry(challenge='Basic realm="lab"', accept=lambda auth: auth == BASIC) as lab:
        lab.image("apps/web", "v1", seed="lab")
        options = {lab.host: HostOptions(plain_http=True)}  # plain HTTP was opted in ...
        async with Transport(provider(lab.host), options=options, retry=FAST) as transport:
            with pytest.raises(
                UnsafeRequest,
                match=r"refusing to send credentials for 127\.0\.0\.1:\d+ "
                r"over plain HTTP",
            ):
                await RegistryRepository(transport, lab.host, "apps/web").head_manifest("v1")
        # ... but the credentials were not: only the unauthenticated ping reached the server.
        assert [(s.method, s.path, s.authorization) for s in lab.requests] == [("GET", "/v2/", None)]


async def test_plain_http_with_credentials_on_loopback_is_allowed() -> None:
    with EvilRegistry(challenge='Basic realm="lab"', accept=lambda auth: auth == BASIC) as lab:
        lab.image("apps/web", "v1", seed="lab")
        async with Transport(provider(lab.host), retry=FAST) as transport:
            assert await RegistryRepository(transport, lab.host, "apps/web").head_manifest("v1")
        assert any(s.authorization == BASIC for s in lab.requests)


def token_realm(pki: Pki | None) -> EvilRegistry:
    """A token endpoint (`GET /token`) that wants the Basic credentials and hands out TOKEN."""

    async def token(request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Authorization") != BASIC:
            return web.Response(status=401)
        return web.json_response({"token": TOKEN, "expires_in": 300})

    server = EvilRegistry(ssl_context=pki.server_context() if pki else None)
    server.answer("GET", "/token", token)
    return server


async def test_token_realm_on_another_host_gets_credentials_over_https(pki: Pki) -> None:
    with token_realm(pki) as realm:
        realm_host = f"localhost:{realm.port}"  # another host than the registry's 127.0.0.1
        challenge = f'Bearer realm="https://{realm_host}/token",service="evil"'
        with EvilRegistry(challenge=challenge, accept=lambda auth: auth == f"Bearer {TOKEN}") as reg:
            reg.image("apps/web", "v1", seed="realm")
            options = {realm_host: HostOptions(ca_file=str(pki.ca_file))}
            async with Transport(provider(reg.host), options=options, retry=FAST) as transport:
                assert await RegistryRepository(transport, reg.host, "apps/web").head_manifest("v1")
            assert all(s.authorization in (None, f"Bearer {TOKEN}") for s in reg.requests)
        assert [s.authorization for s in realm.seen("GET", "/token")] == [BASIC]


async def test_token_realm_with_an_untrusted_certificate_gets_nothing(pki: Pki) -> None:
    with token_realm(pki) as realm:
        challenge = f'Bearer realm="https://localhost:{realm.port}/token",service="evil"'
        with EvilRegistry(challenge=challenge, accept=lambda auth: False) as reg:
            async with Transport(provider(reg.host), retry=FAST) as transport:
                with pytest.raises(TransportError, match="certificate verify failed"):
                    await RegistryRepository(transport, reg.host, "apps/web").head_manifest("v1")
        assert realm.requests == []


async def test_plain_http_token_realm_on_a_remote_host_gets_nothing(remote: None) -> None:
    with token_realm(None) as realm:
        challenge = f'Bearer realm="http://localhost:{realm.port}/token",service="evil"'
        with EvilRegistry(challenge=challenge, accept=lambda auth: False) as reg:
            options = {reg.host: HostOptions(plain_http=True)}
            async with Transport(provider(reg.host), options=options, retry=FAST) as transport:
                with pytest.raises(UnsafeRequest, match="refusing to send credentials"):
                    await RegistryRepository(transport, reg.host, "apps/web").head_manifest("v1")
        assert realm.requests == []


# -- secrets echoed back by a hostile registry ----------------------------------------------------


def echoing_registry() -> EvilRegistry:
    """Refuses every push, quoting the Authorization header it was sent in the error message."""

    async def echo(request: web.BaseRequest) -> web.StreamResponse:
        quoted = request.headers.get("Authorization", "")
        body = {"errors": [{"code": "DENIED", "message": f"not with {quoted} ({PASSWORD})"}]}
        return web.json_response(body, status=403)

    server = EvilRegistry(challenge='Basic realm="echo"', accept=lambda auth: auth == BASIC)
    server.answer("POST", "/v2/mirror/web/blobs/uploads/", echo)
    server.answer("PUT", "/v2/mirror/web/manifests/v1", echo)
    return server


def test_copy_never_repeats_an_echoed_secret(
    registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(registry, "apps/web", "v1")
    report = tmp_path / "report.json"
    with echoing_registry() as echo:
        code = main(
            [
                "copy",
                "--quiet",
                f"{registry.host}/apps/web:v1",
                f"{echo.host}/mirror/web:v1",
                "--dest-creds",
                f"{USER}:{PASSWORD}",
                "--report",
                str(report),
            ]
        )
        assert echo.seen("POST"), "the hostile registry was never asked"
    assert code == 1
    err = capsys.readouterr().err
    written = report.read_text()
    assert "DENIED" in written and "DENIED" in err
    for secret in (PASSWORD, BASIC.split()[1]):
        assert secret not in written and secret not in err


def test_sync_never_repeats_an_echoed_secret(
    registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(registry, "apps/web", "v1")
    report = tmp_path / "report.json"
    with echoing_registry() as echo:
        config = tmp_path / "sync.yaml"
        config.write_text(f"""
version: 1
log: {{format: json}}
registries:
  "{echo.host}": {{username: {USER}, password: {PASSWORD}}}
jobs:
  - name: echo
    source: {registry.host}/apps/web:v1
    destinations: [{echo.host}/mirror]
""")
        assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1
    captured = capsys.readouterr()
    written = report.read_text()
    assert "DENIED" in written
    for secret in (PASSWORD, BASIC.split()[1]):
        for name, text in (("report", written), ("stderr", captured.err), ("stdout", captured.out)):
            assert secret not in text, f"a secret appears in the {name}"
    assert json.loads(written)["ok"] is False
