"""Deterministic synthetic workloads, generated on the fly and pushed to a registry.

Blob content comes from :func:`mirror.copy.synthetic_blob.synthetic_chunks` (a seeded 1 MiB block
varied per block by a counter): never held whole in memory. A blob's digest needs one pass over
it; digests of large blobs are cached in ``benchmarks/results/digests.json`` by (seed, size).

A *fleet* is ``repos`` repositories x ``tags`` tags. Every image has four blobs:

- a base layer shared by every repository in its group (``repo % bases``);
- a repository layer shared by all tags of that repository;
- a tag layer unique to the image;
- a small config (unique).

So most referenced bytes are shared: the unique bytes are what a tool must read once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from mirror.copy.synthetic_blob import synthetic_chunks, synthetic_digest, synthetic_image
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest

MiB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results"
DIGESTS = RESULTS / "digests.json"
CACHE_MIN = 64 * MiB  # smaller blobs are hashed again each time (faster than a file lookup matters)
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"


def cached_digest(seed: str, size: int) -> Digest:
    """The digest of the synthetic blob (seed, size), from the cache file or by hashing it once."""
    if size < CACHE_MIN:
        return synthetic_digest(seed, size)
    key = f"gz1:{seed}:{size}"  # gz1: blobs that start with a gzip header
    cache: dict[str, str] = {}
    if DIGESTS.exists():
        cache = json.loads(DIGESTS.read_text())
    if key in cache:
        return Digest.parse(cache[key])
    began = time.monotonic()
    digest = synthetic_digest(seed, size)
    took = time.monotonic() - began
    print(f"  hashed the {size / 2**30:.1f} GiB synthetic blob {key} in {took:.0f}s", file=sys.stderr)
    cache = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    cache[key] = str(digest)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = DIGESTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, DIGESTS)
    return digest


@dataclass(frozen=True)
class Blob:
    seed: str
    size: int
    digest: Digest
    media_type: str = LAYER
    data: bytes | None = None  # small blobs (configs) are kept as bytes

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}


def generated(seed: str, size: int) -> Blob:
    return Blob(seed, size, cached_digest(seed, size))


def literal(data: bytes, media_type: str) -> Blob:
    return Blob("", len(data), Digest.of(data), media_type, data)


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    blobs: tuple[Blob, ...]  # config first
    manifest: bytes

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)


def make_image(repository: str, tag: str, layers: list[Blob]) -> Image:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench.image": f"{repository}:{tag}"}},
            "rootfs": {"type": "layers", "diff_ids": [str(b.digest) for b in layers]},
        },
        sort_keys=True,
    ).encode()
    cfg = literal(config, CONFIG)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": cfg.descriptor(),
            "layers": [b.descriptor() for b in layers],
        },
        indent=2,
    ).encode()
    return Image(repository, tag, (cfg, *layers), manifest)


@dataclass(frozen=True)
class FleetSpec:
    repos: int = 30
    tags: int = 4
    bases: int = 3
    base_size: int = 16 * MiB
    repo_size: int = 4 * MiB
    tag_size: int = 1 * MiB
    prefix: str = "fleet"
    seed: str = "fleet"

    def images(self) -> list[Image]:
        bases = [generated(f"{self.seed}-base-{b}", self.base_size + b * 4096) for b in range(self.bases)]
        out = []
        for r in range(self.repos):
            repo = f"{self.prefix}/app{r:02d}"
            repo_layer = generated(f"{self.seed}-repo-{r}", self.repo_size + r)
            for t in range(self.tags):
                tag_layer = generated(f"{self.seed}-tag-{r}-{t}", self.tag_size + t)
                out.append(make_image(repo, f"v{t}", [bases[r % self.bases], repo_layer, tag_layer]))
        return out


def unique_bytes(images: list[Image]) -> int:
    seen: dict[Digest, int] = {}
    for image in images:
        for blob in image.blobs:
            seen[blob.digest] = blob.size
    return sum(seen.values())


def referenced_bytes(images: list[Image]) -> int:
    return sum(b.size for image in images for b in image.blobs)


def big_image(size: int, seed: str = "bigblob", repository: str = "big/blob", tag: str = "v1") -> Image:
    layer = generated(seed, size)
    img = synthetic_image(layer.digest, size, note="benchmark big blob")
    cfg = literal(img.config, CONFIG)
    return Image(repository, tag, (cfg, layer), img.manifest)


# -- pushing ----------------------------------------------------------------------------------------


@dataclass
class Seeder:
    """Pushes images to a plain-HTTP registry with monolithic uploads (POST, one PUT with Content-Length)."""

    host: str
    concurrency: int = 8
    pushed: set[Digest] = field(default_factory=set)

    async def push(self, images: list[Image]) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            sem = asyncio.Semaphore(self.concurrency)
            blobs: dict[Digest, tuple[Image, Blob]] = {}
            for image in images:
                for blob in image.blobs:
                    blobs.setdefault(blob.digest, (image, blob))

            async def one(image: Image, blob: Blob) -> None:
                async with sem:
                    await self._blob(session, image.repository, blob)

            await asyncio.gather(*(one(i, b) for i, b in blobs.values()))
            # Blobs pushed to one repository are linked into the others by a mount.
            links = [(i, b) for i in images for b in i.blobs if blobs[b.digest][0].repository != i.repository]

            async def link(image: Image, blob: Blob) -> None:
                async with sem:
                    await self._mount(session, image.repository, blob, blobs[blob.digest][0].repository)

            await asyncio.gather(*(link(i, b) for i, b in links))

            async def manifest(image: Image) -> None:
                async with sem:
                    url = f"http://{self.host}/v2/{image.repository}/manifests/{image.tag}"
                    async with session.put(
                        url, data=image.manifest, headers={"Content-Type": mt.OCI_MANIFEST}
                    ) as resp:
                        if resp.status != 201:
                            raise RuntimeError(f"manifest PUT {url}: {resp.status} {await resp.text()}")

            await asyncio.gather(*(manifest(i) for i in images))

    async def _blob(self, session: aiohttp.ClientSession, repository: str, blob: Blob) -> None:
        base = f"http://{self.host}/v2/{repository}/blobs/"
        async with session.head(base + str(blob.digest)) as resp:
            if resp.status == 200:
                return
        async with session.post(base + "uploads/") as resp:
            if resp.status != 202:
                raise RuntimeError(f"POST {base}uploads/: {resp.status}")
            location = resp.headers["Location"]
        url = aiohttp.client.URL(f"http://{self.host}").join(aiohttp.client.URL(location))
        url = url.update_query({"digest": str(blob.digest)})
        body: bytes | AsyncIterator[bytes] = blob.data if blob.data is not None else _body(blob)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        async with session.put(url, data=body, headers=headers) as resp:
            if resp.status != 201:
                raise RuntimeError(f"PUT blob {blob.digest}: {resp.status} {await resp.text()}")

    async def _mount(self, session: aiohttp.ClientSession, repository: str, blob: Blob, source: str) -> None:
        url = f"http://{self.host}/v2/{repository}/blobs/uploads/?mount={blob.digest}&from={source}"
        async with session.post(url) as resp:
            if resp.status != 201:
                raise RuntimeError(f"mount {blob.digest} into {repository}: {resp.status}")


async def _body(blob: Blob) -> AsyncIterator[bytes]:
    for chunk in synthetic_chunks(blob.seed, blob.size):
        yield chunk


def push(host: str, images: list[Image]) -> float:
    """Push ``images`` to ``host``; returns the seconds it took."""
    began = time.monotonic()
    asyncio.run(Seeder(host).push(images))
    return time.monotonic() - began
