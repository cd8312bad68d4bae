"""``mirror bench SRC-REPO DST-REPO --size 10GiB``: measure a large-image transfer between registries.

The command pushes a synthetic single-layer image of the given size to a scratch tag in
SRC-REPO, copies it to DST-REPO with the same engine ``mirror copy`` uses (on a fresh transport,
so the copy starts cold like a real one), reports throughput, requests, registry token fetches
and the projected duration of a 5 TB artifact at the measured rate, then deletes the scratch
manifests it created (a registry may refuse deletes: that is reported, not fatal; blobs stay
until the registry's garbage collection).

A size over a registry's known maximum blob size is refused before anything is sent.

The layer bytes are generated on the fly and never held whole in memory: a gzip member header,
then 1 MiB blocks drawn from a seeded PRNG, varied per block by an 8-byte big-endian block
counter in their first bytes. The same (seed, size) always gives the same bytes and digest. The
digest needs one hashing pass before the push.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mirror.auth.credentials import StaticProvider
from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.daemon.copycmd import add_plain_http, build_provider, parse_creds, plain_http_options
from mirror.daemon.progress import human_bytes
from mirror.daemon.report import write_report
from mirror.daemon.runtime import run
from mirror.daemon.stores import known_max_blob_size
from mirror.registry.base import ChunkSource
from mirror.registry.distribution import RegistryRepository
from mirror.transport.client import Transport
from mirror.types import events as ev
from mirror.types import mediatypes as mt
from mirror.types import sizes
from mirror.types.digest import Digest
from mirror.types.errors import InputError, MirrorError
from mirror.types.events import Event, Fanout
from mirror.types.manifest import Descriptor
from mirror.types.reference import ImageRef, parse_reference

BLOCK = 1024 * 1024
CHUNK = 4 * BLOCK
FIVE_TB = 5 * 10**12
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # magic, deflate, no flags, mtime 0, OS unknown
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def parse_size(text: str) -> int:
    """Bytes from ``10GiB``, ``5TB``, ``512MiB``, ``1.5GiB`` or a plain number of bytes."""
    return sizes.parse_size(text)


def check_blob_limit(host: str, size: int, what: str = "the synthetic layer") -> None:
    """Refuse up front a blob over ``host``'s known maximum blob size."""
    limit = known_max_blob_size(host)
    if limit is not None and size > limit:
        raise InputError(
            f"{what} would be {size} bytes ({size / 1e12:.2f} TB, {human_bytes(size)}), over the "
            f"{limit}-byte ({limit / 1e12:.2f} TB) maximum blob size of {host}; nothing was sent. "
            "Use a smaller --size"
        )


# -- the synthetic stream ------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _tail(seed: str) -> bytes:
    return random.Random(seed).randbytes(BLOCK)[8:]


def synthetic_chunks(seed: str, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The synthetic blob of ``size`` bytes for ``seed``, in pieces of about ``chunk`` bytes.

    It starts with a gzip member header, like every real (gzip-compressed) layer, so tools that
    sniff a layer's compression pass it through as compressed instead of compressing it.
    """
    if chunk % BLOCK:
        raise ValueError("chunk must be a multiple of 1 MiB")
    header = GZIP_HEADER[:size]
    rest = _stream(seed, size - len(header), chunk)
    first = next(rest, b"")
    yield header + first
    yield from rest


def _stream(seed: str, size: int, chunk: int) -> Iterator[bytes]:
    tail = _tail(seed)
    per = chunk // BLOCK
    block = 0
    remaining = size
    while remaining > 0:
        blocks = min(per, -(-remaining // BLOCK))
        parts: list[bytes] = []
        for i in range(block, block + blocks):
            parts.append(i.to_bytes(8, "big"))
            parts.append(tail)
        block += blocks
        data = b"".join(parts)
        if len(data) > remaining:
            data = data[:remaining]
        remaining -= len(data)
        yield data


def synthetic_digest(seed: str, size: int) -> Digest:
    """The sha256 of the synthetic blob (one full pass over it)."""
    hasher = hashlib.sha256()
    for data in synthetic_chunks(seed, size):
        hasher.update(data)
    return Digest("sha256", hasher.hexdigest())


def synthetic_source(seed: str, size: int, chunk: int = CHUNK) -> ChunkSource:
    """A replayable upload body for the synthetic blob."""

    async def chunks() -> AsyncIterator[bytes]:
        for data in synthetic_chunks(seed, size, chunk):
            yield data

    return chunks


@dataclass(frozen=True)
class SyntheticImage:
    layer: Descriptor
    config: bytes
    config_desc: Descriptor
    manifest: bytes
    manifest_digest: Digest


def synthetic_image(layer_digest: Digest, size: int, note: str = "mirror bench") -> SyntheticImage:
    """A single-layer OCI image whose layer is the synthetic blob of ``size`` bytes."""
    layer = Descriptor(LAYER_TYPE, layer_digest, size)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.title": note}},
            "rootfs": {"type": "layers", "diff_ids": [str(layer_digest)]},
        },
        sort_keys=True,
    ).encode()
    config_desc = Descriptor(CONFIG_TYPE, Digest.of(config), len(config))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": _desc(config_desc),
            "layers": [_desc(layer)],
        },
        indent=2,
    ).encode()
    return SyntheticImage(layer, config, config_desc, manifest, Digest.of(manifest))


def _desc(d: Descriptor) -> dict[str, Any]:
    return {"mediaType": d.media_type, "digest": str(d.digest), "size": d.size}


# -- the command ---------------------------------------------------------------------------------


@dataclass
class BenchOptions:
    source: str
    destination: str
    size: int
    seed: str = "mirror-bench"
    src_creds: str | None = None
    dest_creds: str | None = None
    plain_http: list[str] = field(default_factory=list)
    keep: bool = False
    report: str | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC-REPO", help="HOST/PATH: where the synthetic image is pushed")
    p.add_argument("destination", metavar="DST-REPO", help="HOST/PATH: where it is copied to")
    p.add_argument(
        "--size", required=True, type=_size_arg, help="size of the synthetic layer, e.g. 512MiB, 10GiB, 5TB"
    )
    p.add_argument("--seed", default="mirror-bench", help="seed of the synthetic content")
    p.add_argument("--src-creds", metavar="USER:PASS", help="credentials for SRC (or $MIRROR_SRC_CREDS)")
    p.add_argument("--dest-creds", metavar="USER:PASS", help="credentials for DST (or $MIRROR_DEST_CREDS)")
    add_plain_http(p)
    p.add_argument("--keep", action="store_true", help="leave the scratch tags in place")
    p.add_argument("--report", metavar="FILE", help="write the results as JSON")


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def options_from(ns: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        source=ns.source,
        destination=ns.destination,
        size=ns.size,
        seed=ns.seed,
        src_creds=ns.src_creds or os.environ.get("MIRROR_SRC_CREDS"),
        dest_creds=ns.dest_creds or os.environ.get("MIRROR_DEST_CREDS"),
        plain_http=ns.plain_http,
        keep=ns.keep,
        report=ns.report,
    )


def _repository_ref(text: str, what: str) -> ImageRef:
    ref = parse_reference(text, default_tag=False)
    if not isinstance(ref, ImageRef):
        raise InputError(f"{what} {text!r}: expected a registry repository HOST/PATH")
    return ref


class _Counter:
    """Counts token fetches and requests reported by a transport's events."""

    def __init__(self) -> None:
        self.token_fetches = 0
        self.requests = 0
        self.retries = 0

    def __call__(self, event: Event) -> None:
        if event.kind == ev.TOKEN_FETCH:
            self.token_fetches += 1
        elif event.kind == ev.REQUEST:
            self.requests += 1
        elif event.kind == ev.RETRY:
            self.retries += 1


def _transport(opts: BenchOptions, src: ImageRef, dst: ImageRef, events: Fanout) -> Transport:
    static = StaticProvider()
    if opts.src_creds:
        static.add(src.api_host, parse_creds(opts.src_creds, "--src-creds"))
    if opts.dest_creds:
        static.add(dst.api_host, parse_creds(opts.dest_creds, "--dest-creds"))
    return Transport(build_provider(static), options=plain_http_options(opts.plain_http), events=events)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run_bench(opts: BenchOptions) -> tuple[int, dict[str, Any]]:
    """Push, copy, measure, clean up. Returns the exit code and the results document."""
    src = _repository_ref(opts.source, "SRC-REPO")
    dst = _repository_ref(opts.destination, "DST-REPO")
    check_blob_limit(src.host, opts.size)
    check_blob_limit(dst.host, opts.size)
    if src.name == dst.name:
        raise InputError("SRC-REPO and DST-REPO must differ")
    tag = f"mirror-bench-{secrets.token_hex(4)}"
    doc: dict[str, Any] = {
        "command": "bench",
        "source": f"{src.name}:{tag}",
        "destination": f"{dst.name}:{tag}",
        "size": opts.size,
        "seed": opts.seed,
        "ok": False,
    }

    _say(f"hashing the {human_bytes(opts.size)} synthetic layer (one pass) ...")
    began = time.monotonic()
    layer_digest = await asyncio.to_thread(synthetic_digest, opts.seed, opts.size)
    doc["hash_seconds"] = round(time.monotonic() - began, 3)
    image = synthetic_image(layer_digest, opts.size)
    doc["layer_digest"] = str(layer_digest)
    doc["manifest_digest"] = str(image.manifest_digest)

    seed_counter = _Counter()
    async with _transport(opts, src, dst, Fanout(seed_counter)) as transport:
        source = RegistryRepository(transport, src.api_host, src.repository)
        _say(f"pushing it to {src.name}:{tag} ...")
        began = time.monotonic()
        if not await source.has_blob(layer_digest):
            await source.put_blob(image.layer, synthetic_source(opts.seed, opts.size), replayable=True)
        if not await source.has_blob(image.config_desc.digest):
            config = image.config

            async def config_chunks() -> AsyncIterator[bytes]:
                yield config

            await source.put_blob(image.config_desc, config_chunks, replayable=True)
        await source.put_manifest(tag, image.manifest, mt.OCI_MANIFEST)
        push_seconds = time.monotonic() - began
        doc["push"] = {
            "seconds": round(push_seconds, 3),
            "bytes_per_second": round(opts.size / max(push_seconds, 1e-9)),
        }

    counter = _Counter()
    code = 1
    async with _transport(opts, src, dst, Fanout(counter)) as transport:
        source = RegistryRepository(transport, src.api_host, src.repository)
        dest = RegistryRepository(
            transport, dst.api_host, dst.repository, max_blob_size=known_max_blob_size(dst.host)
        )
        engine = CopyEngine(events=counter)
        _say(f"copying {src.name}:{tag} -> {dst.name}:{tag} ...")
        began = time.monotonic()
        try:
            results = await engine.run([CopyTask(source, tag, [Destination(dest, tag)])])
        finally:
            await engine.aclose()
        seconds = time.monotonic() - began
        result = results[0]
        rate = engine.stats.bytes_read / seconds if seconds > 0 else 0.0
        doc["copy"] = {
            "status": result.status,
            "error": result.error or next((d.error for d in result.destinations if d.error), ""),
            "seconds": round(seconds, 3),
            "bytes_read": engine.stats.bytes_read,
            "bytes_written": engine.stats.bytes_written,
            "bytes_per_second": round(rate),
            "requests": counter.requests,
            "retries": counter.retries,
            "token_fetches": counter.token_fetches,
            "projected_5tb_seconds": round(FIVE_TB / rate) if rate > 0 else None,
        }
        if result.ok:
            code = 0
        if not opts.keep:
            doc["cleanup"] = {
                "destination": await _delete(dest, image.manifest_digest),
                "source": await _delete(
                    RegistryRepository(transport, src.api_host, src.repository), image.manifest_digest
                ),
            }
    doc["ok"] = code == 0
    return code, doc


async def _delete(repo: RegistryRepository, digest: Digest) -> str:
    try:
        await repo.delete_manifest(str(digest))
    except MirrorError as exc:
        return f"not deleted: {exc.message}"
    return "deleted"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def summary(doc: dict[str, Any]) -> list[str]:
    copy = doc.get("copy", {})
    lines = [f"bench {doc['source']} -> {doc['destination']} ({human_bytes(doc['size'])})"]
    push = doc.get("push")
    if push:
        lines.append(
            f"  push to source: {_duration(push['seconds'])}, {human_bytes(push['bytes_per_second'])}/s"
        )
    if copy:
        lines.append(
            f"  copy: {copy['status']} in {_duration(copy['seconds'])}, "
            f"{human_bytes(copy['bytes_per_second'])}/s ({copy['bytes_per_second'] / 1e6:.0f} MB/s)"
        )
        if copy.get("error"):
            lines.append(f"  error: {copy['error']}")
        lines.append(
            f"  requests {copy['requests']}, retries {copy['retries']}, "
            f"registry token fetches {copy['token_fetches']}"
        )
        if copy.get("projected_5tb_seconds"):
            lines.append(f"  a 5 TB artifact at this rate: {_duration(copy['projected_5tb_seconds'])}")
    for where, outcome in (doc.get("cleanup") or {}).items():
        lines.append(f"  cleanup {where}: {outcome}")
    return lines


def finish(opts: BenchOptions, code: int, doc: dict[str, Any]) -> int:
    if opts.report:
        write_report(opts.report, doc)
    for line in summary(doc):
        print(line)
    return code


def main(ns: argparse.Namespace) -> int:
    """``mirror bench``: parsed arguments in, exit code out."""
    opts = options_from(ns)
    code, doc = run(run_bench(opts))
    return finish(opts, code, doc)
