"""Referrers mirror copies can be found where they land, not only stored (OCI distribution spec 1.1).

A registry without the referrers API (distribution 2.8 answers 404 on `/referrers/`) gets the
referrers tag schema: an OCI index tagged `sha256-<hex of the subject>` listing every referrer
(mediaType, digest, size, artifactType, annotations), read-modify-written with a conditional PUT
and read back; a registry that answers `OCI-Subject` gets none. An OCI layout (`oci:`, `s3://`)
lists each referrer in `index.json` twice over: an untagged entry (ORAS keeps every manifest so
and finds referrers by scanning them) and the referrers tag (regclient's `ocidir` reads that).
mirror reading a layout finds referrers by scanning, as ORAS does. Clients here: plain HTTP
reads of the registry, `index.json` and the blobs read as files or S3 objects, skopeo.

Before the fix a referrer copied to distribution 2.8 or a layout was stored by digest and listed
nowhere; a layout source yielded no referrers unless a fallback tag named them; and `mirror
verify` called the referrers tag mirror must keep an extra tag, which prune would delete.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mirror.cli.main import main
from tests.support.evil import EvilRegistry
from tests.support.faults import ErrorBurst, LostWrite, SubjectHeader
from tests.support.images import list_tags, manifest_exists, push_blob, push_image, push_manifest
from tests.support.mediatypes import OCI_INDEX, OCI_MANIFEST
from tests.support.skopeo import run_skopeo, skopeo_copy

REF_NAME = "org.opencontainers.image.ref.name"
SIGNATURE_CONFIG = "application/vnd.example.signature.config.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/spdx+json"
EMPTY = "application/vnd.oci.empty.v1+json"


@dataclass(frozen=True)
class Referrer:
    digest: str
    data: bytes
    blobs: dict[str, bytes]
    artifact_type: str
    annotations: dict[str, str]

    def descriptor(self) -> dict[str, Any]:
        """Its entry in a referrers index, as the spec spells it out."""
        return {
            "mediaType": OCI_MANIFEST,
            "digest": self.digest,
            "size": len(self.data),
            "artifactType": self.artifact_type,
            "annotations": self.annotations,
        }


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_referrers(subject: str, subject_size: int) -> list[Referrer]:
    """A signature (pre-1.1 style: its type is its config's media type) and an SBOM (OCI 1.1:
    `artifactType`, the empty config), both with a `subject` and annotations."""
    made = []
    for config, config_type, layer, layer_type, artifact_type, top, notes in (
        (b'{"signer":"release"}', SIGNATURE_CONFIG, uuid.uuid4().bytes * 4, SIGNATURE, "", SIGNATURE_CONFIG,
         {"org.example.signed-by": "release-key"}),
        (b"{}", EMPTY, b'{"spdxVersion":"SPDX-2.3","name":"app"}', SBOM, SBOM, SBOM,
         {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"}),
    ):  # fmt: skip
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": sha256(layer), "size": len(layer)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
            "annotations": notes,
        }
        if artifact_type:
            doc["artifactType"] = artifact_type
        data = json.dumps(doc, separators=(",", ":")).encode()
        blobs = {sha256(config): config, sha256(layer): layer}
        made.append(Referrer(sha256(data), data, blobs, top, notes))
    return made


def referrers_tag(digest: str) -> str:
    return digest.replace(":", "-")


def index_doc(descriptors: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}).encode()


# -- what a client finds -------------------------------------------------------------------------


def registry_referrers(handle: Any, repo: str, subject: str) -> dict[str, dict[str, Any]]:
    """The referrers a client of a registry without the referrers API finds: the index under the
    subject's referrers tag (distribution 2.8 answers 404 on the API itself)."""
    assert requests.get(f"{handle.url}/v2/{repo}/referrers/{subject}", timeout=10).status_code == 404
    r = requests.get(
        f"{handle.url}/v2/{repo}/manifests/{referrers_tag(subject)}",
        headers={"Accept": OCI_INDEX},
        timeout=10,
    )
    assert r.status_code == 200, (repo, r.status_code)
    doc = r.json()
    assert doc["mediaType"] == OCI_INDEX and r.headers["Content-Type"] == OCI_INDEX
    return {m["digest"]: m for m in doc["manifests"]}


Read = Callable[[str], bytes]


def layout_referrers(index: dict[str, Any], read: Read, subject: str) -> dict[str, dict[str, Any]]:
    """What ORAS finds in a layout: the entries of index.json whose manifest has that subject."""
    found = {}
    for entry in index["manifests"]:
        doc = json.loads(read(entry["digest"]))
        if (doc.get("subject") or {}).get("digest") == subject:
            found[entry["digest"]] = entry
    return found


def layout_tag_referrers(index: dict[str, Any], read: Read, subject: str) -> dict[str, dict[str, Any]]:
    """What regclient finds in a layout: the index under the subject's referrers tag."""
    [entry] = [
        e for e in index["manifests"] if (e.get("annotations") or {}).get(REF_NAME) == referrers_tag(subject)
    ]
    doc = json.loads(read(entry["digest"]))
    assert doc["mediaType"] == OCI_INDEX
    return {m["digest"]: m for m in doc["manifests"]}


def oci_reader(root: Path) -> tuple[dict[str, Any], Read]:
    def read(digest: str) -> bytes:
        return (root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    return json.loads((root / "index.json").read_text()), read


def s3_reader(client: Any, bucket: str, prefix: str) -> tuple[dict[str, Any], Read]:
    def get(key: str) -> bytes:
        data: bytes = client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
        return data

    return json.loads(get("index.json")), lambda digest: get(f"blobs/sha256/{digest.split(':')[1]}")


def assert_layout_findable(
    index: dict[str, Any], read: Read, subject: str, referrers: list[Referrer]
) -> None:
    scanned = layout_referrers(index, read, subject)
    assert set(scanned) == {r.digest for r in referrers}
    for r in referrers:
        if REF_NAME not in (scanned[r.digest].get("annotations") or {}):  # mirror's own entry
            assert scanned[r.digest] == r.descriptor()
        assert read(r.digest) == r.data and all(read(d) == b for d, b in r.blobs.items())
    assert set(layout_tag_referrers(index, read, subject)) == {r.digest for r in referrers}


def copy(*args: str) -> int:
    return main(["copy", "--quiet", "--referrers", *args])


# -- sources ------------------------------------------------------------------------------------


@dataclass
class Signed:
    subject: str
    referrers: list[Referrer]


def signed_in_registry(handle: Any, repo: str) -> Signed:
    """v1 with a signature and an SBOM pushed with `subject`, listed under the referrers tag as a
    client pushing to a registry without the referrers API must (spec 1.1)."""
    image = push_image(handle, repo, "v1", seed=f"signed-{repo}")
    referrers = make_referrers(image.digest, len(image.manifest))
    for r in referrers:
        for blob in r.blobs.values():
            push_blob(handle, repo, blob)
        push_manifest(handle, repo, r.digest, r.data, OCI_MANIFEST)
    index = index_doc([r.descriptor() for r in referrers])
    push_manifest(handle, repo, referrers_tag(image.digest), index, OCI_INDEX)
    return Signed(image.digest, referrers)


def oras_style_layout(root: Path, handle: Any, repo: str, *more: str) -> Signed:
    """A layout the way ORAS (oras-go's OCI store) writes one: the image tagged (and the tags
    ``more`` of other images), each referrer an untagged entry of index.json (descriptor with
    artifactType and annotations), no referrers tag."""
    image = push_image(handle, repo, "v1", seed=f"oras-{repo}")
    skopeo_copy(f"{handle.host}/{repo}:v1", f"oci:{root}:v1")
    for tag in more:
        push_image(handle, repo, tag, seed=f"oras-{repo}-{tag}")
        skopeo_copy(f"{handle.host}/{repo}:{tag}", f"oci:{root}:{tag}")
    referrers = make_referrers(image.digest, len(image.manifest))
    blobs = root / "blobs" / "sha256"
    index = json.loads((root / "index.json").read_text())
    for r in referrers:
        for digest, data in (*r.blobs.items(), (r.digest, r.data)):
            (blobs / digest.split(":")[1]).write_bytes(data)
        index["manifests"].append(r.descriptor())
    (root / "index.json").write_text(json.dumps(index))
    return Signed(image.digest, referrers)


@pytest.fixture
def evil() -> Iterator[EvilRegistry]:
    with EvilRegistry() as server:
        yield server


def signed_with_api(evil: EvilRegistry, repo: str) -> Signed:
    """v1 on a registry with the referrers API: its referrers are found there, no tag names them."""
    image = evil.image(repo, "v1", seed="api")
    referrers = make_referrers(image.digest, len(image.manifest))
    for r in referrers:
        for data in r.blobs.values():
            evil.blob(repo, data)
        evil.manifest(repo, None, r.data, OCI_MANIFEST)
        evil.referrers(repo, r.digest, [])
    evil.referrers(repo, image.digest, [r.descriptor() for r in referrers])
    evil.tags(repo, ["v1"])
    return Signed(image.digest, referrers)


# -- tests --------------------------------------------------------------------------------------


def test_referrers_are_findable_in_a_registry_and_layouts_and_copied_onward(
    registry_pair: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src, dst = registry_pair
    signed = signed_in_registry(src, "apps/app")
    layout = tmp_path / "layout"
    out = (f"{dst.host}/m/app:v1", f"oci:{layout}:v1", f"s3://{bucket}/backup/app:v1")
    assert copy(f"{src.host}/apps/app:v1", *out) == 0
    want = {r.digest: r.descriptor() for r in signed.referrers}
    assert registry_referrers(dst, "m/app", signed.subject) == want
    assert_layout_findable(*oci_reader(layout), signed.subject, signed.referrers)
    assert_layout_findable(*s3_reader(s3, bucket, "backup/app"), signed.subject, signed.referrers)

    # Onward: mirror reading each copy finds both referrers again, and lists them where they land.
    onward = tmp_path / "onward"
    assert copy(f"oci:{layout}:v1", f"{dst.host}/from-oci/app:v1") == 0
    assert copy(f"s3://{bucket}/backup/app:v1", f"{dst.host}/from-s3/app:v1") == 0
    assert copy(f"{dst.host}/m/app:v1", f"oci:{onward}:v1") == 0
    for repo in ("from-oci/app", "from-s3/app"):
        assert registry_referrers(dst, repo, signed.subject) == want, repo
        for r in signed.referrers:
            assert manifest_exists(dst, repo, r.digest)
    assert_layout_findable(*oci_reader(onward), signed.subject, signed.referrers)
    assert run_skopeo(["inspect", "--raw", f"oci:{onward}:v1"]).stdout  # the image still reads


def test_referrers_found_through_the_api_are_listed_by_mirror(
    evil: EvilRegistry, registry: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A source with the referrers API names no referrers tag: mirror writes the index itself,
    once per referrer, with the descriptor the spec asks for; a second copy changes nothing."""
    signed = signed_with_api(evil, "app")
    layout = tmp_path / "layout"
    out = (f"{registry.host}/m/app:v1", f"oci:{layout}:v1", f"s3://{bucket}/app:v1")
    assert copy(f"{evil.host}/app:v1", *out) == 0
    want = {r.digest: r.descriptor() for r in signed.referrers}
    assert registry_referrers(registry, "m/app", signed.subject) == want
    for index, read in (oci_reader(layout), s3_reader(s3, bucket, "app")):
        assert_layout_findable(index, read, signed.subject, signed.referrers)
        untagged = [e for e in index["manifests"] if REF_NAME not in (e.get("annotations") or {})]
        assert sorted(e["digest"] for e in untagged) == sorted(want)
        assert layout_tag_referrers(index, read, signed.subject) == want
    tags_before = set(list_tags(registry, "m/app"))
    index_before = (layout / "index.json").read_bytes()
    assert copy(f"{evil.host}/app:v1", *out) == 0
    assert registry_referrers(registry, "m/app", signed.subject) == want
    assert set(list_tags(registry, "m/app")) == tags_before == {"v1", referrers_tag(signed.subject)}
    assert (layout / "index.json").read_bytes() == index_before


def test_a_registry_answering_oci_subject_gets_no_referrers_tag(
    evil: EvilRegistry, registry: Any, proxy_factory: Any
) -> None:
    signed = signed_with_api(evil, "app")
    proxy = proxy_factory.start(registry)
    proxy.add_fault(SubjectHeader(signed.subject))
    assert copy(f"{evil.host}/app:v1", f"{proxy.host}/m/app:v1") == 0
    assert set(list_tags(registry, "m/app")) == {"v1"}
    assert all(manifest_exists(registry, "m/app", r.digest) for r in signed.referrers)
    assert not proxy.select(path_contains=f"/manifests/{referrers_tag(signed.subject)}")


@pytest.mark.parametrize("fault", ["lost-write", "precondition-failed"])
def test_a_lost_update_of_the_referrers_tag_is_noticed_and_redone(
    evil: EvilRegistry, registry: Any, proxy_factory: Any, fault: str
) -> None:
    """The write is conditional (If-None-Match: * first, then If-Match on the ETag read): a 412
    is redone on the new index; a write lost on a registry that ignores conditions is seen when
    the index is read back, and redone."""
    signed = signed_with_api(evil, "app")
    tag = referrers_tag(signed.subject)
    proxy = proxy_factory.start(registry)
    path = rf"/manifests/{tag}$"
    proxy.add_fault(
        LostWrite(method="PUT", path=path)
        if fault == "lost-write"
        else ErrorBurst(412, method="PUT", path=path)
    )
    assert copy(f"{evil.host}/app:v1", f"{proxy.host}/m/app:v1") == 0
    assert registry_referrers(registry, "m/app", signed.subject) == {
        r.digest: r.descriptor() for r in signed.referrers
    }
    puts = proxy.select("PUT", f"/manifests/{tag}")
    assert len(puts) == 3  # one per referrer, and the one redone
    assert puts[0].header("If-None-Match") == "*"
    assert all(p.header("If-Match") for p in puts[1:] if not p.has_header("If-None-Match"))
    assert any(p.header("If-Match") for p in puts)


def test_referrers_in_a_layout_written_as_oras_does_are_found(registry_pair: Any, tmp_path: Path) -> None:
    """Untagged entries of index.json, no referrers tag: mirror scans the manifests for subjects."""
    src, dst = registry_pair
    layout = tmp_path / "oras"
    signed = oras_style_layout(layout, src, "apps/oras")
    assert copy(f"oci:{layout}:v1", f"{dst.host}/m/oras:v1") == 0
    assert registry_referrers(dst, "m/oras", signed.subject) == {
        r.digest: r.descriptor() for r in signed.referrers
    }


def test_verify_and_prune_keep_the_referrers_tag_of_a_present_subject(
    registry_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = registry_pair
    layout = tmp_path / "web"
    signed = oras_style_layout(layout, src, "apps/web", "v2")  # v2: the source is never empty
    config = tmp_path / "c.yaml"
    config.write_text(f"""
version: 1
jobs:
  - name: web
    source: oci:{layout}
    destinations: [{dst.host}/m]
    referrers: true
    prune: true
    prune_max: 5
""")
    tag = referrers_tag(signed.subject)
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert set(list_tags(dst, "m/web")) == {"v1", "v2", tag}
    capsys.readouterr()
    assert main(["verify", "--config", str(config)]) == 0, capsys.readouterr().out
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert set(list_tags(dst, "m/web")) == {"v1", "v2", tag}

    # v1 and its referrers leave the source (as `oras` deletes with its referrers): v1 is pruned
    # at once; its referrers tag only once the subject is gone from the destination too.
    index = json.loads((layout / "index.json").read_text())
    gone = {signed.subject, *(r.digest for r in signed.referrers)}
    index["manifests"] = [e for e in index["manifests"] if e["digest"] not in gone]
    (layout / "index.json").write_text(json.dumps(index))
    for digest in gone:
        (layout / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert set(list_tags(dst, "m/web")) == {"v2", tag}
    assert main(["sync", "--config", str(config), "--once"]) == 0
    assert set(list_tags(dst, "m/web")) == {"v2"}


def test_a_referrer_found_twice_is_pushed_once(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    """A layout mirror wrote names each referrer twice (an untagged entry, and in the referrers
    index under its tag): copied onward, each referrer manifest is PUT once. Two PUTs of one
    manifest at once made distribution 2.8 refuse the referrers index naming it (DIGEST_INVALID:
    it read the manifest's link file while the other PUT rewrote it)."""
    src, dst = registry_pair
    signed = signed_in_registry(src, "apps/app")
    layout = tmp_path / "layout"
    assert copy(f"{src.host}/apps/app:v1", f"oci:{layout}:v1") == 0
    proxy = proxy_factory.start(dst)
    assert copy(f"oci:{layout}:v1", f"{proxy.host}/m/app:v1") == 0
    for r in signed.referrers:
        assert len(proxy.select("PUT", f"/manifests/{r.digest}")) == 1
    assert registry_referrers(dst, "m/app", signed.subject) == {
        r.digest: r.descriptor() for r in signed.referrers
    }


def test_referrers_stored_but_not_listed_are_listed_by_the_next_copy(
    evil: EvilRegistry, registry: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A referrer already at the destination is skipped, yet made sure to be listed: one stored
    by an earlier run whose listing failed (or by a version that listed nothing) is found from
    the next run on. Before, a skipped referrer stayed unlisted for good."""
    signed = signed_with_api(evil, "app")
    layout = tmp_path / "layout"
    out = (f"{registry.host}/m/app:v1", f"oci:{layout}:v1", f"s3://{bucket}/app:v1")
    assert copy(f"{evil.host}/app:v1", *out) == 0
    tag = referrers_tag(signed.subject)
    # Forget every listing: the referrers stay stored, by digest.
    index_digest = requests.head(
        f"{registry.url}/v2/m/app/manifests/{tag}", headers={"Accept": OCI_INDEX}, timeout=10
    ).headers["Docker-Content-Digest"]
    assert requests.delete(f"{registry.url}/v2/m/app/manifests/{index_digest}", timeout=10).status_code == 202
    only_v1 = {signed.subject}
    doc = json.loads((layout / "index.json").read_text())
    doc["manifests"] = [e for e in doc["manifests"] if e["digest"] in only_v1]
    (layout / "index.json").write_text(json.dumps(doc))
    doc, _ = s3_reader(s3, bucket, "app")
    doc["manifests"] = [e for e in doc["manifests"] if e["digest"] in only_v1]
    s3.put_object(Bucket=bucket, Key="app/index.json", Body=json.dumps(doc).encode())
    assert all(manifest_exists(registry, "m/app", r.digest) for r in signed.referrers)

    report = tmp_path / "report.json"
    assert copy("--report", str(report), f"{evil.host}/app:v1", *out) == 0
    assert {i["status"] for i in json.loads(report.read_text())["images"]} == {"skipped"}
    assert registry_referrers(registry, "m/app", signed.subject) == {
        r.digest: r.descriptor() for r in signed.referrers
    }
    assert_layout_findable(*oci_reader(layout), signed.subject, signed.referrers)
    assert_layout_findable(*s3_reader(s3, bucket, "app"), signed.subject, signed.referrers)


def test_a_referrers_tag_holding_an_image_is_reported_not_replaced(
    evil: EvilRegistry, registry: Any, tmp_path: Path
) -> None:
    """The spec: a referrers tag naming something other than an OCI index is a failure to
    report, and left alone."""
    signed = signed_with_api(evil, "app")
    tag = referrers_tag(signed.subject)
    squatter = push_image(registry, "m/app", tag, seed="squatter")
    report = tmp_path / "report.json"
    assert copy("--report", str(report), f"{evil.host}/app:v1", f"{registry.host}/m/app:v1") == 1
    failed = [i for i in json.loads(report.read_text())["images"] if i["status"] == "failed"]
    assert sorted(i["digest"] for i in failed) == sorted(r.digest for r in signed.referrers)
    for image in failed:
        [dest] = image["destinations"]
        assert f"m/app:{tag} holds" in dest["error"] and "not the referrers index" in dest["error"]
    assert (
        requests.head(
            f"{registry.url}/v2/m/app/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=10
        ).headers["Docker-Content-Digest"]
        == squatter.digest
    )
