"""Stop signals in every mode: `mirror sync --once` stops on SIGTERM like the service does, also
as PID 1 of its own PID namespace (a container's entry point without an init).

Before the fix `sync --once` was killed at once by SIGTERM (no report, multipart uploads and
upload sessions left open), and as PID 1 it ignored SIGTERM altogether (the kernel applies no
default action to the first process of a namespace) and copied on. A source throttled to
1 MiB/s keeps a 12 MiB layer moving while the signal arrives; the destinations are a registry
(behind a recording proxy) and an S3 layout on moto (parts of 5 MiB: a multipart upload).
The other half of the grace period: a blob still moving when SIGTERM arrives, able to end
within `--grace`, ends, and its image is copied (held at the source by the proxy until the signal
has been taken). Waits are bounded; nothing here measures how long the stop took.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import uploads
from tests.support.faults import Hold, SlowBody
from tests.support.images import blob_exists, manifest_exists, push_image

MiB = 1024 * 1024
HANG_GUARD = 90.0


def seed(src: Any, proxy_factory: Any) -> tuple[Any, str]:
    """The source behind a proxy that serves blobs at 1 MiB/s; the digest of the big layer."""
    image = push_image(src, "apps/big", "v1", layer_sizes=(12 * MiB, 4096), seed="shutdown")
    source = proxy_factory.start(src)
    source.add_fault(SlowBody(MiB, times=None, method="GET", path=r"/blobs/sha256:"))
    return source, image.layers[0].digest


def write_config(tmp_path: Path, source: Any, dest: Any, bucket_name: str) -> Path:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: big
    source: {source.host}/apps/big:v1
    destinations: [{dest.host}/m, "s3://{bucket_name}/backup"]
"""
    )
    return config


def env(aws: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MIRROR_S3_PART_SIZE": str(5 * MiB),
        "MIRROR_S3_ENDPOINT_URL": aws,
    }


def wait_for_moving(
    dest: Any, client: Any, bucket_name: str, digest: str, proc: subprocess.Popen[bytes]
) -> None:
    """Until the big layer moves at both destinations: its PUT has reached the registry, and
    its multipart upload (parts of 5 MiB) has begun in the bucket."""
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline and proc.poll() is None:
        putting = any(digest in r.query for r in dest.select("PUT", "/blobs/uploads/"))
        if putting and uploads(client, bucket_name):
            return
        time.sleep(0.1)
    raise AssertionError(f"the layer never moved to both destinations (exit code {proc.poll()})")


def check_stopped(code: int, report: Path, dest_proxy: Any, dst: Any, client: Any, bucket_name: str) -> None:
    assert code == 128 + signal.SIGTERM, code
    doc = json.loads(report.read_text())
    [job] = doc["jobs"]
    assert not job["ok"] and "stopped by SIGTERM" in job["error"], job
    [image] = doc["images"]
    kinds = {d["error_kind"] for d in image["destinations"]}
    assert kinds == {"shutdown"}, image
    assert not manifest_exists(dst, "m/big", "v1")
    assert uploads(client, bucket_name) == []  # the multipart upload was aborted
    deletes = dest_proxy.select("DELETE", "/blobs/uploads/")
    assert deletes and all(r.status in (202, 204, 404) for r in deletes), deletes


def _unshare() -> str | None:
    tool = shutil.which("unshare")
    if tool is None or os.geteuid() != 0:
        return None
    probe = subprocess.run(
        [tool, "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    return tool if probe.returncode == 0 else None


def namespace_init(proc: subprocess.Popen[bytes]) -> int:
    """The host PID of the process `unshare --fork` started: PID 1 of the new namespace."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if children:
            init = int(children[0])
            status = Path(f"/proc/{init}/status").read_text().splitlines()
            [nspid] = [line for line in status if line.startswith("NSpid:")]
            assert nspid.split()[-1] == "1", nspid  # mirror is PID 1 of its namespace
            return init
        time.sleep(0.02)
    raise AssertionError("unshare started no child")


PID_1 = pytest.mark.skipif(_unshare() is None, reason="needs root and unshare --pid (util-linux)")


@pytest.mark.parametrize("as_pid_1", [False, pytest.param(True, marks=PID_1, id="as-pid-1")])
def test_sync_once_stops_on_sigterm_and_writes_its_report(
    registry_pair: Any,
    proxy_factory: Any,
    tmp_path: Path,
    aws_env: str,
    s3: Any,
    bucket: str,
    as_pid_1: bool,
) -> None:
    src, dst = registry_pair
    source, digest = seed(src, proxy_factory)
    dest = proxy_factory.start(dst)
    report = tmp_path / "report.json"
    config = write_config(tmp_path, source, dest, bucket)
    command = [sys.executable, "-m", "mirror", "sync", "--config", str(config), "--once", "--grace", "1"]
    command += ["--report", str(report)]
    if as_pid_1:
        command = [str(_unshare()), "--pid", "--fork", "--mount-proc", *command]
    proc = subprocess.Popen(command, env=env(aws_env), stdin=subprocess.DEVNULL)
    try:
        target = namespace_init(proc) if as_pid_1 else proc.pid
        wait_for_moving(dest, s3, bucket, digest, proc)
        os.kill(target, signal.SIGTERM)
        code = proc.wait(timeout=HANG_GUARD)
    finally:
        proc.kill()
        proc.wait()
    check_stopped(code, report, dest, dst, s3, bucket)


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (the SigCgt mask of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (int(sig) - 1)))
    return False


def test_a_sigterm_while_starting_stops_the_pass_in_order(registry_pair: Any, tmp_path: Path) -> None:
    """SIGTERM as soon as the process can catch it (its config not read yet, nothing copied):
    remembered, then the pass stops in order. Before: the default action killed it."""
    src, dst = registry_pair
    push_image(src, "apps/app", "v1", seed="early")
    config = tmp_path / "c.yaml"
    job = f"  - name: app\n    source: {src.host}/apps/app:v1\n    destinations: [{dst.host}/m]\n"
    config.write_text(f"version: 1\njobs:\n{job}")
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "mirror",
        "sync",
        "--config",
        str(config),
        "--once",
        "--report",
        str(report),
    ]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not catches(proc.pid, signal.SIGTERM):
            assert time.monotonic() < deadline and proc.poll() is None, "SIGTERM was never caught"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=HANG_GUARD)
    finally:
        proc.kill()
        proc.wait()
    assert code == 128 + signal.SIGTERM, code
    doc = json.loads(report.read_text())
    assert [(j["ok"], "stopped by SIGTERM" in j["error"]) for j in doc["jobs"]] == [(False, True)], doc
    assert not manifest_exists(dst, "m/app", "v1")


def test_a_blob_moving_at_sigterm_finishes_within_the_grace(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """`sync --once --grace 60`: SIGTERM while the layer is part read (the source holds it after
    512 KiB), the hold released only once mirror has logged the signal. The transfer is not
    aborted: the layer reaches both destinations from one read, the manifest and tag are
    written, the image is reported `copied`; the pass was still cut short, so the job says so
    and the exit code is 128 + SIGTERM."""
    src, dst = registry_pair
    image = push_image(src, "apps/late", "v1", layer_sizes=(2 * MiB,), seed="grace")
    layer = image.layers[0].digest
    source = proxy_factory.start(src)
    hold = source.add_fault(Hold(512 * 1024, deadline=HANG_GUARD, method="GET", path=f"/blobs/{layer}"))
    layout = tmp_path / "layout"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"version: 1\njobs:\n  - name: late\n    source: {source.host}/apps/late:v1\n"
        f'    destinations: [{dst.host}/m, "oci:{layout}"]\n'
    )
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "mirror", "sync", "--config", str(config), "--once"]
    command += ["--grace", "60", "--report", str(report)]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stream = proc.stderr
    assert stream is not None
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + HANG_GUARD

    def until(done: Any) -> None:
        while not done():
            assert time.monotonic() < deadline and proc.poll() is None, "".join(log)
            time.sleep(0.02)

    config_blob = layout / "late" / "blobs" / "sha256" / image.config_digest.split(":", 1)[1]
    try:
        # The layer is moving (held part way) and nothing else is left to start.
        until(lambda: hold.reached.is_set() and config_blob.exists())
        until(lambda: blob_exists(dst, "m/late", image.config_digest))
        proc.send_signal(signal.SIGTERM)
        until(lambda: any("SIGTERM: stopping" in line for line in log))
        hold.release()
        code = proc.wait(timeout=HANG_GUARD)
        reader.join(timeout=10)
    finally:
        hold.release()
        proc.kill()
        proc.wait()
    text = "".join(log)
    assert code == 128 + signal.SIGTERM, text
    assert "aborting" not in text, text  # the grace was enough: nothing was cut off
    doc = json.loads(report.read_text())
    [job] = doc["jobs"]
    assert not job["ok"] and "stopped by SIGTERM" in job["error"], job
    [copied] = doc["images"]
    assert copied["status"] == "copied", copied
    assert [d["status"] for d in copied["destinations"]] == ["copied", "copied"], copied
    assert manifest_exists(dst, "m/late", "v1") and blob_exists(dst, "m/late", layer)
    index = json.loads((layout / "late" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    assert len(source.select("GET", f"/blobs/{layer}")) == 1  # one read, finished, not read again
