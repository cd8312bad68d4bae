"""Real files put into images by the outside tools, and the check that a tool got them back.

Each image variant gets its own content (its name, platform and a per-session nonce in
`hello.txt`, fresh random bytes in `data/rand.bin`): the containers/image blob-info cache
(`/var/lib/containers/cache/blob-info-cache-v1.boltdb`, shared by every buildah, podman and
skopeo run as root, with no flag to move it in the Debian 12 versions) would otherwise let a zstd
push reuse a gzip blob of the same layer pushed earlier, or the other way round.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SESSION_NONCE = secrets.token_hex(8)


@dataclass(frozen=True)
class Files:
    """Regular files by path inside the image (no leading slash)."""

    entries: Mapping[str, bytes]

    @classmethod
    def for_variant(cls, name: str, platform: str, random_size: int = 64 * 1024) -> Files:
        hello = f"{name} {platform} {SESSION_NONCE}\n".encode()
        return cls({"hello.txt": hello, "data/rand.bin": os.urandom(random_size)})

    def write(self, directory: Path) -> Path:
        for rel, data in self.entries.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return directory

    def mismatches(self, rootfs: Path) -> list[str]:
        """Paths whose content under `rootfs` differs from what was put in (empty: all equal)."""
        wrong = []
        for rel, data in self.entries.items():
            path = rootfs / rel
            if not path.is_file():
                wrong.append(f"{rel}: missing under {rootfs}")
            elif path.read_bytes() != data:
                wrong.append(f"{rel}: content differs under {rootfs}")
        return wrong

    def mismatches_in_layer(self, layer: bytes, media_type: str) -> list[str]:
        """The same check against one layer blob (tar, tar+gzip or tar+zstd), read without a tool
        that unpacks images: for layers a client cannot unpack (umoci and zstd)."""
        if media_type.endswith("zstd"):
            layer = subprocess.run(
                ["zstd", "-dc"], input=layer, capture_output=True, check=True, timeout=60
            ).stdout
        found: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(layer), mode="r:*") as tar:
            for member in tar:
                f = tar.extractfile(member) if member.isfile() else None
                if f is not None:
                    found[member.name.removeprefix("./").lstrip("/")] = f.read()
        return [
            f"{rel}: {'missing' if rel not in found else 'content differs'} in the layer"
            for rel, data in self.entries.items()
            if found.get(rel) != data
        ]
