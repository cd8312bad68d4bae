"""The tools under test: mirror's and skopeo's sync configs and command lines, skopeo's private
blob-info cache, mirror's report, and the check that a destination holds what was copied."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.registries import Registry

SKOPEO_CACHE = Path("/var/lib/containers/cache")  # skopeo's blob-info cache when run as root


class SkopeoCache:
    """Gives each skopeo trial its own blob-info cache, so trials do not feed each other.

    As root, skopeo keeps the cache in /var/lib/containers/cache; a private mount namespace
    binds a fresh directory over it for the duration of one command. Without ``unshare`` (or
    as another user) skopeo runs as is and the cache is shared (noted in the results).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.private = os.geteuid() == 0 and shutil.which("unshare") is not None and self._works()

    def _works(self) -> bool:
        probe = self.base / "probe"
        probe.mkdir(parents=True, exist_ok=True)
        SKOPEO_CACHE.mkdir(parents=True, exist_ok=True)
        cmd = ["unshare", "--mount", "sh", "-c", f'mount --bind "{probe}" "{SKOPEO_CACHE}" && true']
        try:
            return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def wrap(self, argv: list[str], trial: str) -> list[str]:
        if not self.private:
            return argv
        cache = self.base / f"cache-{trial}"
        cache.mkdir(parents=True, exist_ok=True)
        quoted = " ".join(sh(a) for a in argv)
        return [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f"mount --bind {sh(str(cache))} {SKOPEO_CACHE} && exec {quoted}",
        ]


def sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def skopeo_sync_argv(config: Path, host: str) -> list[str]:
    """`skopeo sync` of the repositories listed in ``config`` into ``host``/mirror."""
    return [
        "skopeo",
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        str(config),
        f"{host}/mirror",
    ]


def mirror_sync_config(
    path: Path, src: Registry, dests: list[Registry], prefix: str, *, every: str | None = None
) -> Path:
    """``every``: a schedule interval (serve mode), without jitter."""
    lines = ["version: 1", "concurrency: 64", "registries:"]
    for reg in [src, *dests]:
        lines.append(f'  "{reg.host}": {{plain_http: true, max_concurrency: 32}}')
    lines += ["jobs:", "  - name: fleet", f"    source: {src.host}/{prefix}/*", "    destinations:"]
    lines += [f'      - "{d.host}/mirror"' for d in dests]
    if every:
        lines.append(f"    schedule: {{interval: {every}, jitter: 0}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def skopeo_sync_config(path: Path, src: Registry, images: list[w.Image]) -> Path:
    repos = sorted({i.repository for i in images})
    doc = {src.host: {"tls-verify": False, "images-by-tag-regex": dict.fromkeys(repos, ".*")}}
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


def check_copied(reg: Registry, images: list[w.Image], rename: Callable[[str], str]) -> bool:
    """Every image is at the destination under its tag, with the source's digest."""
    for image in images:
        url = f"http://{reg.host}/v2/{rename(image.repository)}/manifests/{image.tag}"
        req = urllib.request.Request(
            url, method="HEAD", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.headers.get("Docker-Content-Digest") != str(image.digest):
                    return False
        except OSError:
            return False
    return True


def mirror_report(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def as_mirror_repo(repo: str) -> str:
    return "mirror/" + repo.rsplit("/", 1)[-1]
