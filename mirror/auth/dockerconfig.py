"""Credentials from docker's ``config.json``: ``auths`` entries and credential helpers.

The file is ``$DOCKER_CONFIG/config.json`` when ``DOCKER_CONFIG`` is set, else
``~/.docker/config.json`` (or the path given). It is read on first use and read again when it
changes on disk. For a registry host, in docker's order:

1. ``credHelpers[host]`` names a helper: its answer is final (``None`` when it has nothing);
2. ``credsStore`` names the default helper for every host; when it has nothing for the host, or
   its program is not installed, an inline ``auths`` entry with credentials is used instead (a
   config copied from a desktop machine often names a store that does not exist elsewhere);
3. ``auths``: ``auth`` (base64 ``user:password``), ``username``/``password``, ``identitytoken``
   (an OAuth2 refresh token) and ``registrytoken`` (a bearer token).

Keys match a host whatever their scheme and path (``https://host/v1/`` matches ``host``); Docker
Hub is ``https://index.docker.io/v1/`` and matches ``docker.io``, ``index.docker.io`` and
``registry-1.docker.io``.

A helper is ``docker-credential-NAME get`` with the server on stdin and
``{"ServerURL", "Username", "Secret"}`` on stdout (``Username`` ``<token>`` marks an identity
token). It runs with a time limit and bounded output; "credentials not found" means nothing for
the host, any other failure raises :class:`~mirror.types.errors.AuthError` naming the helper and
the first line of its error output. Answers are kept per host for the run, except OAuth2 access
tokens (user name ``oauth2accesstoken``), which live an hour at most and whose real expiry a
helper does not tell: they are taken to expire ``helper_token_lifetime`` seconds after they were
obtained, and asked for again after that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.auth.credentials import Credential
from mirror.auth.expiry import CredentialCache
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import AuthError
from mirror.types.reference import DOCKER_HUB, DOCKER_HUB_API

log = logging.getLogger("mirror.auth")

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HUB_HOSTS = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"})
TOKEN_USERNAME = "<token>"
HELPER_PREFIX = "docker-credential-"
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_NOT_FOUND = ("credentials not found",)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory).expanduser() / "config.json"
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".docker" / "config.json"


def host_of_key(key: str) -> str:
    """The registry host a config key names, as docker reads it: no scheme, no path, lower case."""
    text = key.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    host = text.split("/", 1)[0].lower()
    return "index.docker.io" if host in HUB_HOSTS else host


def server_for(host: str) -> str:
    """What a credential helper is asked about for ``host`` (docker's spelling for Docker Hub)."""
    return DOCKER_HUB_KEY if host.lower() in HUB_HOSTS else host


@dataclass(frozen=True)
class DockerConfig:
    """The parts of ``config.json`` that hold credentials, keyed by normalised host."""

    path: str
    auths: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str = ""

    @classmethod
    def parse(cls, text: str, path: str = "config.json") -> DockerConfig:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            # The position only: the document holds secrets.
            lineno = getattr(exc, "lineno", "?")
            colno = getattr(exc, "colno", "?")
            raise AuthError(
                f"docker config {path} is not valid JSON (line {lineno}, column {colno})"
            ) from None
        if not isinstance(data, dict):
            raise AuthError(f"docker config {path}: expected a JSON object at the top level")
        auths: dict[str, Mapping[str, Any]] = {}
        exact: set[str] = set()
        raw_auths = data.get("auths")
        raw_auths = {} if raw_auths is None else raw_auths
        if not isinstance(raw_auths, dict):
            raise AuthError(f"docker config {path}: 'auths' must be an object")
        for key, entry in raw_auths.items():
            if not isinstance(entry, dict):
                raise AuthError(f"docker config {path}: auths[{key!r}] must be an object")
            host = host_of_key(key)
            # A key spelled exactly as the host wins over a legacy URL form of it.
            is_exact = key.strip().lower() in (host, DOCKER_HUB_KEY)
            if host not in auths or (is_exact and host not in exact):
                auths[host] = entry
                if is_exact:
                    exact.add(host)
        helpers: dict[str, str] = {}
        raw_helpers = data.get("credHelpers")
        raw_helpers = {} if raw_helpers is None else raw_helpers
        if not isinstance(raw_helpers, dict):
            raise AuthError(f"docker config {path}: 'credHelpers' must be an object")
        for key, name in raw_helpers.items():
            if not isinstance(name, str):
                raise AuthError(f"docker config {path}: credHelpers[{key!r}] must be a string")
            helpers[host_of_key(key)] = name
        store = data.get("credsStore")
        store = "" if store is None else store
        if not isinstance(store, str):
            raise AuthError(f"docker config {path}: 'credsStore' must be a string")
        return cls(path=path, auths=auths, cred_helpers=helpers, creds_store=store)

    def inline(self, host: str) -> Credential | None:
        """The credential an ``auths`` entry holds for ``host``, if any."""
        entry = self.auths.get(host_of_key(host))
        if entry is None:
            return None
        key = DOCKER_HUB_KEY if host_of_key(host) == "index.docker.io" else host
        username = _str(entry.get("username"))
        password = _str(entry.get("password"))
        encoded = _str(entry.get("auth"))
        if encoded:
            try:
                decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthError(
                    f"docker config {self.path}: the 'auth' entry for {key} is not base64 of user:password"
                ) from None
            user, sep, secret = decoded.partition(":")
            if not sep:
                raise AuthError(
                    f"docker config {self.path}: the 'auth' entry for {key} has no ':' between "
                    "user and password"
                )
            username, password = user, secret
        identity = _str(entry.get("identitytoken"))
        registry_token = _str(entry.get("registrytoken"))
        cred = Credential(
            username=username,
            password=password,
            identity_token=identity,
            registry_token=registry_token,
            provider=f"docker-config ({self.path})",
        )
        return None if cred.anonymous else cred


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


class DockerConfigProvider:
    """Answers from docker's config file and the credential helpers it names."""

    name = "docker-config"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock = system_clock,
        helper_timeout: float = 20.0,
        max_helper_output: int = 64 * 1024,
        helper_token_lifetime: float = 300.0,
    ) -> None:
        self._environ = environ
        self.path = Path(path) if path is not None else default_config_path(environ)
        self.clock = clock
        self.helper_timeout = helper_timeout
        self.max_helper_output = max_helper_output
        self.helper_token_lifetime = helper_token_lifetime
        self._config: DockerConfig | None = None
        self._stamp: tuple[int, int] | None = None
        self._cache: CredentialCache[tuple[str, str]] = CredentialCache(clock)
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"<DockerConfigProvider {self.path}>"

    # -- the file ---------------------------------------------------------------------------

    def config(self) -> DockerConfig | None:
        """The parsed file (read again when it changed), or ``None`` when there is none."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._config, self._stamp = None, None
            return None
        except OSError as exc:
            raise AuthError(f"cannot read docker config {self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        if self._config is None or stamp != self._stamp:
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise AuthError(f"cannot read docker config {self.path}: {exc.strerror}") from None
            self._config = DockerConfig.parse(text, str(self.path))
            self._stamp = stamp
            self._cache.clear()
        return self._config

    # -- resolving --------------------------------------------------------------------------

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        config = self.config()
        if config is None:
            return None
        normal = host_of_key(host)
        helper = config.cred_helpers.get(normal)
        if helper:
            return await self._from_helper(helper, host, min_valid)
        if config.creds_store:
            try:
                cred = await self._from_helper(config.creds_store, host, min_valid)
            except HelperMissing as exc:
                if config.creds_store not in self._warned:
                    self._warned.add(config.creds_store)
                    log.warning("%s; using the inline 'auths' entries of %s", exc, config.path)
                cred = None
            if cred is not None:
                return cred
        return config.inline(host)

    async def _from_helper(self, helper: str, host: str, min_valid: float) -> Credential | None:
        server = server_for(host)

        async def fetch() -> Credential | None:
            return await self.run_helper(helper, server)

        return await self._cache.get((helper, server), min_valid, fetch)

    async def run_helper(self, helper: str, server: str) -> Credential | None:
        """Ask ``docker-credential-HELPER get`` about ``server``; ``None`` when it has nothing."""
        if not _HELPER_NAME.match(helper):
            raise AuthError(f"docker config {self.path}: {helper!r} is not a credential helper name")
        program = HELPER_PREFIX + helper
        env = os.environ if self._environ is None else self._environ
        executable = shutil.which(program, path=env.get("PATH", os.defpath))
        if executable is None:
            raise HelperMissing(
                f"docker credential helper {helper!r} is configured in {self.path} but "
                f"{program} is not on PATH"
            )
        obtained = self.clock()
        rc, out, err = await _run(
            [executable, "get"],
            server.encode(),
            dict(env),
            self.helper_timeout,
            self.max_helper_output,
            program,
        )
        text_out = out.decode("utf-8", "replace").strip()
        text_err = err.decode("utf-8", "replace").strip()
        if rc != 0:
            if _says_not_found(text_out) or _says_not_found(text_err):
                return None
            raise AuthError(
                f"docker credential helper {program} failed for {server} (exit status {rc}): "
                f"{_first_line(text_err) or _first_line(text_out, skip_json=True) or 'no message'}"
            )
        if not text_out:
            return None
        try:
            answer = json.loads(text_out)
        except ValueError:
            raise AuthError(
                f"docker credential helper {program} answered {server} with something that is not JSON"
            ) from None
        if not isinstance(answer, dict):
            raise AuthError(f"docker credential helper {program} answered {server} with no object")
        username = _str(answer.get("Username"))
        secret = _str(answer.get("Secret"))
        if not secret:
            return None
        provider = f"docker-config ({program})"
        if username == TOKEN_USERNAME:
            return Credential(identity_token=secret, provider=provider)
        expires_at = None
        if username == "oauth2accesstoken":
            expires_at = obtained + self.helper_token_lifetime
        return Credential(username=username, password=secret, expires_at=expires_at, provider=provider)


class HelperMissing(AuthError):
    """A configured credential helper whose program is not installed."""


def _says_not_found(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _NOT_FOUND)


def _first_line(text: str, *, skip_json: bool = False, limit: int = 200) -> str:
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if skip_json and line.startswith(("{", "[")):
            return ""
        return line if len(line) <= limit else line[:limit] + "…"
    return ""


class _Overflow(Exception):
    pass


async def _run(
    argv: list[str], stdin: bytes, env: dict[str, str], seconds: float, limit: int, program: str
) -> tuple[int, bytes, bytes]:
    """Run a helper: its exit status, stdout and stderr, each at most ``limit`` bytes.

    The helper is killed when it runs over the time limit or writes more than ``limit`` bytes.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise AuthError(f"cannot run docker credential helper {program}: {exc.strerror}") from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    writer = proc.stdin

    async def feed() -> bytes:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            writer.write(stdin)
            await writer.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            writer.close()
        return b""

    tasks = [
        asyncio.ensure_future(feed()),
        asyncio.ensure_future(_read_capped(proc.stdout, limit)),
        asyncio.ensure_future(_read_capped(proc.stderr, limit)),
    ]
    try:
        async with asyncio.timeout(seconds):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.done() and not t.cancelled() and isinstance(t.exception(), _Overflow) for t in tasks):
                raise AuthError(
                    f"docker credential helper {program} wrote more than {limit} bytes; stopped it"
                )
            _, out, err = [t.result() for t in tasks]
            rc = await proc.wait()
    except TimeoutError:
        raise AuthError(
            f"docker credential helper {program} did not answer within {seconds:g} s; stopped it"
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # asyncio reports the exit only once both pipes reach EOF; a reader that stopped at the
        # limit leaves its pipe paused, so drain what a killed helper left behind first.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(_discard(proc.stdout), _discard(proc.stderr))
                await proc.wait()
    return rc, out, err


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Everything the stream holds, or ``_Overflow`` past ``limit`` bytes."""
    buf = bytearray()
    while True:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise _Overflow
