"""umoci (Debian 12: 0.4.7): writes OCI layouts from real files and unpacks them.

Limits of 0.4.7 (each seen on Debian 12): an index with more than one manifest for a tag is
`tag is ambiguous` (a single-child index unpacks); zstd layers are refused (`blob is not correct
mediatype`); a Docker v2s2 manifest in a layout is `not implemented`. umoci accepts tags that are
not registry tags, such as `1.0+build.5`.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.tools.base import require, require_root, run, tool_env
from tests.support.tools.files import Files


class Umoci:
    def __init__(self, home: Path) -> None:
        require_root("umoci unpack")
        self.binary = require("umoci")
        self.home = home
        self.env = tool_env(home, {"TMPDIR": str(home)})

    def __call__(self, *args: str, timeout: float = 60.0) -> str:
        return run([self.binary, *args], env=self.env, timeout=timeout).stdout.decode().strip()

    def new_image(self, layout: Path, tag: str, files: Files, platform: str) -> None:
        """A new image `layout:tag` holding `files` (one layer per file), for `platform`."""
        if not (layout / "index.json").exists():
            self("init", "--layout", str(layout))
        image = f"{layout}:{tag}"
        self("new", "--image", image)
        os_, arch, *_variant = platform.split("/")
        self("config", "--image", image, "--os", os_, "--architecture", arch)
        src = files.write(self.home / "files" / tag)
        for rel in files.entries:
            self("insert", "--image", image, str(src / rel), "/" + rel)

    def unpack(self, layout: Path, tag: str, bundle: Path) -> Path:
        """Unpack `layout:tag` into the bundle `bundle`; its root file system."""
        self("unpack", "--image", f"{layout}:{tag}", str(bundle))
        return bundle / "rootfs"
