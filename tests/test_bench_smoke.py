"""Smoke test of the benchmark path: synthetic source -> ``mirror copy`` -> discarding sink.

Checks bytes, digest and the report's fields; never timing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.cli.bench import parse_size
from mirror.copy.bench import check_blob_limit
from mirror.copy.synthetic_blob import synthetic_chunks, synthetic_digest
from mirror.types.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SIZE = 64 * 1024 * 1024 + 12345  # not a multiple of the generator's block


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, str]]:
    digest = str(synthetic_digest("smoke", SIZE))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.synthetic_server",
            "--seed",
            "smoke",
            "--size",
            str(SIZE),
            "--digest",
            digest,
            "--verify",
            "--stop-after",
            "120",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), (line, proc.stderr.read() if proc.stderr else "")
        yield int(line.split()[1]), digest
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stats(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_copy_through_synthetic_path(server: tuple[int, str], tmp_path: Path) -> None:
    port, digest = server
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirror",
            "copy",
            f"127.0.0.1:{port}/synthetic/blob:latest",
            f"127.0.0.1:{port}/sink/smoke:v1",
            "--report",
            str(report),
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(report.read_text())
    for key in (
        "status",
        "digest",
        "bytes_read",
        "bytes_written",
        "blobs_pushed",
        "requests",
        "duration_seconds",
        "totals",
        "images",
    ):
        assert key in doc
    assert doc["status"] == "copied"
    assert doc["blobs_pushed"] == 2  # the layer and the config
    assert doc["bytes_read"] == doc["bytes_written"] > SIZE
    assert doc["requests"] > 0
    stats = _stats(port)
    # The sink hashed what it received (--verify) and accepted it under the source's digest.
    assert digest in stats["received_digests"]  # type: ignore[operator]
    assert stats["bytes_received"] == doc["bytes_written"]
    assert stats["digest_rejected"] == 0 and stats["chunked_rejected"] == 0


def test_generator_is_deterministic_and_streamed() -> None:
    sizes = [len(c) for c in synthetic_chunks("s", 9 * 1024 * 1024 + 1)]
    assert sum(sizes) == 9 * 1024 * 1024 + 1 and max(sizes) <= 4 * 1024 * 1024 + 16
    assert synthetic_digest("s", 3000) == synthetic_digest("s", 3000) != synthetic_digest("t", 3000)
    first = next(synthetic_chunks("s", 10 * 1024 * 1024))
    assert first.startswith(b"\x1f\x8b\x08")  # looks like a gzip layer to tools that sniff it
    assert first[10 : 10 + 1024 * 1024] != first[10 + 1024 * 1024 : 10 + 2 * 1024 * 1024]  # blocks differ


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MiB", 512 * 2**20), ("10GiB", 10 * 2**30), ("5TB", 5 * 10**12), ("1.5GiB", 3 * 2**29), ("42", 42)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1GiB", "10 parsecs", "GiB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_size(text)


def test_over_known_maximum_is_refused_up_front() -> None:
    check_blob_limit("us-docker.pkg.dev", 5 * 10**12)  # at the limit: fine
    with pytest.raises(InputError, match=re.escape("maximum blob size of europe-docker.pkg.dev; nothing")):
        check_blob_limit("europe-docker.pkg.dev", 5 * 10**12 + 1)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirror",
            "bench",
            "127.0.0.1:9/a/b",
            "europe-docker.pkg.dev/p/r/x",
            "--size",
            "6TB",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2 and "nothing was sent" in run.stderr
