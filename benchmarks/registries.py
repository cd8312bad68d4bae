"""Debian's ``docker-registry`` (CNCF distribution) on loopback, for benchmarks.

Each registry gets a temporary directory with its config, filesystem storage (deletes enabled)
and an access log: distribution writes one combined-format line per request to stdout, which
is how requests and bytes served are counted for every tool alike (see :mod:`benchmarks.measure`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.net import free_port
from tests.support.registry import launch, stop_process

if TYPE_CHECKING:
    import subprocess

# 127.0.0.1 - - [27/Nov/2026:23:31:28 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
_ACCESS = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) '
    r"(?P<bytes>\d+|-)"
)


@dataclass(frozen=True)
class AccessRecord:
    method: str
    path: str
    status: int
    bytes: int


def parse_access_log(text: str) -> list[AccessRecord]:
    records = []
    for line in text.splitlines():
        m = _ACCESS.match(line)
        if m:
            size = m.group("bytes")
            records.append(
                AccessRecord(
                    m.group("method"),
                    m.group("path"),
                    int(m.group("status")),
                    int(size) if size.isdigit() else 0,
                )
            )
    return records


@dataclass
class Registry:
    root: Path
    host: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rpartition(":")[2])

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def access_since(self, offset: int) -> list[AccessRecord]:
        """Requests logged after ``offset`` (a value of :meth:`log_offset`)."""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return parse_access_log(f.read().decode(errors="replace"))

    def cpu_seconds(self) -> float:
        """User + system CPU time the registry process has used so far."""
        if self.process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_process(self)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Registries:
    """Starts registries under one temporary directory; ``close`` stops and removes them all."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="mirror-bench-", dir=base))
        self._all: list[Registry] = []
        self._count = 0
        self.binary = shutil.which("docker-registry")
        if self.binary is None:
            raise RuntimeError("docker-registry not found: apt-get install docker-registry")

    def start(self, extra: dict[str, object] | None = None) -> Registry:
        """A fresh registry; ``extra`` is merged into its config's top level (e.g. notifications)."""
        self._count += 1
        reg = Registry(self.base / f"registry-{self._count}")
        reg.storage.mkdir(parents=True)
        self._all.append(reg)
        assert self.binary is not None
        for _ in range(5):
            reg.host = f"127.0.0.1:{free_port()}"
            reg.config_path.write_text(_config(reg, extra))
            if launch(self.binary, reg):
                return reg
        raise RuntimeError("docker-registry: no free port after 5 attempts")

    def close(self) -> None:
        for reg in reversed(self._all):
            reg.stop()
        self._all.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Registries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _config(reg: Registry, extra: dict[str, object] | None = None) -> str:
    # JSON is YAML: no yaml dependency needed to write it.
    doc = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(reg.storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": reg.host, "secret": secrets.token_hex(16)},
        **(extra or {}),
    }
    return json.dumps(doc, indent=2)


def _clean_env() -> dict[str, str]:
    drop = ("REGISTRY_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
