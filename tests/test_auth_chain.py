"""The default chain's order and `mirror auth check`'s description of it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mirror.auth.chain import default_chain
from mirror.auth.check import AuthDescription, describe, format_description
from mirror.auth.credentials import ChainProvider, Credential, StaticProvider
from mirror.auth.dockerconfig import DockerConfigProvider
from mirror.auth.ecr import EcrProvider
from mirror.auth.ecrpublic import EcrPublicProvider
from mirror.auth.google import GoogleProvider, KeyFile
from mirror.types.errors import AuthError


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Fixed:
    """A provider with one fixed answer (or error) for every host."""

    def __init__(self, name: str, answer: Credential | None = None, error: Exception | None = None):
        self.name = name
        self.answer = answer
        self.error = error
        self.asked: list[tuple[str, float]] = []

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        self.asked.append((host, min_valid))
        if self.error is not None:
            raise self.error
        return self.answer


def docker_config(tmp_path: Path, auths: dict[str, str]) -> Path:
    path = tmp_path / "config.json"
    entries = {h: {"auth": base64.b64encode(up.encode()).decode()} for h, up in auths.items()}
    path.write_text(json.dumps({"auths": entries}))
    return path


def test_default_chain_order(tmp_path: Path) -> None:
    chain = default_chain(docker_config_path=tmp_path / "none.json")
    kinds = [type(p) for p in chain.providers]
    assert kinds == [StaticProvider, DockerConfigProvider, GoogleProvider, EcrProvider, EcrPublicProvider]
    assert isinstance(chain, ChainProvider)
    only = default_chain(
        {"r.example": Credential("u", "p")}, docker_config=False, google=False, ecr=False, ecr_public=False
    )
    assert [type(p) for p in only.providers] == [StaticProvider]


async def test_explicit_wins_over_docker_config(tmp_path: Path) -> None:
    path = docker_config(tmp_path, {"r.example": "dock:from-docker", "d.example": "dock:only-docker"})
    chain = default_chain(
        {"r.example": Credential("flag", "from-flags")},
        docker_config_path=path,
        google=False,
        ecr=False,
    )
    cred = await chain.resolve("r.example")
    assert cred is not None and cred.password == "from-flags"
    cred = await chain.resolve("d.example")
    assert cred is not None and cred.password == "only-docker"
    assert await chain.resolve("n.example") is None


async def test_docker_config_wins_over_google(tmp_path: Path) -> None:
    path = docker_config(tmp_path, {"gcr.io": "_json_key:from-docker"})
    # The Google provider's key file does not exist: it must not be consulted for gcr.io.
    google = GoogleProvider(KeyFile(str(tmp_path / "missing.json")))
    chain = default_chain(docker_config_path=path, google=google, ecr=False)
    cred = await chain.resolve("gcr.io")
    assert cred is not None and cred.password == "from-docker"
    with pytest.raises(AuthError):  # for another Google host it is, and it fails loudly
        await chain.resolve("us-docker.pkg.dev")


async def test_anonymous_answers_do_not_stop_the_chain() -> None:
    later = Fixed("later", Credential("u", "p", provider="later"))
    chain = ChainProvider([Fixed("anon", Credential()), later])
    cred = await chain.resolve("h", min_valid=42)
    assert cred is not None and cred.provider == "later"
    assert later.asked == [("h", 42)]


# -- describe ----------------------------------------------------------------------------------


async def test_describe_walks_the_chain() -> None:
    clock = FakeClock()
    token = Credential(
        "oauth2accesstoken", "ya29.describe-secret", expires_at=clock() + 3540, provider="google (x)"
    )
    chain = ChainProvider(
        [
            Fixed("static"),
            Fixed("docker-config", Credential()),
            Fixed("google", token),
            Fixed("ecr", error=AssertionError("never asked")),
        ]
    )
    d = await describe("gcr.io", chain, clock=clock)
    assert d.answered_by == "google (x)"
    assert d.kind == "OAuth2 access token"
    assert d.username_kind == "oauth2accesstoken (Google access token)"
    assert d.expires_at == clock() + 3540 and d.remaining == 3540
    assert not d.non_expiring and not d.anonymous
    assert [(c.provider, c.outcome) for c in d.consulted] == [
        ("static", "nothing"),
        ("docker-config", "anonymous"),
        ("google", "answered"),
    ]
    text = format_description(d)
    assert "provider:    google (x)" in text
    assert "expires:     2023-11-14 23:12:20 UTC (in 59 min)" in text
    assert "ya29.describe-secret" not in text and "ya29.describe-secret" not in repr(d)


async def test_describe_non_expiring_and_anonymous() -> None:
    key = Credential("_json_key_base64", "c2VjcmV0LWtleQ==", provider="google (service account key k)")
    d = await describe("gcr.io", StaticProvider({"gcr.io": key}))
    assert d.non_expiring and d.remaining is None
    assert "expires:     never (non-expiring)" in format_description(d)
    assert d.username_kind == "_json_key_base64 (service account key)"
    nobody = await describe("quay.io", StaticProvider())
    assert nobody.anonymous and nobody.kind == "anonymous"
    assert "none (anonymous access)" in format_description(nobody)


async def test_describe_reports_errors_without_raising() -> None:
    chain = ChainProvider([Fixed("static"), Fixed("docker-config", error=AuthError("helper broke"))])
    d = await describe("r.example", chain)
    assert d.error == "helper broke" and d.anonymous
    assert "error:       helper broke" in format_description(d)
    assert d.consulted[-1].outcome == "error"


async def test_describe_expired() -> None:
    clock = FakeClock()
    old = Credential("AWS", "ecr-secret", expires_at=clock() - 600, provider="ecr (in x)")
    d = await describe("h", StaticProvider({"h": old}), clock=clock)
    assert "(expired 10 min ago)" in format_description(d)
    assert d.username_kind == "AWS (ECR authorization token)"


@pytest.mark.parametrize(
    ("cred", "kind"),
    [
        (Credential(registry_token="t"), "none (bearer token)"),
        (Credential(identity_token="t"), "none (identity token, exchanged at the token realm)"),
        (Credential("bob", "pw"), "user name 'bob'"),
        (Credential("_json_key", "{}"), "_json_key (service account key)"),
        (
            Credential("AWS", "t", provider="ecr (GetAuthorizationToken in eu-west-1)"),
            "AWS (ECR authorization token)",
        ),
    ],
)
def test_username_kind(cred: Credential, kind: str) -> None:
    assert cred.username_kind == kind


def test_credential_kind_names_the_secret_kind_never_the_secret() -> None:
    kinds = {
        Credential(registry_token="s3cret"): "bearer token",
        Credential(identity_token="s3cret"): "identity token",
        Credential("oauth2accesstoken", "s3cret"): "OAuth2 access token",
        Credential("_json_key_base64", "s3cret"): "service account key (_json_key_base64)",
        Credential(
            "AWS", "s3cret", provider="ecr (GetAuthorizationToken in eu-west-1)"
        ): "ECR authorization token",
        Credential("bob", "s3cret"): "username 'bob' with password",
        Credential(): "anonymous",
    }
    for cred, kind in kinds.items():
        assert cred.kind == kind and "s3cret" not in str(cred)


def test_description_is_plain_data() -> None:
    d = AuthDescription("h", None, "anonymous", "none", None, None)
    assert d.anonymous and not d.non_expiring
