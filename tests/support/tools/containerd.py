"""A private containerd (Debian 12: 1.6) on its own socket and root, and `ctr` against it.

    with Containerd(tmp / "ctd") as ctd:
        ctd.pull(f"{host}/repo:1")                       # every platform, unpacked (native snapshotter)
        ctd.image_digest(f"{host}/repo:1")               # the digest `ctr images ls` shows
        with ctd.mounted(f"{host}/repo:1", "linux/arm64/v8") as rootfs: ...

Nothing lands in /run/containerd, /var/lib/containerd or /opt/containerd: root, state and both
sockets are under the given directory (a short one under /tmp when that path would be too long
for a unix socket), the CRI and `opt` plugins are disabled. `ctr images pull` of an artifact
fails (`mismatched image rootfs and manifest layers`); `fetch()` (`ctr content fetch`) takes any
manifest without unpacking it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from tests.support.tools.base import ToolError, kill_group, require, require_root, run, tool_env

START_TIMEOUT = 20.0
SOCKET_MAX = 100  # unix socket paths are limited to 104 bytes (containerd refuses longer ones)

CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


class Containerd:
    def __init__(self, directory: Path) -> None:
        require_root("containerd")
        self.daemon = require("containerd")
        self.ctr = require("ctr")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._short: Path | None = None
        sock = directory / "sock"
        if len(str(sock)) + len(".ttrpc") > SOCKET_MAX:
            self._short = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
            sock = self._short / "sock"
        self.socket = sock
        self.config = directory / "config.toml"
        self.log = directory / "containerd.log"
        self.env = tool_env(directory / "home", {"CONTAINERD_SNAPSHOTTER": "native"})
        self.process: subprocess.Popen[bytes] | None = None
        self.mounts: list[Path] = []
        self._mount_count = 0

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Containerd:
        self.config.write_text(
            CONFIG.format(root=self.directory / "root", state=self.directory / "state", sock=self.socket)
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.daemon, "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"containerd exited at start-up:\n{self.log.read_text()[-3000:]}")
            if run([*self._ctr(), "version"], env=self.env, timeout=10, check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"containerd did not answer within {START_TIMEOUT}s")
            time.sleep(0.05)

    def stop(self) -> None:
        for target in reversed(self.mounts):
            run(["umount", str(target)], timeout=30, check=False)
        self.mounts.clear()
        if self.process is not None:
            kill_group(self.process, grace=10.0)
            self.process = None
        if self._short is not None:
            shutil.rmtree(self._short, ignore_errors=True)

    def _ctr(self) -> list[str]:
        return [self.ctr, "--address", str(self.socket), "--namespace", "interop"]

    def __call__(self, *args: str, timeout: float = 120.0) -> str:
        return run([*self._ctr(), *args], env=self.env, timeout=timeout).stdout.decode().strip()

    def pull(self, ref: str, *, platform: str | None = None) -> None:
        """`ctr images pull` over plain HTTP: every platform unless one is named; unpacked."""
        which = ["--platform", platform] if platform else ["--all-platforms"]
        self("images", "pull", "--plain-http", *which, ref)

    def fetch(self, ref: str) -> None:
        """`ctr content fetch`: the manifest and everything under it, not unpacked (artifacts too)."""
        self("content", "fetch", "--plain-http", "--all-platforms", ref)

    def image_digest(self, ref: str) -> str:
        """The target digest of image `ref` as `ctr images ls` reports it."""
        for line in self("images", "ls").splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == ref:
                return fields[2]
        raise ToolError(["ctr", "images", "ls"], 0, f"{ref} is not listed")

    def content(self, digest: str) -> bytes:
        """`ctr content get`: the stored bytes of any manifest or blob."""
        return run([*self._ctr(), "content", "get", digest], env=self.env, timeout=60).stdout

    @contextmanager
    def mounted(self, ref: str, platform: str) -> Iterator[Path]:
        """The unpacked root file system of one platform of `ref`, read-only, for the block."""
        self._mount_count += 1
        target = self.directory / "mnt" / f"{self._mount_count}-{platform.replace('/', '-')}"
        target.mkdir(parents=True)
        self("images", "mount", "--platform", platform, ref, str(target))
        self.mounts.append(target)
        try:
            yield target
        finally:
            self("images", "unmount", "--rm", str(target))
            self.mounts.remove(target)
