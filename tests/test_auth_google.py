"""Google provider: key file, ADC, metadata server, impersonation, universes; HTTP via aioresponses."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aioresponses import aioresponses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from mirror.auth import google as gmod
from mirror.auth.google import (
    CLOUD_PLATFORM,
    ApplicationDefault,
    GoogleProvider,
    Impersonated,
    KeyFile,
    MetadataServer,
    host_matches,
    universe_of_host,
)
from mirror.auth.googlehttp import AiohttpRequest
from mirror.types.errors import AuthError
from tests.support.aiohttp_compat import let_aioresponses_build_responses

TOKEN_URI = "https://oauth2.googleapis.com/token"
SA_EMAIL = "mirror@proj.iam.gserviceaccount.com"
TARGET = "pusher@proj.iam.gserviceaccount.com"
IAM_URL = f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken"
MDS = "http://metadata.google.internal/computeMetadata/v1"


@pytest.fixture(autouse=True)
def aioresponses_on_aiohttp_314(monkeypatch: pytest.MonkeyPatch) -> None:
    let_aioresponses_build_responses(monkeypatch)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def write_key(tmp_path: Path, pem: str, *, universe: str | None = None, name: str = "key.json") -> Path:
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "kid-1",
        "private_key": pem,
        "client_email": SA_EMAIL,
        "client_id": "1234567890",
        "token_uri": TOKEN_URI,
    }
    if universe:
        info["universe_domain"] = universe
    path = tmp_path / name
    path.write_text(json.dumps(info))
    return path


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
    return decoded


def token_answer(token: str, expires_in: int = 3599) -> dict[str, Any]:
    return {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return [c for (meth, u), cs in m.requests.items() for c in cs if meth == method and str(u) == url]


def form_of(call: Any) -> dict[str, list[str]]:
    data = call.kwargs["data"]
    return parse_qs(data.decode() if isinstance(data, bytes) else data)


# -- host patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "universe"),
    [
        ("gcr.io", "googleapis.com"),
        ("eu.gcr.io", "googleapis.com"),
        ("us-docker.pkg.dev", "googleapis.com"),
        ("europe-west1-docker.pkg.dev", "googleapis.com"),
        ("europe-west9-docker.s3nsregistry.fr", "s3nsapis.fr"),
        ("u-france-east1-docker.s3nsregistry.fr", "s3nsapis.fr"),
        ("registry.example.com", None),
        ("gcr.io.evil.example", None),
        ("evilgcr.io", None),
        ("docker.pkg.dev", None),
        ("a.b-docker.pkg.dev", None),
        ("s3nsregistry.fr", None),
    ],
)
def test_universe_of_host(host: str, universe: str | None) -> None:
    assert universe_of_host(host) == universe


def test_host_pattern_is_one_label() -> None:
    assert host_matches("eu.gcr.io", "*.gcr.io")
    assert not host_matches("a.eu.gcr.io", "*.gcr.io")
    assert host_matches("EU.GCR.IO", "*.gcr.io")


async def test_other_hosts_are_not_touched(tmp_path: Path) -> None:
    # The key file does not even exist: nothing is loaded for a host that is not Google's.
    provider = GoogleProvider(KeyFile(str(tmp_path / "missing.json")))
    with aioresponses():
        assert await provider.resolve("registry.example.com") is None
        assert await provider.resolve("123456789012.dkr.ecr.eu-west-1.amazonaws.com") is None


# -- key file as a token source ----------------------------------------------------------------


async def test_key_file_token(tmp_path: Path, pem: str) -> None:
    clock = FakeClock()
    provider = GoogleProvider(KeyFile(str(write_key(tmp_path, pem))), clock=clock)
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.first-secret", 3599))
        cred = await provider.resolve("europe-west1-docker.pkg.dev")
        assert cred is not None
        assert cred.username == "oauth2accesstoken"
        assert cred.password == "ya29.first-secret"
        assert cred.kind == "OAuth2 access token"
        assert cred.expires_at == pytest.approx(clock() + 3599, abs=2)
        assert "service account key" in cred.provider
        (call,) = calls(m, "POST", TOKEN_URI)
        form = form_of(call)
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        claims = claims_of(form["assertion"][0])
        assert claims["scope"] == CLOUD_PLATFORM
        assert claims["iss"] == SA_EMAIL
        assert claims["aud"] == TOKEN_URI
        # Same token for every Google host of the universe, from the cache.
        again = await provider.resolve("gcr.io")
        assert again == cred
        assert len(calls(m, "POST", TOKEN_URI)) == 1


async def test_refresh_follows_the_injected_clock(tmp_path: Path, pem: str) -> None:
    clock = FakeClock()
    provider = GoogleProvider(KeyFile(str(write_key(tmp_path, pem))), clock=clock)
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.one", 3600))
        m.post(TOKEN_URI, payload=token_answer("ya29.two", 3600))
        first = await provider.resolve("gcr.io")
        assert first is not None and first.password == "ya29.one"
        clock.advance(3000)  # 600 s left
        same = await provider.resolve("gcr.io", min_valid=300)
        assert same is first  # 600 >= 300 + 60 margin
        fresh = await provider.resolve("gcr.io", min_valid=1200)
        assert fresh is not None and fresh.password == "ya29.two"
        assert fresh.expires_at == pytest.approx(clock() + 3600, abs=2)
        assert len(calls(m, "POST", TOKEN_URI)) == 2
        # The new token cannot be beaten right away: no third request, even for 2 h.
        assert await provider.resolve("gcr.io", min_valid=7200) is fresh


async def test_concurrent_callers_share_one_refresh(tmp_path: Path, pem: str) -> None:
    provider = GoogleProvider(KeyFile(str(write_key(tmp_path, pem))), clock=FakeClock())
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.shared"))
        creds = await asyncio.gather(*(provider.resolve("us-docker.pkg.dev") for _ in range(20)))
        assert {c.password for c in creds if c} == {"ya29.shared"}
        assert len(calls(m, "POST", TOKEN_URI)) == 1


async def test_token_endpoint_refusal(tmp_path: Path, pem: str) -> None:
    provider = GoogleProvider(KeyFile(str(write_key(tmp_path, pem))))
    with aioresponses() as m:
        m.post(
            TOKEN_URI,
            status=400,
            payload={"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
        )
        with pytest.raises(AuthError) as info:
            await provider.resolve("gcr.io")
    text = str(info.value)
    assert "invalid_grant" in text
    assert "could not get an access token" in text
    assert "PRIVATE KEY" not in text and pem.splitlines()[1] not in text
    assert not info.value.temporary
    # A failure is not remembered: the next call asks again.
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.after"))
        cred = await provider.resolve("gcr.io")
        assert cred is not None and cred.password == "ya29.after"


async def test_token_endpoint_unreachable_is_temporary(tmp_path: Path, pem: str) -> None:
    provider = GoogleProvider(KeyFile(str(write_key(tmp_path, pem))))
    with aioresponses(), pytest.raises(AuthError) as info:
        await provider.resolve("gcr.io")
    assert info.value.temporary


async def test_missing_key_file(tmp_path: Path) -> None:
    provider = GoogleProvider(KeyFile(str(tmp_path / "nope.json")))
    with pytest.raises(AuthError, match="cannot read the key file"):
        await provider.resolve("gcr.io")


async def test_malformed_key_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": "not-a-key-secret"}))
    provider = GoogleProvider(KeyFile(str(path)))
    with pytest.raises(AuthError) as info:
        await provider.resolve("gcr.io")
    assert "not-a-key-secret" not in str(info.value)


# -- non-expiring _json_key_base64 -------------------------------------------------------------


async def test_json_key_base64(tmp_path: Path, pem: str) -> None:
    path = write_key(tmp_path, pem)
    provider = GoogleProvider(KeyFile(str(path), as_json_key=True))
    with aioresponses():  # no HTTP at all
        cred = await provider.resolve("europe-docker.pkg.dev")
    assert cred is not None
    assert cred.username == "_json_key_base64"
    assert base64.b64decode(cred.password) == path.read_bytes()
    assert cred.expires_at is None
    assert cred.remaining(0) == float("inf")
    assert cred.password not in repr(cred) and cred.password not in str(cred)
    assert "PRIVATE KEY" not in repr(cred)


async def test_json_key_for_s3ns_is_not_offered_to_google_hosts(tmp_path: Path, pem: str) -> None:
    path = write_key(tmp_path, pem, universe="s3nsapis.fr")
    provider = GoogleProvider(KeyFile(str(path), as_json_key=True))
    assert await provider.universe_domain() == "s3nsapis.fr"
    assert await provider.resolve("gcr.io") is None
    cred = await provider.resolve("europe-west9-docker.s3nsregistry.fr")
    assert cred is not None and cred.username == "_json_key_base64"


# -- another universe: Trusted Cloud by S3NS ---------------------------------------------------


async def test_s3ns_key_file_uses_a_self_signed_jwt(tmp_path: Path, pem: str) -> None:
    clock = FakeClock()
    path = write_key(tmp_path, pem, universe="s3nsapis.fr")
    provider = GoogleProvider(KeyFile(str(path)), clock=clock)
    with aioresponses():  # any HTTP call would fail: outside googleapis.com none is made
        assert await provider.resolve("europe-docker.pkg.dev") is None
        assert await provider.resolve("gcr.io") is None
        cred = await provider.resolve("europe-west9-docker.s3nsregistry.fr")
    assert cred is not None and cred.username == "oauth2accesstoken"
    claims = claims_of(cred.password)
    assert claims["iss"] == SA_EMAIL
    assert claims["scope"] == CLOUD_PLATFORM
    assert cred.expires_at == pytest.approx(clock() + 3600, abs=2)


async def test_extra_hosts(tmp_path: Path, pem: str) -> None:
    path = write_key(tmp_path, pem)
    provider = GoogleProvider(KeyFile(str(path), as_json_key=True), hosts=["registry.corp.example"])
    assert await provider.resolve("registry.corp.example") is not None
    assert await provider.resolve("other.corp.example") is None


# -- application default credentials -----------------------------------------------------------


@pytest.fixture
def no_ambient_adc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.delenv("GCE_METADATA_HOST", raising=False)
    monkeypatch.delenv("GCE_METADATA_ROOT", raising=False)


async def test_adc_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pem: str, no_ambient_adc: None
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key(tmp_path, pem)))
    clock = FakeClock()
    provider = GoogleProvider(ApplicationDefault(), clock=clock)
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.adc", 3000))
        cred = await provider.resolve("asia.gcr.io")
        assert cred is not None and cred.password == "ya29.adc"
        assert cred.expires_at == pytest.approx(clock() + 3000, abs=2)
        assert "application default credentials" in cred.provider
        claims = claims_of(form_of(calls(m, "POST", TOKEN_URI)[0])["assertion"][0])
        assert claims["scope"] == CLOUD_PLATFORM


async def test_adc_absent(monkeypatch: pytest.MonkeyPatch, no_ambient_adc: None) -> None:
    monkeypatch.setattr("google.auth.compute_engine._metadata._NO_GCE_CHECK", True)
    with aioresponses():
        optional = GoogleProvider(ApplicationDefault(optional=True))
        assert await optional.resolve("gcr.io") is None
        assert await optional.resolve("gcr.io") is None  # remembered, not looked up again
        required = GoogleProvider(ApplicationDefault())
        with pytest.raises(AuthError, match="default credentials"):
            await required.resolve("gcr.io")


def mock_metadata(m: aioresponses, *, universe: str | None, token: str, expires_in: int) -> None:
    if universe is None:
        m.get(f"{MDS}/universe/universe-domain", status=404, body="not found", content_type="text/html")
    else:
        m.get(f"{MDS}/universe/universe-domain", body=universe, content_type="application/text")
    m.get(
        re.compile(re.escape(f"{MDS}/instance/service-accounts/default/") + r"\?recursive=true$"),
        payload={"email": "node@proj.iam.gserviceaccount.com", "scopes": [CLOUD_PLATFORM]},
        headers={"Metadata-Flavor": "Google"},
    )
    m.get(
        re.compile(re.escape(f"{MDS}/instance/service-accounts/default/token") + r"(\?.*)?$"),
        payload={"access_token": token, "expires_in": expires_in, "token_type": "Bearer"},
        headers={"Metadata-Flavor": "Google"},
    )


async def test_adc_on_a_gce_node(monkeypatch: pytest.MonkeyPatch, no_ambient_adc: None) -> None:
    monkeypatch.setattr("google.auth.compute_engine._metadata._NO_GCE_CHECK", False)
    clock = FakeClock()
    provider = GoogleProvider(ApplicationDefault(optional=True), clock=clock)
    with aioresponses() as m:
        m.get(
            re.compile(r"^http://169\.254\.169\.254/?$"),
            body="",
            headers={"Metadata-Flavor": "Google"},
        )
        m.get(f"{MDS}/project/project-id", body="proj", content_type="application/text")
        mock_metadata(m, universe=None, token="ya29.node", expires_in=1234)
        cred = await provider.resolve("us-docker.pkg.dev")
        assert cred is not None and cred.password == "ya29.node"
        # The metadata server hands out tokens with less than an hour left; its word counts.
        assert cred.expires_at == pytest.approx(clock() + 1234, abs=2)
        token_calls = [c for (meth, u), cs in m.requests.items() if "/token" in str(u) for c in cs]
        (token_call,) = token_calls
        headers = {k.lower(): v for k, v in token_call.kwargs["headers"].items()}
        assert headers["metadata-flavor"] == "Google"


# -- metadata server ---------------------------------------------------------------------------


async def test_metadata_server(no_ambient_adc: None) -> None:
    clock = FakeClock()
    provider = GoogleProvider(MetadataServer(), clock=clock)
    with aioresponses() as m:
        mock_metadata(m, universe=None, token="ya29.mds", expires_in=2000)
        assert await provider.universe_domain() == "googleapis.com"
        cred = await provider.resolve("gcr.io")
    assert cred is not None and cred.password == "ya29.mds"
    assert cred.expires_at == pytest.approx(clock() + 2000, abs=2)
    assert cred.provider == "google (metadata server)"


async def test_metadata_server_in_s3ns(no_ambient_adc: None) -> None:
    provider = GoogleProvider(MetadataServer(), clock=FakeClock())
    with aioresponses() as m:
        mock_metadata(m, universe="s3nsapis.fr", token="ya29.s3ns", expires_in=3600)
        assert await provider.resolve("us-docker.pkg.dev") is None
        cred = await provider.resolve("europe-west9-docker.s3nsregistry.fr")
    assert cred is not None and cred.password == "ya29.s3ns"


async def test_metadata_server_refusal(no_ambient_adc: None) -> None:
    provider = GoogleProvider(MetadataServer())
    with aioresponses() as m:
        m.get(f"{MDS}/universe/universe-domain", status=404, body="")
        m.get(
            re.compile(re.escape(f"{MDS}/instance/service-accounts/default/") + r"\?recursive=true$"),
            status=403,
            body="Forbidden",
        )
        with pytest.raises(AuthError, match="metadata server"):
            await provider.resolve("gcr.io")


# -- impersonation -----------------------------------------------------------------------------


def iam_time(seconds_from_now: int) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_impersonation(tmp_path: Path, pem: str) -> None:
    clock = FakeClock()
    source = KeyFile(str(write_key(tmp_path, pem)))
    provider = GoogleProvider(Impersonated(TARGET, source=source), clock=clock)
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.source-secret"))
        m.post(IAM_URL, payload={"accessToken": "ya29.impersonated", "expireTime": iam_time(1800)})
        cred = await provider.resolve("europe-west1-docker.pkg.dev")
        assert cred is not None and cred.password == "ya29.impersonated"
        assert cred.expires_at == pytest.approx(clock() + 1800, abs=3)
        assert cred.provider == f"google (impersonating {TARGET} with service account key {source.path})"
        (iam_call,) = calls(m, "POST", IAM_URL)
        headers = {k.lower(): v for k, v in iam_call.kwargs["headers"].items()}
        assert headers["authorization"] == "Bearer ya29.source-secret"
        body = json.loads(iam_call.kwargs["data"])
        assert body["scope"] == [CLOUD_PLATFORM]
        assert body["lifetime"] == "3600s"


async def test_impersonation_denied(tmp_path: Path, pem: str) -> None:
    source = KeyFile(str(write_key(tmp_path, pem)))
    provider = GoogleProvider(Impersonated(TARGET, source=source))
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.source-secret"))
        m.post(
            IAM_URL,
            status=403,
            payload={
                "error": {
                    "code": 403,
                    "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource",
                    "status": "PERMISSION_DENIED",
                }
            },
        )
        with pytest.raises(AuthError) as info:
            await provider.resolve("gcr.io")
    text = str(info.value)
    assert "roles/iam.serviceAccountTokenCreator" in text and TARGET in text
    assert "ya29.source-secret" not in text and "ya29.source-secret" not in repr(info.value)


# -- the thread and the loop -------------------------------------------------------------------


class SlowCredentials:
    """Stands in for a google-auth credential: a blocking refresh."""

    universe_domain = "googleapis.com"

    def __init__(self) -> None:
        self.refreshes = 0
        self.threads: set[int] = set()
        self.token: str | None = None
        self.expiry: dt.datetime | None = None

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.threads.add(threading.get_ident())
        time.sleep(0.1)
        self.token = f"ya29.slow-{self.refreshes}"
        self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=3600)


async def test_refresh_runs_in_a_thread_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SlowCredentials()
    monkeypatch.setattr(gmod, "_load", lambda source, request, scopes: fake)
    provider = GoogleProvider(ApplicationDefault())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1

    results = await asyncio.gather(ticker(), *(provider.resolve("gcr.io") for _ in range(8)))
    creds = results[1:]
    assert ticks == 5  # the loop kept running while the refresh blocked
    assert fake.refreshes == 1
    assert threading.get_ident() not in fake.threads
    assert {c.password for c in creds if c is not None} == {"ya29.slow-1"}


async def test_request_adapter_refuses_the_loop_thread() -> None:
    request = AiohttpRequest(asyncio.get_running_loop())
    with pytest.raises(RuntimeError):
        request("https://oauth2.googleapis.com/token")


async def test_request_adapter_bounds_the_body() -> None:
    request = AiohttpRequest(asyncio.get_running_loop(), max_body=100)
    with aioresponses() as m:
        m.get("https://example.test/big", body="x" * 1000)
        m.get("https://example.test/small", body="ok", headers={"X-A": "b"})
        with pytest.raises(Exception, match="larger than 100 bytes"):
            await asyncio.to_thread(request, "https://example.test/big")
        small = await asyncio.to_thread(request, "https://example.test/small")
    assert small.status == 200 and small.data == b"ok" and small.headers["x-a"] == "b"


async def test_metadata_support_missing_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_requests(source: Any, request: Any, scopes: Any) -> Any:
        raise ModuleNotFoundError("No module named 'requests'", name="requests")

    monkeypatch.setattr(gmod, "_load", no_requests)
    with pytest.raises(AuthError, match=r"requests is missing; install google-auth\[requests\]"):
        await GoogleProvider(MetadataServer()).resolve("gcr.io")
