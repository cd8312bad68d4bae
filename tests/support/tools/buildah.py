"""buildah (Debian 12: 1.28) with a private vfs store: images from real files, never a container run.

    b = Buildah(tmp / "buildah")
    b.build("localhost/app-amd64", files, "linux/amd64", fmt="oci")
    digest = b.push("localhost/app-amd64", f"docker://{host}/it/app:1", compression="zstd")
    b.manifest_create("localhost/app:list"); b.manifest_add("localhost/app:list", "localhost/app-amd64")
    digest = b.manifest_push("localhost/app:list", f"docker://{host}/it/app:1")

Registries on loopback speak plain HTTP, hence `--tls-verify=false` (containers/image does not
treat 127.0.0.1 as insecure). buildah 1.28 has no `--force-compression` and `manifest push` has no
`--compression-format` (see files.py for the blob-info cache that makes compression choices
unreliable).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.tools.base import require, require_root, run, tool_env, vfs_store
from tests.support.tools.files import Files


class Buildah:
    def __init__(self, root: Path) -> None:
        require_root("buildah")
        self.binary = require("buildah")
        self.root = root
        self.env = tool_env(root / "home", {"TMPDIR": str(root / "tmp"), "STORAGE_DRIVER": "vfs"})
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self.base = [self.binary, *vfs_store(root)]
        self._count = 0

    def __call__(self, *args: str, timeout: float = 120.0) -> str:
        return run([*self.base, *args], env=self.env, timeout=timeout).stdout.decode().strip()

    def build(self, image: str, files: Files, platform: str, *, fmt: str = "oci") -> str:
        """Commit `files` (copied in from real files) as `image` for `platform` (os/arch[/variant])."""
        self._count += 1
        src = files.write(self.root / "files" / str(self._count))
        os_, arch, *variant = platform.split("/")
        container = f"build-{self._count}"
        self("from", "--name", container, "scratch")
        for rel in files.entries:
            self("copy", container, str(src / rel), "/" + rel)
        config = ["config", "--os", os_, "--arch", arch, "--label", f"org.example.image={image}"]
        if variant:
            config += ["--variant", variant[0]]
        self(*config, container)
        self("commit", "-q", "--rm", "--format", fmt, container, image)
        return image

    def push(self, image: str, dest: str, *, compression: str | None = None, fmt: str | None = None) -> str:
        """Push `image` to `dest` (a containers/image transport reference); the manifest digest."""
        digestfile = self.root / "tmp" / f"digest-{self._count}-{abs(hash(dest))}"
        args = ["push", "-q", "--tls-verify=false", "--digestfile", str(digestfile)]
        if compression:
            args += ["--compression-format", compression]
        if fmt:
            args += ["--format", fmt]
        self(*args, image, dest)
        return digestfile.read_text().strip()

    def manifest_create(self, name: str) -> None:
        self("manifest", "create", name)

    def manifest_add(self, name: str, image: str) -> None:
        self("manifest", "add", name, image)

    def manifest_push(self, name: str, dest: str, *, fmt: str | None = None) -> str:
        """Push the list and every image in it; the list's digest as pushed."""
        digestfile = self.root / "tmp" / f"digest-list-{abs(hash((name, dest)))}"
        args = ["manifest", "push", "-q", "--all", "--tls-verify=false", "--digestfile", str(digestfile)]
        if fmt:
            args += ["--format", fmt]
        self(*args, name, dest)
        return digestfile.read_text().strip()
