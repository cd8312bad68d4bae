"""Seeded random faults for the recording proxy: a mix of resets, errors, throttling and
flipped bytes, each drawn per request with given probabilities.

    mix = FaultMix(seed=7, reset=0.10, error=0.05, throttle=0.05, flip=0.15)
    proxy.add_fault(mix)

A request's fate depends only on the seed and on which request it is: its method, its path
(an upload session's random id left out), its ``digest=``/``mount=`` parameter, and how many
requests with the same of those came before. The same run therefore meets the same faults,
whatever order concurrent requests arrive in for different blobs.

- ``reset``: the connection is reset before anything is forwarded (``Reset``);
- ``error``: answered 503 ``UNAVAILABLE`` without forwarding (``ErrorBurst``);
- ``throttle``: answered 429 ``TOOMANYREQUESTS`` with ``Retry-After: <retry_after>``;
- ``flip``: forwarded, then one byte of a 2xx body is XORed with 0xFF, at a position drawn from
  the same seed (only for requests whose method is GET and whose path matches ``flip_path``).

``counts`` holds how many requests each kind took, ``fired_on`` one ``(kind, method, path)``
per fault, so a test can account for every retry and re-read the faults explain.
"""

from __future__ import annotations

import random
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tests.support.faults import ABORT, Fault, FaultContext, _error_response

if TYPE_CHECKING:
    from tests.support.proxy import RecordedRequest

_SESSION = re.compile(r"/blobs/uploads/[^/]+$")


class FaultMix(Fault):
    name = "fault-mix"

    def __init__(
        self,
        seed: int | str,
        *,
        reset: float = 0.0,
        error: float = 0.0,
        throttle: float = 0.0,
        flip: float = 0.0,
        retry_after: int = 0,
        flip_path: str = r"/blobs/sha256:",
        **match: Any,
    ) -> None:
        super().__init__(times=None, **match)
        if reset + error + throttle + flip > 1:
            raise ValueError("the probabilities add up to more than 1")
        self.seed = seed
        self.rates = {"reset": reset, "error": error, "throttle": throttle, "flip": flip}
        self.retry_after = retry_after
        self.flip_path = re.compile(flip_path)
        self.counts: Counter[str] = Counter()
        self.fired_on: list[tuple[str, str, str]] = []
        self._seen: Counter[str] = Counter()
        self._decided: dict[int, tuple[str, random.Random]] = {}
        self._lock = threading.Lock()

    def claim(self, record: RecordedRequest) -> bool:
        if self.methods is not None and record.method not in self.methods:
            return False
        if self.path is not None and not self.path.search(record.path):
            return False
        params = dict(urllib.parse.parse_qsl(record.query))
        blob = params.get("digest", params.get("mount", ""))
        key = f"{record.method} {_SESSION.sub('/blobs/uploads/*', record.path)} {blob}"
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
        rng = random.Random(f"{self.seed}|{key}|{n}")
        draw = rng.random()
        flippable = record.method == "GET" and bool(self.flip_path.search(record.path))
        for kind, rate in self.rates.items():
            if kind == "flip" and not flippable:
                continue
            if draw < rate:
                with self._lock:
                    self.fired += 1
                    self.counts[kind] += 1
                    self.fired_on.append((kind, record.method, record.path))
                self._decided[id(record)] = (kind, rng)
                return True
            draw -= rate
        return False

    async def on_request(self, ctx: FaultContext) -> Any:
        kind, _rng = self._decided[id(ctx.record)]
        if kind == "flip":
            return None  # acts on the body
        del self._decided[id(ctx.record)]
        if kind == "reset":
            return ABORT
        if kind == "error":
            return _error_response(503, "UNAVAILABLE", "injected by the fault mix")
        return _error_response(
            429, "TOOMANYREQUESTS", "injected by the fault mix", {"Retry-After": str(self.retry_after)}
        )

    def on_body(self, ctx: FaultContext, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        decided = self._decided.pop(id(ctx.record), None)
        if decided is None or ctx.upstream_status is None or ctx.upstream_status >= 300:
            return chunks
        length = int((ctx.upstream_headers or {}).get("Content-Length", "0") or 0)
        if length <= 0:
            return chunks
        return _flip_one(chunks, int(decided[1].random() * length))


async def _flip_one(chunks: AsyncIterator[bytes], offset: int) -> AsyncIterator[bytes]:
    pos = 0
    async for chunk in chunks:
        if pos <= offset < pos + len(chunk):
            buf = bytearray(chunk)
            buf[offset - pos] ^= 0xFF
            chunk = bytes(buf)
        pos += len(chunk)
        yield chunk
