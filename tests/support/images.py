"""Seed synthetic images into a registry over plain HTTP (`requests`), and read them back.

Independent of the `mirror` package, so it can check what the daemon wrote. Content is
deterministic for a given seed; layers are random bytes (not real tarballs) generated in 1 MiB
chunks and uploaded monolithically (POST, then one PUT with Content-Length), so 64 MiB+ layers
never sit in memory. Blobs the repository already holds are not uploaded again.

    img = push_image(registry, "app", "v1", layer_sizes=[1024, 64 << 20], seed="app-v1")
    idx = push_index(registry, "app", "multi", platforms=["linux/amd64", "linux/arm64"])
    base = layer(4096, "shared-base")          # pass as base_layers= to share it between images

`handle` is anything with `url`, `auth` and `seed_creds` (RegistryHandle, RegistryProxy).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tests.support.content import BlobSpec, sha256_digest
from tests.support.mediatypes import ACCEPT_ALL, TYPES
from tests.support.seedclient import RegistryError, SeedClient, Target

Media = Literal["oci", "docker"]
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")


def layer(size: int, seed: str) -> BlobSpec:
    return BlobSpec(seed, size)


@dataclass(frozen=True)
class PushedImage:
    repo: str
    tag: str | None
    digest: str
    manifest: bytes
    media_type: str
    config: bytes
    config_digest: str
    layers: tuple[BlobSpec, ...]
    platform: str

    @property
    def blob_digests(self) -> tuple[str, ...]:
        """Config first, then layers, in manifest order."""
        return (self.config_digest, *(b.digest for b in self.layers))

    @property
    def size(self) -> int:
        return len(self.manifest)


@dataclass(frozen=True)
class PushedIndex:
    repo: str
    tag: str | None
    digest: str
    manifest: bytes
    media_type: str
    children: tuple[PushedImage, ...]

    @property
    def blob_digests(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for child in self.children:
            seen.update(dict.fromkeys(child.blob_digests))
        return tuple(seen)

    @property
    def size(self) -> int:
        return len(self.manifest)


@dataclass(frozen=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str  # the Docker-Content-Digest header
    status: int

    def json(self) -> Any:
        return json.loads(self.data)


def _platform(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"platform must be os/arch[/variant], got {platform!r}")
    result = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2).encode()


# blobs & manifests ---------------------------------------------------------------------------
def _push_blob(client: SeedClient, repo: str, blob: bytes | BlobSpec) -> str:
    digest = blob.digest if isinstance(blob, BlobSpec) else sha256_digest(blob)
    if client.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo, expect=(200, 404)).status_code == 200:
        return digest
    r = client.request(
        "POST", f"/v2/{repo}/blobs/uploads/", repo, expect=(202,), headers={"Content-Length": "0"}
    )
    location = urllib.parse.urljoin(r.url, r.headers["Location"])
    parts = urllib.parse.urlsplit(location)
    query = [*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), ("digest", digest)]
    url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    size = blob.size if isinstance(blob, BlobSpec) else len(blob)
    body: Any = (
        blob.stream()
        if isinstance(blob, BlobSpec) and size
        else (blob.read() if isinstance(blob, BlobSpec) else blob)
    )
    client.request(
        "PUT",
        url,
        repo,
        expect=(201,),
        data=body,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    return digest


def _push_manifest(client: SeedClient, repo: str, ref: str, data: bytes, media_type: str) -> str:
    r = client.request(
        "PUT",
        f"/v2/{repo}/manifests/{ref}",
        repo,
        expect=(201,),
        data=data,
        headers={"Content-Type": media_type},
    )
    digest = sha256_digest(data)
    returned = r.headers.get("Docker-Content-Digest")
    assert returned in (None, digest), f"registry computed {returned}, expected {digest}"
    return digest


def _push_image(
    client: SeedClient,
    repo: str,
    tag: str | None,
    layer_sizes: Sequence[int],
    seed: str,
    media: Media,
    platform: str,
    base_layers: Sequence[BlobSpec],
    annotations: dict[str, str] | None,
) -> PushedImage:
    types = TYPES[media]
    layers = (*base_layers, *(BlobSpec(f"{seed}/layer{i}", size) for i, size in enumerate(layer_sizes)))
    plat = _platform(platform)
    config = _dumps(
        {
            **plat,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Labels": {"mirror.test.seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]},
        }
    )
    config_digest = _push_blob(client, repo, config)
    for blob in layers:
        _push_blob(client, repo, blob)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {"mediaType": types["config"], "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": types["layer"], "digest": b.digest, "size": b.size} for b in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    data = _dumps(manifest)
    digest = _push_manifest(client, repo, tag or sha256_digest(data), data, types["manifest"])
    return PushedImage(
        repo, tag, digest, data, types["manifest"], config, config_digest, tuple(layers), platform
    )


# public API ------------------------------------------------------------------------------------
def push_blob(
    handle: Target, repo: str, blob: bytes | BlobSpec, *, creds: tuple[str, str] | None = None
) -> str:
    """Upload one blob (skipped when present); returns its digest."""
    with SeedClient(handle, creds) as client:
        return _push_blob(client, repo, blob)


def push_manifest(
    handle: Target, repo: str, ref: str, data: bytes, media_type: str, *, creds: tuple[str, str] | None = None
) -> str:
    """PUT raw manifest bytes under a tag or digest; returns the digest of `data`."""
    with SeedClient(handle, creds) as client:
        return _push_manifest(client, repo, ref, data, media_type)


def push_image(
    handle: Target,
    repo: str,
    tag: str | None,
    layer_sizes: Sequence[int] = (1024, 2048),
    *,
    seed: str = "image",
    media: Media = "oci",
    platform: str = "linux/amd64",
    base_layers: Sequence[BlobSpec] = (),
    annotations: dict[str, str] | None = None,
    creds: tuple[str, str] | None = None,
) -> PushedImage:
    """One image: config + `base_layers` + one generated layer per size. `tag=None` pushes by digest."""
    with SeedClient(handle, creds) as client:
        return _push_image(client, repo, tag, layer_sizes, seed, media, platform, base_layers, annotations)


def push_index(
    handle: Target,
    repo: str,
    tag: str | None,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    *,
    media: Media = "oci",
    seed: str = "index",
    layer_sizes: Sequence[int] = (1024,),
    base_layers: Sequence[BlobSpec] = (),
    annotations: dict[str, str] | None = None,
    creds: tuple[str, str] | None = None,
) -> PushedIndex:
    """An OCI index (or Docker manifest list) over one image per platform, children pushed by
    digest first. Each child has its own layers (seeded `<seed>/<platform>`) after `base_layers`."""
    types = TYPES[media]
    with SeedClient(handle, creds) as client:
        children = tuple(
            _push_image(client, repo, None, layer_sizes, f"{seed}/{p}", media, p, base_layers, None)
            for p in platforms
        )
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": types["index"],
            "manifests": [
                {
                    "mediaType": c.media_type,
                    "digest": c.digest,
                    "size": c.size,
                    "platform": _platform(c.platform),
                }
                for c in children
            ],
        }
        if annotations:
            index["annotations"] = dict(annotations)
        data = _dumps(index)
        digest = _push_manifest(client, repo, tag or sha256_digest(data), data, types["index"])
    return PushedIndex(repo, tag, digest, data, types["index"], children)


def fetch_manifest(
    handle: Target, repo: str, ref: str, *, accept: str = ACCEPT_ALL, creds: tuple[str, str] | None = None
) -> FetchedManifest:
    """GET a manifest by tag or digest, accepting all four manifest types."""
    with SeedClient(handle, creds) as client:
        r = client.request(
            "GET", f"/v2/{repo}/manifests/{ref}", repo, actions="pull", headers={"Accept": accept}
        )
    return FetchedManifest(
        r.content,
        r.headers.get("Content-Type", ""),
        r.headers.get("Docker-Content-Digest", ""),
        r.status_code,
    )


def manifest_exists(handle: Target, repo: str, ref: str, *, creds: tuple[str, str] | None = None) -> bool:
    """Whether the registry serves ``repo:ref``. Tests poll this while mirror writes the same
    tag, and distribution 2.8 (filesystem storage) can answer such a racing HEAD with a 500:
    a 5xx is asked again, a few times, before it counts as an error."""
    with SeedClient(handle, creds) as client:
        for attempt in range(5):
            r = client.request(
                "HEAD",
                f"/v2/{repo}/manifests/{ref}",
                repo,
                actions="pull",
                expect=(200, 404, 500, 502, 503),
                headers={"Accept": ACCEPT_ALL},
            )
            if r.status_code < 500:
                return r.status_code == 200
            time.sleep(0.2 * (attempt + 1))
    raise RegistryError(r, (200, 404))


def blob_exists(handle: Target, repo: str, digest: str, *, creds: tuple[str, str] | None = None) -> bool:
    with SeedClient(handle, creds) as client:
        r = client.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo, actions="pull", expect=(200, 404))
    return r.status_code == 200


def fetch_blob(handle: Target, repo: str, digest: str, *, creds: tuple[str, str] | None = None) -> bytes:
    """The whole blob in memory: for small blobs."""
    with SeedClient(handle, creds) as client:
        return client.request("GET", f"/v2/{repo}/blobs/{digest}", repo, actions="pull").content


def _paginate(
    client: SeedClient, path: str, repo: str | None, key: str, scope: str | None = None
) -> list[str] | None:
    items: list[str] = []
    next_path: str | None = path
    while next_path:
        r = client.request("GET", next_path, repo, actions="pull", scope=scope, expect=(200, 404))
        if r.status_code == 404:
            return None
        items.extend(r.json().get(key) or [])
        link = r.links.get("next", {}).get("url")
        next_path = urllib.parse.urljoin(r.url, link) if link else None
    return items


def list_tags(
    handle: Target, repo: str, *, page_size: int | None = None, creds: tuple[str, str] | None = None
) -> list[str]:
    """All tags in the registry's order, following `Link` pagination (`n=page_size` when given;
    distribution 2.8 ignores it for tags); [] when the repository is unknown."""
    with SeedClient(handle, creds) as client:
        query = f"?n={page_size}" if page_size else ""
        return _paginate(client, f"/v2/{repo}/tags/list{query}", repo, "tags") or []


def list_catalog(
    handle: Target, *, page_size: int | None = None, creds: tuple[str, str] | None = None
) -> list[str]:
    """All repositories from `/v2/_catalog`, following `Link` pagination (`n=page_size`).
    With token auth this needs the `registry:catalog:*` scope, which the default policy grants."""
    with SeedClient(handle, creds) as client:
        query = f"?n={page_size}" if page_size else ""
        return _paginate(client, f"/v2/_catalog{query}", None, "repositories", "registry:catalog:*") or []


def corrupt_blob(handle: Any, digest: str, *, offset: int = 0, count: int = 1) -> None:
    """Flip `count` bytes (XOR 0xFF) of the stored blob file at `offset`, behind the registry's
    back: the registry keeps serving it under the old digest, with the same size."""
    path = handle.blob_path(digest)
    with path.open("r+b") as f:
        f.seek(offset)
        original = f.read(count)
        if len(original) != count:
            raise ValueError(f"blob {digest} is shorter than {offset + count} bytes")
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in original))
