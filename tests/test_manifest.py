"""Manifest parsing and platform filtering, including malformed and hostile documents."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import ManifestError
from mirror.types.manifest import Platform, filter_index, parse_manifest

D = "sha256:" + "1" * 64
E = "sha256:" + "2" * 64


def image(media: str = mt.OCI_MANIFEST) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": E, "size": 20}],
        }
    ).encode()


def index(platforms: list[str], media: str = mt.OCI_INDEX) -> bytes:
    entries = []
    for i, text in enumerate(platforms):
        p = Platform.parse(text)
        plat = {"os": p.os, "architecture": p.architecture}
        if p.variant:
            plat["variant"] = p.variant
        entries.append(
            {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + f"{i:x}" * 64, "size": 5, "platform": plat}
        )
    return json.dumps({"schemaVersion": 2, "mediaType": media, "manifests": entries}).encode()


@pytest.mark.parametrize("media", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
def test_image_manifest(media: str) -> None:
    raw = image(media)
    m = parse_manifest(raw, media)
    assert m.media_type == media and not m.is_index
    assert [str(b.digest) for b in m.blobs] == [D, E]
    assert m.digest == Digest.of(raw)


@pytest.mark.parametrize("media", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_index_and_filter(media: str) -> None:
    raw = index(["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], media)
    m = parse_manifest(raw, media)
    assert m.is_index and len(m.manifests) == 3
    filtered = filter_index(m, [Platform.parse("linux/arm64")])
    assert [str(d.platform) for d in filtered.manifests] == ["linux/arm64/v8"]
    assert filtered.digest != m.digest
    with pytest.raises(ManifestError, match="available: linux/amd64"):
        filter_index(m, [Platform.parse("windows/amd64")])


def buildkit_index(platforms: list[str]) -> bytes:
    """An index as BuildKit writes it: one image per platform, each followed by its attestation
    manifest (platform unknown/unknown, annotated with the image it describes)."""
    entries = []
    for i, text in enumerate(platforms):
        p = Platform.parse(text)
        image_digest = "sha256:" + f"{2 * i:064x}"
        entries.append(
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": image_digest,
                "size": 5,
                "platform": {"os": p.os, "architecture": p.architecture},
            }
        )
        entries.append(
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": "sha256:" + f"{2 * i + 1:064x}",
                "size": 5,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": image_digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }
        )
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode()


def test_filter_keeps_the_attestations_of_kept_platforms() -> None:
    """--platform keeps the SBOM and provenance of the platforms it keeps (before: the
    unknown/unknown entries were dropped, and the attestations lost)."""
    m = parse_manifest(buildkit_index(["linux/amd64", "linux/arm64", "linux/s390x"]))
    filtered = filter_index(m, [Platform.parse("linux/amd64"), Platform.parse("linux/s390x")])
    kept = [int(d.digest.hex, 16) for d in filtered.manifests]
    assert kept == [0, 1, 4, 5]
    assert filtered.manifests[1].attests == str(filtered.manifests[0].digest)


def test_unknown_platform_is_named_once_in_the_error() -> None:
    m = parse_manifest(buildkit_index(["linux/amd64", "linux/arm64"] + [f"linux/a{i}" for i in range(10)]))
    with pytest.raises(ManifestError) as caught:
        filter_index(m, [Platform.parse("windows/amd64")])
    assert "unknown/unknown" not in caught.value.message
    assert caught.value.message.count("linux/amd64") == 1


def test_verified_by_digest() -> None:
    raw = image()
    parse_manifest(raw, digest=Digest.of(raw))
    with pytest.raises(ManifestError, match="digest mismatch"):
        parse_manifest(raw, digest=Digest.parse(D))


@pytest.mark.parametrize(
    ("raw", "media", "message"),
    [
        (b"not json", "", "not valid JSON"),
        (b"[]", "", "not a JSON object"),
        (b'{"schemaVersion": 1, "mediaType": "x"}', "", "schema 1"),
        (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "", "unsupported"),
        (image(mt.OCI_MANIFEST), mt.DOCKER_MANIFEST, "served as"),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}).encode(), "", "config"),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}).encode(), "", "manifests"),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": {"digest": D, "size": -1},
                    "layers": [],
                }
            ).encode(),
            "",
            "non-negative",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": {"digest": "md5:00", "size": 1},
                    "layers": [],
                }
            ).encode(),
            "",
            "unsupported algorithm",
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": {"digest": D, "size": True},
                    "layers": [],
                }
            ).encode(),
            "",
            "size",
        ),
        (b" " * (mt.MAX_MANIFEST_BYTES + 1), "", "over the"),
    ],
)
def test_malformed(raw: bytes, media: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw, media)


def test_platform_parse() -> None:
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    assert Platform.parse("linux/arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform.parse("linux/arm64/v9").matches(Platform("linux", "arm64", "v8"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
def test_arbitrary_json_never_crashes(value: object) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(json.dumps(value).encode())


@given(
    st.dictionaries(
        st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests", "subject"]),
        json_values,
        max_size=6,
    )
)
def test_manifest_shaped_json_never_crashes(doc: dict[str, object]) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(json.dumps(doc).encode())


def test_foreign_layers_are_not_blobs_to_copy() -> None:
    doc = json.loads(image(mt.DOCKER_MANIFEST))
    foreign = {
        "mediaType": mt.DOCKER_FOREIGN_LAYER,
        "digest": "sha256:" + "3" * 64,
        "size": 9,
        "urls": ["https://x/y"],
    }
    doc["layers"].insert(0, foreign)
    m = parse_manifest(json.dumps(doc).encode())
    assert [str(b.digest) for b in m.blobs] == [D, E]
    assert [str(b.digest) for b in m.references] == [D, foreign["digest"], E]
    assert m.layers[0].urls == ("https://x/y",) and not m.layers[0].distributable
    doc["layers"][0]["urls"] = "https://x/y"
    with pytest.raises(ManifestError, match="urls must be a list of strings"):
        parse_manifest(json.dumps(doc).encode())
