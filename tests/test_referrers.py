"""Referrers (signatures, SBOMs, attestations) follow their images, completely or with an error.

Against the evil registry (it serves the OCI referrers API, paginated, or errors) and real
registries (distribution 2.8 has no referrers API: the `sha256-<hex>[.suffix]` fallback tags).
Each test failed before its fix: the second page of the referrers API was never read; an error
listing referrers was swallowed (exit 0); a single-image job or `mirror copy` copied no
referrers; the referrers of tags the filter excluded were copied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from tests.support.evil import Answer, EvilImage, EvilRegistry
from tests.support.images import manifest_exists, push_image
from tests.support.mediatypes import OCI_MANIFEST

SBOM = "application/spdx+json"


@pytest.fixture
def evil() -> Iterator[EvilRegistry]:
    with EvilRegistry() as server:
        yield server


def artifact(
    evil: EvilRegistry, repo: str, subject: EvilImage, seed: str, tag: str | None = None
) -> EvilImage:
    """A small artifact whose `subject` is `subject` (served by digest, and by `tag`)."""

    def edit(doc: dict[str, Any]) -> None:
        doc["artifactType"] = SBOM
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest)}

    return evil.image(repo, tag, seed=seed, edit=edit)


def descriptor(image: EvilImage) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": image.digest,
        "size": len(image.manifest),
        "artifactType": SBOM,
    }


def fallback_tag(digest: str, suffix: str = "") -> str:
    return "sha256-" + digest.split(":", 1)[1] + suffix


def layout_has(root: Path, digest: str) -> bool:
    algorithm, hex_digest = digest.split(":")
    return (root / "blobs" / algorithm / hex_digest).is_file()


def test_every_page_of_the_referrers_api_and_referrers_of_referrers_are_copied(
    evil: EvilRegistry, tmp_path: Path
) -> None:
    app = evil.image("app", "v1", seed="app")
    found = [artifact(evil, "app", app, f"sbom-{i}") for i in range(3)]
    evil.referrers("app", app.digest, [descriptor(a) for a in found], page_size=2)
    for image in found:
        evil.referrers("app", image.digest, [])
    # A signature of the first SBOM, by the fallback tag scheme.
    signature_tag = fallback_tag(found[0].digest, ".sig")
    signature = evil.image("app", signature_tag, seed="sig")
    evil.tags("app", ["v1", signature_tag])
    report = tmp_path / "report.json"
    out = tmp_path / "out"
    code = main(
        ["copy", "--referrers", "-q", "--report", str(report), f"{evil.host}/app:v1", f"oci:{out}:v1"]
    )
    assert code == 0
    assert all(layout_has(out, a.digest) for a in found)
    assert layout_has(out, signature.digest)
    assert len(evil.seen("GET", f"/referrers/{app.digest}")) == 2  # both pages
    doc = json.loads(report.read_text())
    assert sorted(i["status"] for i in doc["images"]) == ["copied"] * 5


def test_an_error_listing_referrers_fails_the_run(evil: EvilRegistry, tmp_path: Path) -> None:
    app = evil.image("app", "v1", seed="app")
    error = Answer(
        500, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNKNOWN","message":"down"}]}'
    )
    evil.answer("GET", f"/v2/app/referrers/{app.digest}", error)
    config = tmp_path / "c.yaml"
    report = tmp_path / "report.json"
    config.write_text(
        f"""
version: 1
jobs:
  - name: signed
    source: {evil.host}/app:v1
    destinations: ["oci:{tmp_path / "out"}"]
    referrers: true
"""
    )
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1
    doc = json.loads(report.read_text())
    failed = [i for i in doc["images"] if i["status"] == "failed"]
    assert len(failed) == 1, doc["images"]
    assert "referrers of" in failed[0]["error"] and "could not be listed" in failed[0]["error"]
    assert "HTTP 500" in failed[0]["error"]
    assert [i["status"] for i in doc["images"] if i["status"] != "failed"] == ["copied"]


def test_a_single_image_job_copies_its_referrers(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    img = push_image(src, "apps/signed", "v1", seed="signed")
    sig_tag = fallback_tag(img.digest, ".sig")
    push_image(src, "apps/signed", sig_tag, layer_sizes=(300,), seed="signature")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: signed
    source: {src.host}/apps/signed:v1
    destinations: [{dst.host}/m]
    referrers: true
"""
    )
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert manifest_exists(dst, "m/signed", "v1") and manifest_exists(dst, "m/signed", sig_tag)


def test_referrers_of_excluded_tags_are_not_copied(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    release = push_image(src, "apps/web", "v1", seed="release")
    dev = push_image(src, "apps/web", "dev", seed="dev")
    release_sig, dev_sig = fallback_tag(release.digest, ".sig"), fallback_tag(dev.digest, ".sig")
    push_image(src, "apps/web", release_sig, layer_sizes=(300,), seed="release-sig")
    push_image(src, "apps/web", dev_sig, layer_sizes=(300,), seed="dev-sig")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst.host}/m]
    tags: {{include: ["^v"]}}
    referrers: true
"""
    )
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert manifest_exists(dst, "m/web", "v1") and manifest_exists(dst, "m/web", release_sig)
    assert not manifest_exists(dst, "m/web", "dev") and not manifest_exists(dst, "m/web", dev_sig)


def test_mirror_copy_copies_fallback_referrers_and_moves_their_tag(
    registry_pair: Any, tmp_path: Path
) -> None:
    """The fallback scheme rewrites its tag when a referrer is added: the destination follows."""
    src, dst = registry_pair
    img = push_image(src, "apps/cli", "v1", seed="cli")
    sig_tag = fallback_tag(img.digest, ".sig")
    push_image(src, "apps/cli", sig_tag, layer_sizes=(300,), seed="first-signature")
    args = ["copy", "-q", "--referrers", f"{src.host}/apps/cli:v1", f"{dst.host}/m/cli:v1"]
    assert main(args) == 0
    assert manifest_exists(dst, "m/cli", sig_tag)
    second = push_image(src, "apps/cli", sig_tag, layer_sizes=(300, 200), seed="two-signatures")
    assert main(args) == 0
    assert manifest_exists(dst, "m/cli", second.digest)
    assert main(["copy", "-q", f"{src.host}/apps/cli:v1", f"{dst.host}/m/other:v1"]) == 0
    assert not manifest_exists(dst, "m/other", sig_tag)  # without --referrers, none
