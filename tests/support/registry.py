"""Debian's `docker-registry` (CNCF distribution 2.8) on loopback, in three auth modes.

    handle = RegistryFactory(tmp_dir).start(auth="none" | "htpasswd" | "token", token_ttl=60.0)

Each registry gets its own directory holding `config.yml`, `registry.log`, `storage/` (filesystem
driver, deletes enabled) and, per mode, `htpasswd` or `token-ca.pem`. The factory stops every
process and token server it started.

Credentials: `handle.username`/`password` is the account meant for the code under test;
`handle.seed_username`/`seed_password` is a second account used by `tests.support.images` to
seed content, so token-server records can be told apart by user.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tests.support.net import free_port, http_status
from tests.support.tokenserver import TokenServer

AuthMode = Literal["none", "htpasswd", "token"]

REGISTRY_BIN_ENV = "MIRROR_TEST_REGISTRY_BIN"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def registry_binary() -> str | None:
    return os.environ.get(REGISTRY_BIN_ENV) or shutil.which("docker-registry")


@dataclass
class RegistryHandle:
    host: str  # "127.0.0.1:PORT"
    auth: AuthMode
    root: Path
    storage_dir: Path
    config_path: Path
    log_path: Path
    username: str | None = None
    password: str | None = None
    seed_username: str | None = None
    seed_password: str | None = None
    token_server: TokenServer | None = None
    startup_seconds: float = 0.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def port(self) -> int:
        return int(self.host.rpartition(":")[2])

    @property
    def creds(self) -> tuple[str, str] | None:
        """(username, password) for the code under test, None when the registry is open."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    @property
    def seed_creds(self) -> tuple[str, str] | None:
        if self.seed_username is None or self.seed_password is None:
            return None
        return self.seed_username, self.seed_password

    def ref(self, repo: str, reference: str = "latest") -> str:
        """`127.0.0.1:PORT/repo:tag` or `127.0.0.1:PORT/repo@sha256:...` (for skopeo or configs)."""
        sep = "@" if ":" in reference else ":"
        return f"{self.host}/{repo}{sep}{reference}"

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_ = digest.partition(":")
        if algorithm != "sha256" or len(hex_) != 64:
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.storage_dir / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def repository_dir(self, repo: str) -> Path:
        return self.storage_dir / "docker/registry/v2/repositories" / repo

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        self.stop_process()
        if self.token_server is not None:
            self.token_server.stop()

    def stop_process(self) -> None:
        """Stop the registry process only (SIGTERM, then SIGKILL); storage and token server stay."""
        stop_process(self)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the registry process and start it again on the same port, config and storage
        (a registry restart in the middle of a run). Waits until `GET /v2/` answers again."""
        binary = registry_binary()
        assert binary is not None
        self.stop_process()
        if down_seconds > 0:
            time.sleep(down_seconds)
        deadline = time.monotonic() + START_TIMEOUT
        while not launch(binary, self):
            if time.monotonic() > deadline:  # the port is still held by the old process' socket
                raise RuntimeError(f"registry did not restart on {self.host}; log:\n{self.log_text()}")
            time.sleep(0.05)


def _htpasswd_line(user: str, password: str) -> str:
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        tool = shutil.which("htpasswd")
        if tool is None:
            raise RuntimeError("need python bcrypt or the htpasswd tool (apache2-utils)") from None
        out = subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True, timeout=30)
        return out.stdout.decode().strip()
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{user}:{hashed}"


def _clean_env() -> dict[str, str]:
    """The environment without REGISTRY_* overrides (distribution reads those) or proxy settings."""
    drop = ("REGISTRY_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}


class RegistryFactory:
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.handles: list[RegistryHandle] = []
        self._count = 0

    def start(
        self,
        auth: AuthMode = "none",
        token_ttl: float = 60.0,
        *,
        relative_urls: bool = False,
        token_key_header: Literal["kid", "x5c"] = "kid",
        token_algorithm: str = "ES256",
        token_anonymous: Literal["deny", "empty"] = "deny",
        extra_config: dict[str, Any] | None = None,
    ) -> RegistryHandle:
        """Start a registry and wait until `GET /v2/` answers (200, or 401 with auth)."""
        binary = registry_binary()
        if binary is None:
            raise RuntimeError(f"docker-registry not found (install it or set {REGISTRY_BIN_ENV})")
        if auth not in ("none", "htpasswd", "token"):
            raise ValueError(f"unknown auth mode {auth!r}")
        began = time.monotonic()
        self._count += 1
        root = self.base_dir / f"registry-{self._count}"
        storage = root / "storage"
        storage.mkdir(parents=True)
        handle = RegistryHandle(
            host="",
            auth=auth,
            root=root,
            storage_dir=storage,
            config_path=root / "config.yml",
            log_path=root / "registry.log",
        )
        self.handles.append(handle)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"secret": secrets.token_hex(16), "relativeurls": relative_urls},
        }
        if auth != "none":
            handle.username, handle.password = f"tester-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
            handle.seed_username, handle.seed_password = "seeder", secrets.token_urlsafe(12)
        if auth == "htpasswd":
            assert handle.creds and handle.seed_creds
            path = root / "htpasswd"
            path.write_text(
                "".join(_htpasswd_line(u, p) + "\n" for u, p in (handle.creds, handle.seed_creds))
            )
            config["auth"] = {"htpasswd": {"realm": "mirror-test", "path": str(path)}}
        elif auth == "token":
            assert handle.creds and handle.seed_creds
            ts = TokenServer(
                dict([handle.creds, handle.seed_creds]),
                ttl=token_ttl,
                anonymous=token_anonymous,
                key_header=token_key_header,
                algorithm=token_algorithm,
            ).start()
            handle.token_server = ts
            bundle = ts.identity.write_bundle(root / "token-ca.pem")
            config["auth"] = {
                "token": {
                    "realm": ts.realm,
                    "service": ts.service,
                    "issuer": ts.issuer,
                    "rootcertbundle": str(bundle),
                }
            }
        _merge(config, extra_config or {})
        for _attempt in range(5):
            port = free_port()
            handle.host = f"127.0.0.1:{port}"
            config["http"]["addr"] = handle.host
            handle.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            if launch(binary, handle):
                handle.startup_seconds = time.monotonic() - began
                return handle
        raise RuntimeError(f"registry did not start; log:\n{handle.log_text()}")

    def stop_all(self, *, remove_storage: bool = False) -> None:
        """Stop every registry (and token server) started here; `remove_storage` deletes the
        blob/manifest storage afterwards, keeping config and log for post-mortems."""
        errors: list[BaseException] = []
        for handle in reversed(self.handles):
            try:
                handle.stop()
            except Exception as exc:
                errors.append(exc)
            if remove_storage:
                shutil.rmtree(handle.storage_dir, ignore_errors=True)
        self.handles.clear()
        if errors:
            raise errors[0]


def stop_process(handle: Any) -> None:
    """SIGTERM `handle.process`, then SIGKILL after STOP_TIMEOUT; `handle.process` becomes None."""
    proc, handle.process = handle.process, None
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def launch(binary: str, handle: Any) -> bool:
    """Start `binary serve handle.config_path`; True once the registry answers, False when it
    exited because the port was taken. `handle` is a RegistryHandle or anything with its `root`,
    `config_path`, `log_path`, `port`, `process`, `log_text()` and `stop()` (the benchmarks')."""
    with handle.log_path.open("ab") as log:
        handle.process = subprocess.Popen(
            [binary, "serve", str(handle.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
            cwd=handle.root,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            handle.process = None
            if "address already in use" in handle.log_text():
                return False
            raise RuntimeError(f"registry exited at start-up; log:\n{handle.log_text()}")
        if http_status("127.0.0.1", handle.port, "/v2/", timeout=0.5) in (200, 401):
            return True
        time.sleep(0.005)
    handle.stop()
    raise TimeoutError(f"registry did not answer within {START_TIMEOUT}s; log:\n{handle.log_text()}")


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
