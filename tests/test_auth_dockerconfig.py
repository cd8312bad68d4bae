"""docker config.json provider: auths, host matching, and real credential helper processes."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from mirror.auth.dockerconfig import (
    DOCKER_HUB_KEY,
    DockerConfig,
    DockerConfigProvider,
    default_config_path,
    host_of_key,
)
from mirror.types.errors import AuthError

HELPER = """#!{python}
import json, os, sys, time
server = sys.stdin.read()
name = os.path.basename(sys.argv[0])[len("docker-credential-"):]
with open(os.environ["FAKE_HELPER_LOG"], "a") as log:
    log.write(json.dumps([name, sys.argv[1:], server]) + "\\n")
store = json.load(open(os.environ["FAKE_HELPER_STORE"]))
answer = store.get(server)
if answer == "fail":
    sys.stderr.write("error: the keychain is locked\\nsecret-looking detail on line two\\n")
    sys.exit(3)
if answer == "slow":
    time.sleep(30)
if answer == "flood":
    sys.stdout.write("x" * 300000)
    sys.exit(0)
if answer == "garbage":
    print("this is not json")
    sys.exit(0)
if answer is None:
    print("credentials not found in native keychain")
    sys.exit(1)
json.dump({{"ServerURL": server, "Username": answer[0], "Secret": answer[1]}}, sys.stdout)
"""


class FakeClock:
    def __init__(self, now: float = 5_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Env:
    """A config file, a PATH with fake helpers, and what the helpers were asked."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "docker"
        self.dir.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "helper.log"
        self.log.touch()
        self.store = tmp_path / "store.json"
        self.store.write_text("{}")
        self.environ = {
            "PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(tmp_path),
            "DOCKER_CONFIG": str(self.dir),
            "FAKE_HELPER_LOG": str(self.log),
            "FAKE_HELPER_STORE": str(self.store),
        }

    def helper(self, name: str) -> Path:
        path = self.bin / f"docker-credential-{name}"
        path.write_text(HELPER.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def answers(self, store: dict[str, Any]) -> None:
        self.store.write_text(json.dumps(store))

    def config(self, data: dict[str, Any] | str) -> Path:
        path = self.dir / "config.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return path

    def asked(self) -> list[list[Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def provider(self, **kwargs: Any) -> DockerConfigProvider:
        return DockerConfigProvider(environ=self.environ, **kwargs)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- paths and keys ----------------------------------------------------------------------------


def test_default_path(tmp_path: Path) -> None:
    assert default_config_path({"DOCKER_CONFIG": "/etc/dk", "HOME": "/h"}) == Path("/etc/dk/config.json")
    assert default_config_path({"HOME": "/home/m"}) == Path("/home/m/.docker/config.json")


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com", "registry.example.com"),
        ("https://registry.example.com/v1/", "registry.example.com"),
        ("http://Registry.Example.com:5000/v2/", "registry.example.com:5000"),
        (DOCKER_HUB_KEY, "index.docker.io"),
        ("docker.io", "index.docker.io"),
        ("registry-1.docker.io", "index.docker.io"),
    ],
)
def test_host_of_key(key: str, host: str) -> None:
    assert host_of_key(key) == host


# -- auths -------------------------------------------------------------------------------------


async def test_auths_entries(env: Env) -> None:
    env.config(
        {
            "auths": {
                "https://registry.example.com/v1/": {"auth": b64("alice:s3cret-pass")},
                "registry.example.com:5000": {"username": "bob", "password": "pw-5000"},
                DOCKER_HUB_KEY: {"auth": b64("hubuser:hub-token:with-colon")},
                "idp.example.com": {"identitytoken": "refresh-secret"},
                "bearer.example.com": {"registrytoken": "bearer-secret"},
                "empty.example.com": {},
            }
        }
    )
    provider = env.provider()
    cred = await provider.resolve("registry.example.com")
    assert cred is not None and (cred.username, cred.password) == ("alice", "s3cret-pass")
    assert cred.expires_at is None and cred.provider == f"docker-config ({env.dir / 'config.json'})"
    port = await provider.resolve("registry.example.com:5000")
    assert port is not None and (port.username, port.password) == ("bob", "pw-5000")
    for hub in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        hub_cred = await provider.resolve(hub)
        assert hub_cred is not None and hub_cred.password == "hub-token:with-colon"
    idt = await provider.resolve("idp.example.com")
    assert idt is not None and idt.identity_token == "refresh-secret" and idt.kind == "identity token"
    bearer = await provider.resolve("bearer.example.com")
    assert bearer is not None and bearer.registry_token == "bearer-secret"
    assert await provider.resolve("empty.example.com") is None
    assert await provider.resolve("other.example.com") is None
    assert env.asked() == []


async def test_exact_key_wins_over_legacy_url(env: Env) -> None:
    env.config(
        {
            "auths": {
                "https://registry.example.com/v1/": {"auth": b64("old:legacy")},
                "registry.example.com": {"auth": b64("new:current")},
            }
        }
    )
    cred = await env.provider().resolve("registry.example.com")
    assert cred is not None and cred.username == "new"


async def test_missing_file_means_nothing(env: Env) -> None:
    assert await env.provider().resolve("registry.example.com") is None


async def test_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps({"auths": {"r.example": {"auth": b64("u:p")}}}))
    cred = await DockerConfigProvider(path).resolve("r.example")
    assert cred is not None and cred.password == "p"


async def test_malformed_json_does_not_echo_the_file(env: Env) -> None:
    env.config('{"auths": {"r.example": {"auth": "dTpzZWNyZXQtaW4tZmlsZQ=="}}')  # unclosed
    with pytest.raises(AuthError) as info:
        await env.provider().resolve("r.example")
    assert "not valid JSON" in str(info.value) and "line 1" in str(info.value)
    assert "dTpzZWNyZXQtaW4tZmlsZQ" not in str(info.value)


async def test_bad_auth_entry(env: Env) -> None:
    env.config({"auths": {"r.example": {"auth": "@@@not-base64-secret@@@"}}})
    with pytest.raises(AuthError, match="not base64") as info:
        await env.provider().resolve("r.example")
    assert "not-base64-secret" not in str(info.value)
    env.config({"auths": {"r.example": {"auth": b64("no-colon-secret")}}})
    with pytest.raises(AuthError, match="no ':'") as info:
        await env.provider().resolve("r.example")
    assert "no-colon-secret" not in str(info.value)


async def test_file_is_read_again_when_it_changes(env: Env) -> None:
    env.config({"auths": {"r.example": {"auth": b64("u:first")}}})
    provider = env.provider()
    first = await provider.resolve("r.example")
    assert first is not None and first.password == "first"
    path = env.config({"auths": {"r.example": {"auth": b64("u:second-longer")}}})
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    second = await provider.resolve("r.example")
    assert second is not None and second.password == "second-longer"


def test_parse_rejects_wrong_shapes() -> None:
    with pytest.raises(AuthError, match="'auths' must be an object"):
        DockerConfig.parse('{"auths": []}')
    with pytest.raises(AuthError, match="credHelpers"):
        DockerConfig.parse('{"credHelpers": {"gcr.io": 1}}')


# -- credential helpers ------------------------------------------------------------------------


async def test_cred_helper(env: Env) -> None:
    env.helper("fake")
    env.answers({"registry.example.com": ["robot", "helper-secret"]})
    env.config({"credHelpers": {"https://registry.example.com": "fake"}})
    provider = env.provider()
    cred = await provider.resolve("registry.example.com")
    assert cred is not None and (cred.username, cred.password) == ("robot", "helper-secret")
    assert cred.expires_at is None
    assert cred.provider == "docker-config (docker-credential-fake)"
    again = await provider.resolve("registry.example.com", min_valid=10_000)
    assert again == cred
    assert env.asked() == [["fake", ["get"], "registry.example.com"]]  # once per host per run


async def test_helper_not_found_means_nothing_and_is_remembered(env: Env) -> None:
    env.helper("fake")
    env.config({"credHelpers": {"public.example.com": "fake"}})
    provider = env.provider()
    assert await provider.resolve("public.example.com") is None
    assert await provider.resolve("public.example.com") is None
    assert len(env.asked()) == 1


async def test_helper_failure_names_helper_and_first_line(env: Env) -> None:
    env.helper("fake")
    env.answers({"locked.example.com": "fail"})
    env.config({"credHelpers": {"locked.example.com": "fake"}})
    with pytest.raises(AuthError) as info:
        await env.provider().resolve("locked.example.com")
    text = str(info.value)
    assert "docker-credential-fake" in text and "exit status 3" in text
    assert "the keychain is locked" in text
    assert "line two" not in text


async def test_helper_time_limit(env: Env) -> None:
    env.helper("fake")
    env.answers({"slow.example.com": "slow"})
    env.config({"credHelpers": {"slow.example.com": "fake"}})
    with pytest.raises(AuthError, match=r"did not answer within 0\.3 s"):
        await env.provider(helper_timeout=0.3).resolve("slow.example.com")


async def test_helper_output_limit(env: Env) -> None:
    env.helper("fake")
    env.answers({"flood.example.com": "flood"})
    env.config({"credHelpers": {"flood.example.com": "fake"}})
    with pytest.raises(AuthError, match="more than 1024 bytes"):
        await env.provider(max_helper_output=1024).resolve("flood.example.com")


async def test_helper_garbage(env: Env) -> None:
    env.helper("fake")
    env.answers({"g.example.com": "garbage"})
    env.config({"credHelpers": {"g.example.com": "fake"}})
    with pytest.raises(AuthError, match="not JSON"):
        await env.provider().resolve("g.example.com")


async def test_missing_helper_program(env: Env) -> None:
    env.config({"credHelpers": {"gcr.io": "gcloud-not-installed"}})
    with pytest.raises(AuthError, match="docker-credential-gcloud-not-installed is not on PATH"):
        await env.provider().resolve("gcr.io")


async def test_helper_name_is_not_a_path(env: Env) -> None:
    env.config({"credHelpers": {"r.example": "../../bin/sh"}})
    with pytest.raises(AuthError, match="not a credential helper name"):
        await env.provider().resolve("r.example")


async def test_identity_token_from_helper(env: Env) -> None:
    env.helper("fake")
    env.answers({"r.example": ["<token>", "refresh-from-helper"]})
    env.config({"credHelpers": {"r.example": "fake"}})
    cred = await env.provider().resolve("r.example")
    assert cred is not None and cred.identity_token == "refresh-from-helper" and not cred.username


async def test_access_tokens_from_helpers_are_asked_again(env: Env) -> None:
    env.helper("fake")
    env.answers({"gcr.io": ["oauth2accesstoken", "ya29.from-helper"]})
    env.config({"credHelpers": {"gcr.io": "fake"}})
    clock = FakeClock()
    provider = env.provider(clock=clock, helper_token_lifetime=300)
    cred = await provider.resolve("gcr.io")
    assert cred is not None and cred.expires_at == clock() + 300
    clock.now += 100
    assert await provider.resolve("gcr.io") is cred
    clock.now += 150  # 50 s left, less than the margin
    await provider.resolve("gcr.io")
    assert len(env.asked()) == 2


async def test_creds_store_for_every_host_and_hub_spelling(env: Env) -> None:
    env.helper("store")
    env.answers({DOCKER_HUB_KEY: ["hubuser", "hub-secret"], "r.example": ["u", "r-secret"]})
    env.config({"credsStore": "store", "auths": {DOCKER_HUB_KEY: {}, "r.example": {}}})
    provider = env.provider()
    hub = await provider.resolve("registry-1.docker.io")
    assert hub is not None and hub.password == "hub-secret"
    other = await provider.resolve("r.example")
    assert other is not None and other.password == "r-secret"
    assert [a[2] for a in env.asked()] == [DOCKER_HUB_KEY, "r.example"]


async def test_cred_helpers_win_over_creds_store(env: Env) -> None:
    env.helper("store")
    env.helper("special")
    env.answers({"r.example": ["u", "secret"]})
    env.config({"credsStore": "store", "credHelpers": {"r.example": "special"}})
    cred = await env.provider().resolve("r.example")
    assert cred is not None and cred.provider == "docker-config (docker-credential-special)"
    assert [a[0] for a in env.asked()] == ["special"]


async def test_creds_store_falls_back_to_inline_auths(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.helper("store")
    env.config({"credsStore": "store", "auths": {"r.example": {"auth": b64("u:inline-secret")}}})
    cred = await env.provider().resolve("r.example")  # the store has nothing for it
    assert cred is not None and cred.password == "inline-secret"
    env.config({"credsStore": "desktop", "auths": {"r.example": {"auth": b64("u:inline-secret")}}})
    with caplog.at_level(logging.WARNING, logger="mirror.auth"):
        cred = await env.provider().resolve("r.example")
    assert cred is not None and cred.password == "inline-secret"
    assert "docker-credential-desktop is not on PATH" in caplog.text


async def test_helper_from_process_path(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.helper("fake")
    env.answers({"r.example": ["u", "p-secret"]})
    env.config({"credHelpers": {"r.example": "fake"}})
    for key, value in env.environ.items():
        monkeypatch.setenv(key, value)
    cred = await DockerConfigProvider().resolve("r.example")
    assert cred is not None and cred.password == "p-secret"
