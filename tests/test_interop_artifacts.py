"""Artifacts and referrers pushed with the ORAS SDK, mirrored, and pulled back with ORAS, skopeo
and ctr.

Source content (repository `art/bundle`): an artifact with a custom config media type, two
files of custom media types and manifest annotations (`v1`); a signature pushed with
`subject=` (pre-1.1 style: the config media type is its type) and an SBOM with a top-level
`artifactType` and the empty config (OCI 1.1), both referring to `v1`; the referrers tag-schema
index `sha256-<hex>` listing both (distribution 2.8 has no referrers API). `art/model:v1` is an
OCI 1.1 artifact with no subject. `art/app` is buildah's 3-platform index with an attestation
referring to the index.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.content import sha256_digest
from tests.support.images import list_tags
from tests.support.interop import TAG, Run, Source, layout_blob, layout_index, mirror_copy, mirror_sync
from tests.support.registry import RegistryFactory, RegistryHandle
from tests.support.skopeo import run_skopeo, skopeo_copy, skopeo_inspect_raw
from tests.support.tools.artifacts import Oras, Pushed
from tests.support.tools.containerd import Containerd

pytestmark = pytest.mark.interop

PAYLOAD = "application/vnd.example.payload.v1+txt"
DATA = "application/vnd.example.data.v1"
CONFIG = "application/vnd.example.config.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/spdx+json"
MODEL = "application/vnd.example.model.v1"
ATTESTATION = "application/vnd.in-toto+json"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class Artifacts:
    oras: Oras
    source: RegistryHandle
    dst: RegistryHandle
    layouts: Path
    bundle: Pushed
    bundle_files: dict[str, bytes]
    signature: Pushed
    sbom: Pushed
    referrers_index: Pushed
    model: Pushed
    model_files: dict[str, bytes]
    app_attestation: Pushed
    app_index: Pushed
    sync: Run
    copies: dict[str, Run]


@pytest.fixture(scope="module")
def artifacts(
    interop_source: Source, interop_registries: RegistryFactory, tmp_path_factory: pytest.TempPathFactory
) -> Artifacts:
    work = tmp_path_factory.mktemp("interop-artifacts")
    src = interop_source.registry
    oras = Oras(src.host, work / "oras")
    bundle_files = {
        "payload.txt": b"payload " + os.urandom(8).hex().encode(),
        "data.bin": os.urandom(96 * 1024),
    }
    bundle = oras.push_artifact(
        "art/bundle",
        "v1",
        {"payload.txt": (bundle_files["payload.txt"], PAYLOAD), "data.bin": (bundle_files["data.bin"], DATA)},
        config=(b'{"kind":"demo"}', CONFIG),
        annotations={"org.example.note": "made with oras"},
    )
    signature = oras.push_referrer("art/bundle", bundle, "sig.txt", os.urandom(64), SIGNATURE, tag="sig")
    sbom = oras.push_typed_referrer(
        "art/bundle", bundle, SBOM, "sbom.spdx.json", b'{"spdxVersion":"SPDX-2.3"}', tag="sbom"
    )
    referrers_index = oras.write_referrers_index("art/bundle", bundle, [signature, sbom])
    model_files = {"weights.bin": os.urandom(32 * 1024)}
    model = oras.push_typed_referrer(
        "art/model", None, MODEL, "weights.bin", model_files["weights.bin"], tag="v1"
    )

    skopeo_copy(interop_source.ref("oci-index"), f"{src.host}/art/app:{TAG}")
    app_index = oras.manifest("art/app", TAG)
    attestation = oras.push_typed_referrer(
        "art/app", app_index, ATTESTATION, "provenance.json", b'{"_type":"x"}'
    )
    oras.write_referrers_index("art/app", app_index, [attestation])

    dst = interop_registries.start()
    sync = mirror_sync(
        work,
        f"""
version: 1
defaults:
  referrers: true
jobs:
  - name: bundle
    source: {src.host}/art/bundle
    destinations: [{dst.host}/synced]
    tags: {{include: ["^v1$"]}}
  - name: app
    source: {src.host}/art/app
    destinations: [{dst.host}/synced]
    tags: {{include: ["^1$"]}}
""",
    )
    layouts = work / "layouts"
    copies = {}
    for repo in ("bundle", "model"):
        copies[repo] = mirror_copy(
            work, f"{src.host}/art/{repo}:v1", f"{dst.host}/copy/{repo}:v1", f"oci:{layouts}/{repo}:v1"
        )
        copies[f"{repo}-oci"] = mirror_copy(work, f"oci:{layouts}/{repo}:v1", f"{dst.host}/oci/{repo}:v1")
    return Artifacts(
        oras, src, dst, layouts, bundle, bundle_files, signature, sbom, referrers_index,
        model, model_files, attestation, app_index, sync, copies,
    )  # fmt: skip


def test_the_artifacts_are_what_oras_was_asked_for(artifacts: Artifacts) -> None:
    bundle = artifacts.bundle.json()
    assert bundle["config"]["mediaType"] == CONFIG
    assert [x["mediaType"] for x in bundle["layers"]] == [PAYLOAD, DATA]
    assert bundle["annotations"] == {"org.example.note": "made with oras"}
    assert artifacts.signature.json()["subject"]["digest"] == artifacts.bundle.digest
    assert artifacts.sbom.json()["artifactType"] == SBOM
    assert artifacts.sbom.json()["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert artifacts.model.json()["artifactType"] == MODEL and "subject" not in artifacts.model.json()
    assert (
        artifacts.app_attestation.json()["subject"]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    )


def test_mirror_reports_every_artifact_copied(artifacts: Artifacts) -> None:
    assert artifacts.sync.code == 0, artifacts.sync.errors()
    statuses = artifacts.sync.statuses()
    assert set(statuses.values()) == {"copied"}
    # v1 and its referrers index, and 1 and its referrers index (the index's children: the referrers)
    assert len(statuses) == 4, statuses
    for name, run in artifacts.copies.items():
        assert run.code == 0, (name, run.errors())


@pytest.mark.parametrize("route", ["synced", "copy", "oci"])
def test_oras_pulls_the_files_back(artifacts: Artifacts, route: str, tmp_path: Path) -> None:
    """Every route keeps the artifact byte for byte: skopeo sees the same manifest and ORAS pulls
    the same files under the same names."""
    dst = artifacts.dst
    assert skopeo_inspect_raw(f"{dst.host}/{route}/bundle:v1") == artifacts.bundle.data
    got = artifacts.oras.pull(dst.host, f"{route}/bundle", "v1", tmp_path / "bundle")
    assert got == artifacts.bundle_files
    if route != "synced":
        assert skopeo_inspect_raw(f"{dst.host}/{route}/model:v1") == artifacts.model.data
        assert (
            artifacts.oras.pull(dst.host, f"{route}/model", "v1", tmp_path / "model") == artifacts.model_files
        )


def test_referrers_follow_their_subjects(artifacts: Artifacts, tmp_path: Path) -> None:
    """`referrers: true` brings the referrers tag-schema index and every referrer it lists (the
    tags `sig` and `sbom` themselves are filtered out), byte for byte; ORAS pulls the signature
    by digest."""
    dst, a = artifacts.dst, artifacts
    fallback = a.bundle.digest.replace(":", "-")
    assert set(list_tags(dst, "synced/bundle")) == {"v1", fallback}
    assert skopeo_inspect_raw(f"{dst.host}/synced/bundle:{fallback}") == a.referrers_index.data
    for referrer in (a.signature, a.sbom):
        assert skopeo_inspect_raw(f"{dst.host}/synced/bundle@{referrer.digest}") == referrer.data
    sig = a.oras.pull(dst.host, "synced/bundle", a.signature.digest, tmp_path / "sig")
    assert list(sig) == ["sig.txt"]
    app_fallback = a.app_index.digest.replace(":", "-")
    assert set(list_tags(dst, "synced/app")) == {TAG, app_fallback}
    assert skopeo_inspect_raw(f"{dst.host}/synced/app@{a.app_attestation.digest}") == a.app_attestation.data


def test_ctr_fetches_the_artifact(artifacts: Artifacts, containerd: Containerd) -> None:
    """containerd cannot unpack an artifact, but `ctr content fetch` stores it: same manifest and
    the same file bytes."""
    ref = f"{artifacts.dst.host}/oci/bundle:v1"
    containerd.fetch(ref)
    assert containerd.content(artifacts.bundle.digest) == artifacts.bundle.data
    layers = artifacts.bundle.json()["layers"]
    assert [containerd.content(x["digest"]) for x in layers] == list(artifacts.bundle_files.values())


def test_skopeo_reads_the_artifact_layout_mirror_wrote(artifacts: Artifacts, tmp_path: Path) -> None:
    layout = f"oci:{artifacts.layouts / 'bundle'}:v1"
    assert run_skopeo(["inspect", "--raw", layout]).stdout == artifacts.bundle.data
    run_skopeo(["copy", "-q", "--preserve-digests", layout, f"oci:{tmp_path / 'again'}:v1"])
    assert layout_index(tmp_path / "again")["manifests"][0]["digest"] == artifacts.bundle.digest


def test_single_image_job_brings_its_referrers(artifacts: Artifacts, tmp_path: Path) -> None:
    """A job naming one image with `referrers: true` copies what refers to it: the referrers
    tag-schema index and each referrer, byte for byte."""
    a = artifacts
    run = mirror_sync(
        tmp_path,
        f"""
version: 1
jobs:
  - name: one
    source: {a.source.host}/art/bundle:v1
    destinations: [{a.dst.host}/single]
    referrers: true
""",
    )
    assert run.code == 0, run.errors()
    fallback = a.bundle.digest.replace(":", "-")
    assert set(list_tags(a.dst, "single/bundle")) == {"v1", fallback}
    assert skopeo_inspect_raw(f"{a.dst.host}/single/bundle:{fallback}") == a.referrers_index.data
    for referrer in (a.signature, a.sbom):
        assert skopeo_inspect_raw(f"{a.dst.host}/single/bundle@{referrer.digest}") == referrer.data


def test_mirror_copy_asks_for_referrers(artifacts: Artifacts, tmp_path: Path) -> None:
    """`mirror copy --referrers` of the artifact brings its signature and SBOM to a registry and
    to an OCI layout in one pass, findable in both (the referrers tag; untagged index.json
    entries in the layout); skopeo reads them back from both."""
    a = artifacts
    layout = tmp_path / "bundle"
    run = mirror_copy(
        tmp_path,
        "--referrers",
        f"{a.source.host}/art/bundle:v1",
        f"{a.dst.host}/copyref/bundle:v1",
        f"oci:{layout}:v1",
    )
    assert run.code == 0, run.errors()
    fallback = a.bundle.digest.replace(":", "-")
    assert set(list_tags(a.dst, "copyref/bundle")) == {"v1", fallback}
    entries = layout_index(layout)["manifests"]
    tags = {e["annotations"][REF_NAME]: e["digest"] for e in entries if REF_NAME in e.get("annotations", {})}
    assert tags == {"v1": a.bundle.digest, fallback: a.referrers_index.digest}
    # Each referrer has an untagged entry too, as ORAS keeps them, with its type: found by a scan.
    untagged = {
        e["digest"]: e.get("artifactType") for e in entries if REF_NAME not in e.get("annotations", {})
    }
    assert untagged == {
        a.signature.digest: a.signature.json()["config"]["mediaType"],
        a.sbom.digest: SBOM,
    }
    for referrer in (a.signature, a.sbom):
        assert skopeo_inspect_raw(f"{a.dst.host}/copyref/bundle@{referrer.digest}") == referrer.data
        assert layout_blob(layout, referrer.digest) == referrer.data
        m = referrer.json()
        for desc in (m["config"], *m["layers"]):  # the layout is complete: ORAS's `{}` config too
            assert sha256_digest(layout_blob(layout, desc["digest"])) == desc["digest"]
    assert run_skopeo(["inspect", "--raw", f"oci:{layout}:{fallback}"]).stdout == a.referrers_index.data

    # Onward from the layout: found again, listed under the referrers tag, and ORAS pulls the
    # signature by the digest that index gives.
    onward = mirror_copy(tmp_path, "--referrers", f"oci:{layout}:v1", f"{a.dst.host}/onward/bundle:v1")
    assert onward.code == 0, onward.errors()
    index = json.loads(skopeo_inspect_raw(f"{a.dst.host}/onward/bundle:{fallback}"))
    listed = {m["digest"]: m.get("artifactType") for m in index["manifests"]}
    assert listed == {a.signature.digest: a.signature.json()["config"]["mediaType"], a.sbom.digest: SBOM}
    sig = a.oras.pull(a.dst.host, "onward/bundle", a.signature.digest, tmp_path / "onward-sig")
    assert list(sig) == ["sig.txt"]
