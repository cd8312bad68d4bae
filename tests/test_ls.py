"""`mirror ls`: images of a repository with digests, tags, platforms and create time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from tests.support.images import push_image, push_index


def test_ls_registry_table_and_json(registry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    one = push_image(registry, "apps/web", "v1", seed="one")
    push_image(registry, "apps/web", "stable", seed="one")  # same image, second tag
    idx = push_index(registry, "apps/web", "v2", ["linux/amd64", "linux/arm64"])
    assert main(["ls", f"{registry.host}/apps/web", "--include-tags"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["IMAGE", "DIGEST", "CREATE_TIME", "PLATFORMS", "TAGS"]
    assert len(lines) == 3
    assert any(one.digest in line and "stable,v1" in line for line in lines)
    assert any(idx.digest in line and "linux/amd64,linux/arm64" in line for line in lines)
    assert main(["ls", f"{registry.host}/apps/web", "--format", "json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert {d["digest"] for d in docs} == {one.digest, idx.digest}
    assert all("tags" not in d for d in docs)


def test_ls_layout_shows_create_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    capsys.readouterr()
    assert main(["ls", f"oci:{tmp_path / 'demo' / 'copy'}", "--format", "json", "--include-tags"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["created"] == "2026-01-01T00:00:00Z" and doc["tags"] == ["demo"]
    assert doc["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def test_ls_rejects_a_tag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "127.0.0.1:1/apps/web:v1"]) == 2
    assert "without a tag" in capsys.readouterr().err


def test_ls_platforms_once_and_for_single_images(registry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Attestation manifests (unknown/unknown) are not platforms, and each platform is named
    once; an image that is not an index shows the platform its config names."""
    from tests.support.attestations import push_buildkit_index

    push_buildkit_index(registry, "apps/bk", "v1", ["linux/amd64", "linux/arm64"])
    single = push_image(registry, "apps/bk", "one", seed="single", platform="linux/arm/v7")
    assert main(["ls", f"{registry.host}/apps/bk", "--format", "json", "--include-tags"]) == 0
    docs = {d["tags"][0]: d for d in json.loads(capsys.readouterr().out)}
    assert docs["v1"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert docs["one"]["platforms"] == ["linux/arm/v7"] and docs["one"]["digest"] == single.digest
