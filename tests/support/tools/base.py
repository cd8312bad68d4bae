"""Running outside tools: find them, skip (or fail under CI) when they cannot run, bound every call.

    path = require("buildah")                 # skip with the reason, or fail when CI=true
    out = run([path, "version"], timeout=30)  # ToolError carries the command and its stderr

Every call has a deadline; a tool that overruns it is killed with its whole process group. The
environment handed to a tool has no proxy settings and no registry credentials of the user
(`REGISTRY_AUTH_FILE` points at an empty file under the tool's own root, `DOCKER_CONFIG` at an
empty directory), so nothing outside the test's directories is read for credentials.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

DEFAULT_TIMEOUT = 60.0

# Debian package that provides each binary (named in skip messages and .ci/run).
PACKAGES = {
    "buildah": "buildah",
    "podman": "podman",
    "containerd": "containerd",
    "ctr": "containerd",
    "umoci": "umoci",
    "skopeo": "skopeo",
    "zstd": "zstd",
    "docker-registry": "docker-registry",
}


def under_ci() -> bool:
    """`CI=true` (set by .ci/run): a tool that cannot run is a failure there, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip the test with `reason`; under CI, fail it instead."""
    if under_ci():
        pytest.fail(f"CI=true and the interop suite cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def require(name: str) -> str:
    """The path of `name`, or skip/fail naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install {PACKAGES.get(name, name)})")
        raise AssertionError("unreachable")  # pragma: no cover - skip/fail raise
    return path


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"{what} needs root (vfs storage, mounts and a private containerd run as root)")


class ToolError(AssertionError):
    """A tool exited non-zero or overran its deadline."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        what = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"{' '.join(self.argv)} {what}: {stderr.strip()[-2000:]}")


def tool_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tool whose private state lives under `home`."""
    drop = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")
    env = {k: v for k, v in os.environ.items() if k.upper() not in drop and not k.startswith("CONTAINERS_")}
    home.mkdir(parents=True, exist_ok=True)
    auth = home / "auth.json"
    if not auth.exists():
        auth.write_text("{}")
    (home / "docker-config").mkdir(exist_ok=True)
    env.update(REGISTRY_AUTH_FILE=str(auth), DOCKER_CONFIG=str(home / "docker-config"))
    env.update(extra or {})
    return env


def vfs_store(root: Path) -> list[str]:
    """containers/storage flags for a private vfs store under `root` (buildah, podman)."""
    return ["--root", str(root / "store"), "--runroot", str(root / "run"), "--storage-driver", "vfs"]


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` to completion within `timeout` seconds; raise ToolError on failure (if `check`)."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise ToolError(argv, None, f"no answer within {timeout}s; {err.decode(errors='replace')}") from None
    result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise ToolError(argv, proc.returncode, err.decode(errors="replace") or out.decode(errors="replace"))
    return result


def kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group of `proc` (started with start_new_session), SIGKILL after `grace`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
