"""A generated fleet of tiny images for scale benchmarks: REPOS repositories x TAGS tags, no disk.

Repository ``i`` is ``PREFIX/rNNNN`` and tag ``j`` is ``tNNN``. Image (i, j) is an OCI image
manifest with three blobs:

- a base layer shared by every repository of its group (``i % bases``), gzip, a few hundred bytes;
- a repository layer shared by all tags of repository ``i``, gzip;
- a config unique to (i, j) (it names the image), a few hundred bytes.

Everything is derived from (i, j) on demand; only the digests are indexed at start-up (a dict
lookup per blob or manifest request, about 30 MiB for 100,000 tags). The same fleet can be served
under several prefixes, so one process can be the source (``fleet/*``) and another the
destination holding the same content (``mirror/*``): a warm pass then finds every tag equal.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass

from mirror.types import mediatypes as mt

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _payload(seed: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass(frozen=True)
class Layer:
    data: bytes  # gzip
    digest: str
    diff_id: str  # digest of the uncompressed bytes

    @classmethod
    def make(cls, seed: str, size: int) -> Layer:
        raw = _payload(seed, size)
        data = gzip.compress(raw, mtime=0)
        return cls(data, _sha(data), _sha(raw))

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": LAYER, "digest": self.digest, "size": len(self.data)}


class Fleet:
    """The fleet's content; ``prefixes`` are the repository prefixes it is served under."""

    def __init__(
        self,
        repos: int,
        tags: int,
        *,
        prefixes: tuple[str, ...] = ("fleet",),
        bases: int = 10,
        layer: int = 512,
    ) -> None:
        if repos < 1 or tags < 1 or repos > 9999 or tags > 999:
            raise ValueError("a fleet has 1-9999 repositories of 1-999 tags")
        self.repos, self.tags, self.prefixes = repos, tags, prefixes
        self.bases = [Layer.make(f"base-{b}", layer) for b in range(max(1, min(bases, repos)))]
        self.repo_layers = [Layer.make(f"repo-{i}", layer) for i in range(repos)]
        self._manifests: dict[str, int] = {}  # manifest digest -> i * tags + j
        self._configs: dict[str, int] = {}  # config digest -> i * tags + j
        for i in range(repos):
            for j in range(tags):
                config = self.config(i, j)
                self._configs[_sha(config)] = i * tags + j
                self._manifests[_sha(self.manifest(i, j, config))] = i * tags + j
        self.names = sorted(f"{p}/r{i:04d}" for p in prefixes for i in range(repos))

    @property
    def images(self) -> int:
        return self.repos * self.tags

    def repository(self, name: str) -> int | None:
        """The index of repository ``name``, or None when it is not part of the fleet."""
        prefix, _, last = name.rpartition("/")
        if prefix not in self.prefixes or len(last) != 5 or last[0] != "r" or not last[1:].isdigit():
            return None
        i = int(last[1:])
        return i if i < self.repos else None

    def tag_names(self) -> list[str]:
        return [f"t{j:03d}" for j in range(self.tags)]

    def config(self, i: int, j: int) -> bytes:
        doc = {
            "architecture": "amd64",
            "os": "linux",
            "created": f"2026-01-01T00:{j // 60 % 60:02d}:{j % 60:02d}Z",
            "config": {"Labels": {"org.example.image": f"r{i:04d}:t{j:03d}"}},
            "rootfs": {
                "type": "layers",
                "diff_ids": [self.bases[i % len(self.bases)].diff_id, self.repo_layers[i].diff_id],
            },
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    def manifest(self, i: int, j: int, config: bytes | None = None) -> bytes:
        config = self.config(i, j) if config is None else config
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": _sha(config), "size": len(config)},
            "layers": [self.bases[i % len(self.bases)].descriptor(), self.repo_layers[i].descriptor()],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def find_manifest(self, i: int, ref: str) -> bytes | None:
        """Repository ``i``'s manifest for a tag or a digest."""
        if ref.startswith("sha256:"):
            key = self._manifests.get(ref)
            if key is None or key // self.tags != i:
                return None
            return self.manifest(i, key % self.tags)
        if len(ref) == 4 and ref[0] == "t" and ref[1:].isdigit() and int(ref[1:]) < self.tags:
            return self.manifest(i, int(ref[1:]))
        return None

    def find_blob(self, i: int, digest: str) -> bytes | None:
        """Repository ``i``'s blob ``digest`` (a layer it references or one of its configs)."""
        base = self.bases[i % len(self.bases)]
        if digest == base.digest:
            return base.data
        if digest == self.repo_layers[i].digest:
            return self.repo_layers[i].data
        key = self._configs.get(digest)
        if key is None or key // self.tags != i:
            return None
        return self.config(i, key % self.tags)

    def unique_blob_bytes(self) -> int:
        configs = sum(len(self.config(i, j)) for i in range(self.repos) for j in range(self.tags))
        return configs + sum(len(b.data) for b in self.bases) + sum(len(r.data) for r in self.repo_layers)
