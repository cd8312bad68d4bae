"""A source that names its manifests with sha512, a destination (docker-registry) that uses sha256:
the copy keeps the bytes, and the next run sees the same manifest, not a moved tag."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from tests.support.evil import Answer, EvilRegistry
from tests.support.images import fetch_manifest
from tests.support.mediatypes import OCI_MANIFEST


@pytest.fixture
def sha512_source() -> Iterator[tuple[EvilRegistry, bytes, str]]:
    with EvilRegistry() as server:
        img = server.image("apps/web", None, seed="sha512")
        digest = "sha512:" + hashlib.sha512(img.manifest).hexdigest()
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest}
        for ref in ("v1", digest):
            server.answer("GET", f"/v2/apps/web/manifests/{ref}", Answer(200, headers, img.manifest))
            head = {**headers, "Content-Length": str(len(img.manifest))}
            server.answer("HEAD", f"/v2/apps/web/manifests/{ref}", Answer(200, head))
        yield server, img.manifest, digest


def copy(src: str, dst: str, report: Path) -> tuple[int, dict[str, Any]]:
    code = main(["copy", "--quiet", "--report", str(report), src, dst])
    return code, json.loads(report.read_text())


def test_sha512_source_to_sha256_destination(
    sha512_source: tuple[EvilRegistry, bytes, str], registry: Any, tmp_path: Path
) -> None:
    source, manifest, digest = sha512_source
    src, dst = f"{source.host}/apps/web:v1", f"{registry.host}/mirror/web:v1"
    code, first = copy(src, dst, tmp_path / "first.json")
    assert code == 0 and first["status"] == "copied" and first["digest"] == digest
    assert fetch_manifest(registry, "mirror/web", "v1").data == manifest  # the same bytes
    # Next run: the destination answers with its sha256 name for those bytes; that is the
    # same manifest (skipped), not another one (which would be a tag conflict).
    code, again = copy(src, dst, tmp_path / "again.json")
    assert code == 0 and again["status"] == "skipped", again
    assert again["bytes_written"] == 0
