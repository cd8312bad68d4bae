"""skopeo (Debian) as an outside check of what landed in a registry.

References are skopeo transports: "127.0.0.1:5000/repo:tag" gets the `docker://` prefix added;
anything with a transport prefix ("oci:/dir:tag", "docker://...") is used as is. TLS
verification is off by default (the test registries speak plain HTTP on loopback); no
credentials are read from the environment or auth files unless `creds` is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

TIMEOUT = 120.0


def skopeo_binary() -> str | None:
    return shutil.which("skopeo")


TRANSPORTS = ("docker://", "oci:", "oci-archive:", "dir:", "docker-archive:", "containers-storage:")


def _ref(ref: str) -> str:
    return ref if ref.startswith(TRANSPORTS) else f"docker://{ref}"


def _env() -> dict[str, str]:
    drop = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")
    return {k: v for k, v in os.environ.items() if k.upper() not in drop}


def _creds_args(flag: str, no_creds_flag: str | None, creds: tuple[str, str] | None) -> list[str]:
    if creds is not None:
        return [f"{flag}={creds[0]}:{creds[1]}"]
    return [no_creds_flag] if no_creds_flag else []


def run_skopeo(
    args: Sequence[str], *, timeout: float = TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    binary = skopeo_binary()
    if binary is None:
        raise RuntimeError("skopeo is not installed")
    proc = subprocess.run(
        [binary, "--insecure-policy", *args], capture_output=True, timeout=timeout, env=_env()
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"skopeo {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        )
    return proc


def skopeo_inspect_raw(ref: str, creds: tuple[str, str] | None = None, tls_verify: bool = False) -> bytes:
    """The manifest bytes exactly as the registry serves them (`skopeo inspect --raw`)."""
    args = ["inspect", "--raw", f"--tls-verify={str(tls_verify).lower()}", "--retry-times=0"]
    args += _creds_args("--creds", "--no-creds", creds)
    return run_skopeo([*args, _ref(ref)]).stdout


def skopeo_copy(
    src: str,
    dest: str,
    *,
    src_creds: tuple[str, str] | None = None,
    dest_creds: tuple[str, str] | None = None,
    all_images: bool = True,
    preserve_digests: bool = True,
    tls_verify: bool = False,
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:
    """`skopeo copy` between two references (multi-arch by default, digests preserved)."""
    verify = str(tls_verify).lower()
    args = ["copy", f"--src-tls-verify={verify}", f"--dest-tls-verify={verify}", "--retry-times=0"]
    src_ref, dest_ref = _ref(src), _ref(dest)
    if src_ref.startswith("docker://"):
        args += _creds_args("--src-creds", "--src-no-creds", src_creds)
    if dest_ref.startswith("docker://"):
        args += _creds_args("--dest-creds", "--dest-no-creds", dest_creds)
    if all_images:
        args.append("--all")
    if preserve_digests:
        args.append("--preserve-digests")
    return run_skopeo([*args, *extra, src_ref, dest_ref])
