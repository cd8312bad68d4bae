"""podman (Debian 12: 4.3) as a client, with a private vfs store: pull, inspect, mount, save.

Nothing is ever run. `--tmpdir` is given from the first call (podman records it in its database
on first use) and `--events-backend none` keeps it out of /run/libpod.

- `inspect()["Digest"]` is the digest of what was pulled (the index for a multi-platform tag),
  `["Id"]` the config digest's hex of the platform picked.
- `save_oci_dir()` writes one platform as a single manifest, with `ref.name` set to the full name
  given (`127.0.0.1:PORT/repo:tag`); layers are re-compressed with gzip (vfs keeps them
  uncompressed), so a zstd image comes out with another manifest digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.tools.base import require, require_root, run, tool_env, vfs_store


class Podman:
    def __init__(self, root: Path) -> None:
        require_root("podman")
        self.binary = require("podman")
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self.env = tool_env(root / "home", {"TMPDIR": str(root / "tmp")})
        self.base = [self.binary, *vfs_store(root), "--tmpdir", str(root / "libpod-tmp")]
        self.base += ["--events-backend", "none"]

    def __call__(self, *args: str, timeout: float = 120.0) -> str:
        return run([*self.base, *args], env=self.env, timeout=timeout).stdout.decode().strip()

    def pull(self, ref: str, platform: str | None = None) -> str:
        """`podman pull` over plain HTTP; `platform` (os/arch[/variant]) picks from an index.
        The image ID."""
        args = ["pull", "-q", "--tls-verify=false"]
        if platform:
            _os, arch, *variant = platform.split("/")
            args += ["--arch", arch] + (["--variant", variant[0]] if variant else [])
        return self(*args, ref).splitlines()[-1]

    def inspect(self, ref: str) -> dict[str, Any]:
        doc = json.loads(self("image", "inspect", ref))
        assert isinstance(doc, list) and len(doc) == 1, doc
        image: dict[str, Any] = doc[0]
        return image

    def mount(self, ref: str) -> Path:
        """The image's root file system (a plain directory with vfs)."""
        return Path(self("image", "mount", ref))

    def unmount(self, ref: str) -> None:
        self("image", "unmount", ref)

    def remove(self, ref: str) -> None:
        self("rmi", "-f", ref)

    @contextmanager
    def pulled(self, ref: str, platform: str | None = None) -> Iterator[Path]:
        """Pull `ref` and give its files for the block; the image is removed afterwards."""
        image = self.pull(ref, platform)
        rootfs = self.mount(image)
        try:
            yield rootfs
        finally:
            self.unmount(image)
            self.remove(image)

    def save_oci_dir(self, ref: str, directory: Path) -> Path:
        self("save", "-q", "--format", "oci-dir", "-o", str(directory), ref)
        return directory
