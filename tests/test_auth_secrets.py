"""No secret in the repr/str of any credential or error the providers produce, nor in `auth check`."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import traceback
from pathlib import Path

import pytest
from aioresponses import aioresponses
from botocore.exceptions import ClientError

from mirror.auth.check import describe, format_description
from mirror.auth.credentials import Credential, StaticProvider
from mirror.auth.dockerconfig import DockerConfigProvider
from mirror.auth.ecr import EcrProvider
from mirror.auth.google import GoogleProvider, Impersonated, KeyFile
from mirror.auth.redact import Redactor
from mirror.types.errors import AuthError
from tests.test_auth_ecr import FakeSession
from tests.test_auth_google import (
    IAM_URL,
    TARGET,
    TOKEN_URI,
    aioresponses_on_aiohttp_314,  # noqa: F401  (fixture, used automatically)
    pem,  # noqa: F401  (fixture)
    token_answer,
    write_key,
)

Found = tuple[list[Credential], list[BaseException], set[str]]


def pem_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("-----")}


def assert_clean_credential(cred: Credential, secrets: set[str]) -> None:
    shown = [repr(cred), str(cred), cred.kind, cred.provider]
    for text in shown:
        for secret in secrets:
            assert secret not in text, (secret, text)


def assert_clean_error(exc: BaseException, secrets: set[str]) -> None:
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    shown += [str(a) for a in exc.args]
    for text in shown:
        for secret in secrets:
            assert secret not in text, (secret, text)


async def capture(coro: object) -> tuple[Credential | None, BaseException | None]:
    try:
        return await coro, None  # type: ignore[misc]
    except AuthError as exc:
        return None, exc


async def test_docker_config(tmp_path: Path) -> None:
    secrets = {"dock-pass-SECRET", "helper-SECRET", "line-two-SECRET", "in-file-SECRET"}
    secrets.add(base64.b64encode(b"u:dock-pass-SECRET").decode())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-leaky"
    helper.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "server = sys.stdin.read()\n"
        "if server == 'bad.example':\n"
        "    sys.stderr.write('error: refused\\nline-two-SECRET\\n'); sys.exit(2)\n"
        "print(json.dumps({'Username': 'u', 'Secret': 'helper-SECRET'}))\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    environ = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "auths": {"r.example": {"auth": base64.b64encode(b"u:dock-pass-SECRET").decode()}},
                "credHelpers": {"h.example": "leaky", "bad.example": "leaky"},
            }
        )
    )
    provider = DockerConfigProvider(config, environ=environ)
    creds: list[Credential] = []
    errors: list[BaseException] = []
    for host in ("r.example", "h.example", "bad.example"):
        cred, exc = await capture(provider.resolve(host))
        creds += [cred] if cred else []
        errors += [exc] if exc else []
    config.write_text('{"auths": {"x": {"auth": "in-file-SECRET"}')
    _, exc = await capture(DockerConfigProvider(config, environ=environ).resolve("x"))
    errors += [exc] if exc else []
    config.write_text(json.dumps({"auths": {"x": {"auth": "in-file-SECRET"}}}))
    _, exc = await capture(DockerConfigProvider(config, environ=environ).resolve("x"))
    errors += [exc] if exc else []
    assert len(creds) == 2 and len(errors) == 3
    await check_all(creds, errors, secrets)


async def test_google(tmp_path: Path, pem: str) -> None:  # noqa: F811
    key = write_key(tmp_path, pem)
    secrets = pem_lines(pem) | {"ya29.google-SECRET", "ya29.source-SECRET", "not-a-key-SECRET"}
    secrets.add(base64.b64encode(key.read_bytes()).decode())
    creds: list[Credential] = []
    errors: list[BaseException] = []
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.google-SECRET"))
        cred, _ = await capture(GoogleProvider(KeyFile(str(key))).resolve("gcr.io"))
        creds += [cred] if cred else []
    cred, _ = await capture(GoogleProvider(KeyFile(str(key), as_json_key=True)).resolve("gcr.io"))
    creds += [cred] if cred else []
    with aioresponses() as m:
        m.post(TOKEN_URI, status=400, payload={"error": "invalid_grant", "error_description": "bad"})
        _, exc = await capture(GoogleProvider(KeyFile(str(key))).resolve("gcr.io"))
        errors += [exc] if exc else []
    with aioresponses() as m:
        m.post(TOKEN_URI, payload=token_answer("ya29.source-SECRET"))
        m.post(IAM_URL, status=403, payload={"error": {"status": "PERMISSION_DENIED", "message": "no"}})
        provider = GoogleProvider(Impersonated(TARGET, source=KeyFile(str(key))))
        _, exc = await capture(provider.resolve("gcr.io"))
        errors += [exc] if exc else []
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "type": "service_account",
                "private_key": "not-a-key-SECRET",
                "client_email": "a@b",
                "token_uri": TOKEN_URI,
            }
        )
    )
    _, exc = await capture(GoogleProvider(KeyFile(str(bad))).resolve("gcr.io"))
    errors += [exc] if exc else []
    _, exc = await capture(GoogleProvider(KeyFile(str(bad), as_json_key=True)).resolve("gcr.io"))
    errors += [exc] if exc else []
    assert len(creds) == 2 and len(errors) == 4
    await check_all(creds, errors, secrets)


async def test_ecr() -> None:
    secrets = {"ecr-secret-1", "testing-secret-key"}
    host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    cred, _ = await capture(EcrProvider(session=FakeSession()).resolve(host))
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetAuthorizationToken")
    _, exc = await capture(EcrProvider(session=FakeSession(error=error)).resolve(host))
    assert cred is not None and exc is not None
    await check_all([cred], [exc], secrets)


async def test_every_credential_field() -> None:
    cred = Credential("user", "pw-SECRET", "idt-SECRET", "reg-SECRET", expires_at=1.0, provider="p")
    await check_all([cred], [], {"pw-SECRET", "idt-SECRET", "reg-SECRET"})


async def check_all(creds: list[Credential], errors: list[BaseException], secrets: set[str]) -> None:
    redactor = Redactor()
    for cred in creds:
        assert_clean_credential(cred, secrets)
        d = await describe("h.example", StaticProvider({"h.example": cred}))
        for text in (format_description(d), repr(d)):
            for secret in secrets:
                assert secret not in text
        redactor.add_credential(cred)
    for exc in errors:
        assert_clean_error(exc, secrets)
    # Whatever the credentials were, the redactor scrubs them from any text.
    for cred in creds:
        for secret in cred.secrets():
            assert secret not in redactor.redact(f"leak: {secret} and {cred.password}")


@pytest.mark.parametrize("field", ["password", "identity_token", "registry_token"])
def test_credential_repr_never_shows(field: str) -> None:
    values: dict[str, str] = {"password": "", "identity_token": "", "registry_token": ""}
    values[field] = "the-SECRET"
    cred = Credential(
        "u",
        values["password"],
        identity_token=values["identity_token"],
        registry_token=values["registry_token"],
    )
    assert "the-SECRET" not in repr(cred) and "the-SECRET" not in str(cred)
