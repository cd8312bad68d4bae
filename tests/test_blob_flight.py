"""The blob single-flight: one source read per blob and run, whoever wants it and whenever."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirror.auth.credentials import StaticProvider
from mirror.cli.main import main
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.registry.distribution import RegistryRepository
from mirror.registry.ocilayout import OciLayout
from mirror.transport.client import Transport
from mirror.types.digest import Digest
from mirror.types.errors import MirrorError
from tests.support.check import check_complete
from tests.support.faults import FlipBytes
from tests.support.images import fetch_manifest, layer, push_blob, push_image, push_manifest
from tests.support.mediatypes import OCI_MANIFEST

KiB = 1024


def sync(config: Path, *args: str) -> int:
    return main(["sync", "--config", str(config), *args])


def blob_gets(proxy: Any) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in proxy.select("GET", "/blobs/sha256:")]


def test_one_read_per_blob_when_a_destination_repository_has_tags(
    registry_factory: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """42 blobs (10 repositories of 2 tags on 2 shared base layers), two destinations, one
    holding an unrelated tag in one target repository, which shares a base layer: that
    repository's blobs are HEADed first, the other repositories' are sent without a HEAD, and
    every blob is still read once (before, this shape cost 43-45 GETs)."""
    src, d1, d2 = registry_factory.start(), registry_factory.start(), registry_factory.start()
    base = [layer(96 * KiB, "base-os"), layer(48 * KiB, "base-runtime")]
    for i in range(10):
        for tag in ("v1", "v2"):
            push_image(src, f"apps/svc{i}", tag, (2 * KiB + i,), seed=f"svc{i}{tag}", base_layers=base)
    push_image(d1, "mirror/svc3", "theirs", (KiB,), seed="unrelated", base_layers=base[:1])
    proxy = proxy_factory.start(src)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: apps
    source: {proxy.host}/apps/*
    destinations: [{d1.host}/mirror, {d2.host}/mirror]
"""
    )
    report = tmp_path / "r.json"
    assert sync(config, "--once", "--report", str(report)) == 0
    gets = blob_gets(proxy)
    assert len(set(gets)) == 42 and len(gets) == 42, f"{len(gets)} blob GETs for {len(set(gets))} blobs"
    for i in range(10):
        for dst in (d1, d2):
            assert fetch_manifest(dst, f"mirror/svc{i}", "v2").status == 200
    doc = json.loads(report.read_text())
    assert doc["totals"]["blobs_read"] == len(gets)


EMPTY = b"{}"  # the OCI empty config, shared by ORAS artifacts and signatures everywhere


def push_artifact(handle: Any, repo: str, tag: str, payload: bytes) -> str:
    """An OCI 1.1 artifact: the empty config and one layer."""
    config = push_blob(handle, repo, EMPTY)
    data = push_blob(handle, repo, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.example.sbom.v1", "digest": data, "size": len(payload)}],
    }
    return push_manifest(handle, repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)


async def test_a_later_run_sends_a_shared_blob_to_its_new_destinations(registry: Any, tmp_path: Path) -> None:
    """Referrers are copied by a second run of the same engine. A blob the first run already
    moved (the empty config) must still reach the destinations of the second: before, the
    finished transfer was handed back, named no outcome for them, and the manifest was
    written into the layout without its config blob, for good."""
    push_artifact(registry, "art/a", "v1", b"sbom of a")
    push_artifact(registry, "art/b", "v1", b"sbom of b")
    async with Transport(StaticProvider({})) as transport:
        engine = CopyEngine()
        try:
            for name in ("a", "b"):
                source = RegistryRepository(transport, registry.host, f"art/{name}")
                layout = OciLayout(tmp_path / name, create=True)
                [result] = await engine.run([CopyTask(source, "v1", [Destination(layout, "v1")])])
                assert result.status == "copied", result
                assert result.destinations[0].blobs_pushed == 2, result
        finally:
            await engine.aclose()
    empty = Digest.of(EMPTY)
    for name in ("a", "b"):
        assert (tmp_path / name / "blobs" / "sha256" / empty.hex).read_bytes() == EMPTY, name
    assert engine.stats.blobs_pushed == 4 and engine.stats.blobs_read == 4


async def test_a_missing_outcome_is_an_error(tmp_path: Path) -> None:
    """A destination no transfer reached fails; it is never counted as already there."""
    engine = CopyEngine()
    try:
        layout = OciLayout(tmp_path / "never", create=True)
        outcome = await engine._blobs.outcome(Digest.of(EMPTY), layout)
    finally:
        await engine.aclose()
    assert isinstance(outcome, MirrorError) and outcome.kind == "internal"
    assert "no transfer reached" in outcome.message


def unlink_blob(handle: Any, repo: str, digest: str) -> None:
    """Remove a blob from one repository of the registry (its link), as a broken repository has it."""
    link = handle.repository_dir(repo) / "_layers" / "sha256" / digest.split(":", 1)[1] / "link"
    link.unlink()


def win_job(tmp_path: Path, src: Any, dst: Any) -> Path:
    """A config with one job: every repository under win/ of ``src`` into ``dst``/mirror."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"version: 1\njobs:\n  - name: win\n    source: {src.host}/win/*\n"
        f"    destinations: [{dst.host}/mirror]\n"
    )
    return config


def test_a_broken_source_repository_does_not_fail_the_others(registry_pair: Any, tmp_path: Path) -> None:
    """win/a has lost a base layer that win/b also has. Before, each blob was tied to the
    first source repository that needed it: the broken win/a failed win/b too, with an error
    naming win/a. Now every repository that has the blob can serve it."""
    src, dst = registry_pair
    base = layer(48 * KiB, "windows-base")
    a = push_image(src, "win/a", "v1", (KiB,), seed="a", base_layers=[base])
    b = push_image(src, "win/b", "v1", (KiB,), seed="b", base_layers=[base])
    unlink_blob(src, "win/a", base.digest)
    config = win_job(tmp_path, src, dst)
    assert sync(config, "--once") == 0
    assert fetch_manifest(dst, "mirror/a", "v1").digest == a.digest
    assert fetch_manifest(dst, "mirror/b", "v1").digest == b.digest
    assert check_complete(dst, "mirror/a") == [] and check_complete(dst, "mirror/b") == []


def test_a_blob_no_source_serves_names_each_repository(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    base = layer(16 * KiB, "lost-base")
    push_image(src, "win/a", "v1", (KiB,), seed="a", base_layers=[base])
    push_image(src, "win/b", "v1", (KiB,), seed="b", base_layers=[base])
    for repo in ("win/a", "win/b"):
        unlink_blob(src, repo, base.digest)
    config = win_job(tmp_path, src, dst)
    report = tmp_path / "r.json"
    assert sync(config, "--once", "--report", str(report)) == 1
    doc = json.loads(report.read_text())
    for image in doc["images"]:
        [dest] = image["destinations"]
        assert dest["status"] == "failed" and dest["error_kind"] == "not_found", dest
        assert "win/a" in dest["error"] and "win/b" in dest["error"], dest
        assert "could not be read from any of 2 source repositories" in dest["error"], dest


def test_a_flipped_byte_on_the_wire_is_read_again(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """A digest mismatch is usually a fault on the way: the blob is read again (before, the
    first mismatch failed the image for good)."""
    src, dst = registry_pair
    img = push_image(src, "apps/web", "v1", (96 * KiB, KiB), seed="web")
    proxy = proxy_factory.start(src)
    victim = img.layers[0].digest
    # Two reads in a row come back flipped, each at another place.
    faults = [
        proxy.add_fault(FlipBytes(o, method="GET", path=victim, skip=i)) for i, o in enumerate((50 * KiB, 7))
    ]
    assert main(["copy", "--quiet", f"{proxy.host}/apps/web:v1", f"{dst.host}/apps/web:v1"]) == 0
    assert [f.fired for f in faults] == [1, 1] and len(proxy.select("GET", victim)) == 3
    assert fetch_manifest(dst, "apps/web", "v1").digest == img.digest
    assert check_complete(dst, "apps/web") == []
