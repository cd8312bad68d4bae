"""ECR provider against moto's server on loopback, plus injected-clock expiry arithmetic."""

from __future__ import annotations

import base64
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import ClientError

from mirror.auth.ecr import EcrHost, EcrProvider, parse_ecr_host
from mirror.types.errors import AuthError

ACCOUNT = "123456789012"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test credentials only; no shared files, no instance metadata, no proxy (in place of the
    shared ``aws_env``: the provider's own credential chain is under test)."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


class Recorder:
    """Records the signing scope of every request a session sends."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def __call__(self, request: Any, **kwargs: Any) -> None:
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
        self.scopes.append("/".join(credential.split("/")[2:4]))  # region/service


def recording_session() -> tuple[AioSession, Recorder]:
    session = get_session()
    recorder = Recorder()
    session.register("before-send.ecr.GetAuthorizationToken", recorder)
    return session, recorder


# -- hosts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com", EcrHost(ACCOUNT, "eu-west-1", False, "amazonaws.com")),
        (
            f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn",
            EcrHost(ACCOUNT, "cn-north-1", False, "amazonaws.com.cn"),
        ),
        (
            f"{ACCOUNT}.dkr.ecr-fips.us-east-1.amazonaws.com",
            EcrHost(ACCOUNT, "us-east-1", True, "amazonaws.com"),
        ),
        (f"{ACCOUNT}.dkr-ecr.us-west-2.on.aws", EcrHost(ACCOUNT, "us-west-2", False, "on.aws")),
        (f"{ACCOUNT}.DKR.ECR.EU-WEST-1.AMAZONAWS.COM", EcrHost(ACCOUNT, "eu-west-1", False, "amazonaws.com")),
        ("public.ecr.aws", None),
        ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
        (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com.evil.example", None),
        (f"{ACCOUNT}.dkr.ecr.eu-west-1.example.com", None),
        ("gcr.io", None),
    ],
)
def test_parse_ecr_host(host: str, expected: EcrHost | None) -> None:
    assert parse_ecr_host(host) == expected


# -- against moto ------------------------------------------------------------------------------


async def test_token_from_moto(moto_url: str, aws_env: None) -> None:
    session, recorder = recording_session()
    provider = EcrProvider(endpoint_url=moto_url, session=session, clock=time.time)
    cred = await provider.resolve(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com")
    assert cred is not None
    assert cred.username == "AWS"
    assert cred.password == f"{ACCOUNT}-auth-token"
    assert cred.provider == "ecr (GetAuthorizationToken in eu-west-1)"
    # moto answers a fixed expiresAt (2015-01-01); it is taken as given.
    assert cred.expires_at == pytest.approx(datetime(2015, 1, 1, tzinfo=UTC).timestamp(), abs=5)
    assert recorder.scopes == ["eu-west-1/ecr"]
    assert cred.password not in repr(cred) and cred.password not in str(cred)


async def test_region_from_host_china(moto_url: str, aws_env: None) -> None:
    session, recorder = recording_session()
    provider = EcrProvider(endpoint_url=moto_url, session=session)
    cred = await provider.resolve(f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn")
    assert cred is not None and cred.username == "AWS"
    assert recorder.scopes == ["cn-north-1/ecr"]


async def test_other_hosts_are_not_asked(moto_url: str, aws_env: None) -> None:
    session, recorder = recording_session()
    provider = EcrProvider(endpoint_url=moto_url, session=session)
    assert await provider.resolve("registry.example.com") is None
    assert await provider.resolve("gcr.io") is None
    assert recorder.scopes == []


async def test_no_aws_credentials(moto_url: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = EcrProvider(endpoint_url=moto_url)
    with pytest.raises(AuthError, match="no AWS credentials found"):
        await provider.resolve(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_endpoint_is_temporary(aws_env: None) -> None:
    provider = EcrProvider(
        endpoint_url=f"http://127.0.0.1:{closed_port()}", max_attempts=1, connect_timeout=2
    )
    with pytest.raises(AuthError) as info:
        await provider.resolve(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com")
    assert info.value.temporary
    assert "testing-secret-key" not in str(info.value)


# -- expiry arithmetic with an injected clock ----------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeClient:
    def __init__(self, owner: FakeSession) -> None:
        self.owner = owner

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_authorization_token(self) -> dict[str, Any]:
        self.owner.calls += 1
        if self.owner.error is not None:
            raise self.owner.error
        token = base64.b64encode(f"AWS:ecr-secret-{self.owner.calls}".encode()).decode()
        expires = datetime.now(UTC) + timedelta(hours=12)
        data: dict[str, Any] = {"authorizationToken": token, "proxyEndpoint": "https://x"}
        if self.owner.with_expiry:
            data["expiresAt"] = expires
        return {"authorizationData": [data]}


class FakeSession:
    def __init__(self, *, with_expiry: bool = True, error: Exception | None = None) -> None:
        self.calls = 0
        self.regions: list[str] = []
        self.with_expiry = with_expiry
        self.error = error

    def create_client(self, service: str, *, region_name: str, **kwargs: Any) -> FakeClient:
        assert service == "ecr"
        self.regions.append(region_name)
        return FakeClient(self)


async def test_twelve_hours_on_the_injected_clock() -> None:
    clock = FakeClock()
    session = FakeSession()
    provider = EcrProvider(session=session, clock=clock)
    host = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    cred = await provider.resolve(host)
    assert cred is not None and cred.password == "ecr-secret-1"
    assert cred.expires_at == pytest.approx(clock() + 12 * 3600, abs=2)
    # Another account in the same region: the same token.
    assert await provider.resolve("210987654321.dkr.ecr.us-east-1.amazonaws.com") is cred
    clock.now += 11 * 3600  # one hour left
    assert await provider.resolve(host, min_valid=1800) is cred
    fresh = await provider.resolve(host, min_valid=2 * 3600)
    assert fresh is not None and fresh.password == "ecr-secret-2"
    assert fresh.expires_at == pytest.approx(clock() + 12 * 3600, abs=2)
    assert session.regions == ["us-east-1", "us-east-1"]
    await provider.resolve(f"{ACCOUNT}.dkr.ecr.ap-south-1.amazonaws.com")
    assert session.regions[-1] == "ap-south-1"


async def test_missing_expiry_is_twelve_hours() -> None:
    clock = FakeClock()
    provider = EcrProvider(session=FakeSession(with_expiry=False), clock=clock)
    cred = await provider.resolve(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")
    assert cred is not None and cred.expires_at == clock() + 12 * 3600


async def test_refusal_is_reported() -> None:
    error = ClientError(
        {
            "Error": {
                "Code": "AccessDeniedException",
                "Message": "User is not authorized to perform: ecr:GetAuthorizationToken",
            }
        },
        "GetAuthorizationToken",
    )
    provider = EcrProvider(session=FakeSession(error=error))
    with pytest.raises(AuthError) as info:
        await provider.resolve(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")
    assert "AccessDeniedException" in str(info.value) and "us-east-1" in str(info.value)
    assert not info.value.temporary
