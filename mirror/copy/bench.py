"""Measuring a large-image transfer between two registries (``mirror bench``).

:func:`run_bench` pushes a synthetic single-layer image of the given size to a scratch tag in the
source repository, copies it to the destination with the same engine ``mirror copy`` uses (on a
fresh transport, so the copy starts cold like a real one), measures throughput, requests,
registry token fetches and the projected duration of a 5 TB artifact at the measured rate, then
deletes the scratch manifests it created (a registry may refuse deletes: that is reported, not
fatal; blobs stay until the registry's garbage collection).

A size over a registry's known maximum blob size is refused before anything is sent. The layer is
generated on the fly (:mod:`mirror.copy.synthetic_blob`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from mirror.copy.engine import CopyEngine, CopyTask, Destination
from mirror.copy.synthetic_blob import synthetic_digest, synthetic_image, synthetic_source
from mirror.registry.distribution import RegistryRepository
from mirror.registry.profiles import known_max_blob_size
from mirror.transport.client import Transport
from mirror.types import events as ev
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import InputError, MirrorError
from mirror.types.events import Event, EventSink, Fanout
from mirror.types.reference import ImageRef
from mirror.types.sizes import human_bytes

FIVE_TB = 5 * 10**12

TransportFactory = Callable[[EventSink], Transport]


@dataclass(frozen=True)
class BenchPlan:
    """What to measure: a synthetic layer of ``size`` bytes from ``source`` to ``destination``."""

    source: ImageRef
    destination: ImageRef
    size: int
    seed: str = "mirror-bench"
    keep: bool = False  # leave the scratch tags in place


def check_blob_limit(host: str, size: int, what: str = "the synthetic layer") -> None:
    """Refuse up front a blob over ``host``'s known maximum blob size."""
    limit = known_max_blob_size(host)
    if limit is not None and size > limit:
        raise InputError(
            f"{what} would be {size} bytes ({size / 1e12:.2f} TB, {human_bytes(size)}), over the "
            f"{limit}-byte ({limit / 1e12:.2f} TB) maximum blob size of {host}; nothing was sent. "
            "Use a smaller --size"
        )


def _quiet(_line: str) -> None:
    pass


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


async def run_bench(
    opts: BenchPlan, open_transport: TransportFactory, say: Callable[[str], None] = _quiet
) -> tuple[int, dict[str, Any]]:
    """Push, copy, measure, clean up. Returns the exit code and the results document.

    ``open_transport`` makes a transport sending its events to the given sink (called twice: the copy
    runs on a fresh one); ``say`` receives a line before each step.
    """
    src, dst = opts.source, opts.destination
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

    say(f"hashing the {human_bytes(opts.size)} synthetic layer (one pass) ...")
    began = time.monotonic()
    layer_digest = await asyncio.to_thread(synthetic_digest, opts.seed, opts.size)
    doc["hash_seconds"] = round(time.monotonic() - began, 3)
    image = synthetic_image(layer_digest, opts.size)
    doc["layer_digest"] = str(layer_digest)
    doc["manifest_digest"] = str(image.manifest_digest)

    seed_counter = _Counter()
    async with open_transport(Fanout(seed_counter)) as transport:
        source = RegistryRepository(transport, src.api_host, src.repository)
        say(f"pushing it to {src.name}:{tag} ...")
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
    async with open_transport(Fanout(counter)) as transport:
        source = RegistryRepository(transport, src.api_host, src.repository)
        dest = RegistryRepository(
            transport, dst.api_host, dst.repository, max_blob_size=known_max_blob_size(dst.host)
        )
        engine = CopyEngine(events=counter)
        say(f"copying {src.name}:{tag} -> {dst.name}:{tag} ...")
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
