"""The registry API of the synthetic registry (see :mod:`benchmarks.synthetic_server`): the
synthetic source image and its layer (generated while sent, ranges, resets), a generated fleet,
the discarding sink for uploads, bearer tokens, and the counters answered at ``/_stats``."""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.fleet_content import Fleet
from benchmarks.synthetic_http import (
    RESET,
    SEND_CHUNK,
    Request,
    Response,
    Upload,
    error_response,
    json_response,
)
from mirror.copy.synthetic_blob import BLOCK, GZIP_HEADER, synthetic_chunks, synthetic_image
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest

_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/$")
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
LIST_PAGE = 1000  # listing page size when the client asks for none (distribution's default is 100)


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)  # "HEAD manifest", "GET tags", ...
    bytes_served: int = 0
    bytes_received: int = 0
    blobs_received: int = 0
    tokens_issued: int = 0
    token_scopes: Counter[str] = field(default_factory=Counter)
    challenges: int = 0  # 401 to a request without a token
    expired_rejected: int = 0  # 401 to a request whose token had expired
    chunked_rejected: int = 0
    digest_rejected: int = 0
    received_digests: list[str] = field(default_factory=list)
    layer_gets: list[list[int]] = field(default_factory=list)  # [first byte, bytes sent] per read
    resets: int = 0
    put_seconds: float = 0.0  # first to last byte of blob PUT bodies

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "routes": dict(self.routes),
            "bytes_served": self.bytes_served,
            "bytes_received": self.bytes_received,
            "blobs_received": self.blobs_received,
            "tokens_issued": self.tokens_issued,
            "token_scopes": dict(self.token_scopes),
            "challenges": self.challenges,
            "expired_rejected": self.expired_rejected,
            "chunked_rejected": self.chunked_rejected,
            "digest_rejected": self.digest_rejected,
            "received_digests": self.received_digests[-16:],
            "layer_gets": self.layer_gets[-64:],
            "resets": self.resets,
            "put_seconds": round(self.put_seconds, 3),
        }


class SyntheticRegistry:
    def __init__(
        self,
        seed: str,
        size: int,
        digest: Digest | None,
        *,
        source_repo: str = "synthetic/blob",
        token_ttl: float | None = None,
        verify: bool = False,
        fleet: Fleet | None = None,
        reset_at: list[int] | None = None,
    ) -> None:
        self.seed = seed
        self.size = size
        self.image = synthetic_image(digest, size, note="synthetic source") if digest else None
        self.fleet = fleet
        self.reset_at = sorted(reset_at or [])  # offsets where a layer read is cut, each once
        self.source_repo = source_repo
        self.token_ttl = token_ttl
        self.verify = verify
        self.stats = Stats()
        self.port = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._blobs: dict[tuple[str, str], int] = {}  # sink: (repository, digest) -> size
        self._manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._tags: dict[str, set[str]] = {}  # sink: repository -> tags pushed
        self._uploads: set[str] = set()

    # -- dispatch ----------------------------------------------------------------------------

    def is_upload(self, req: Request) -> bool:
        return req.method == "PUT" and _UPLOAD.match(req.path) is not None

    def handle(self, req: Request) -> Response:
        if req.path != "/_stats":
            self.stats.requests[req.method] += 1
            self.stats.routes[f"{req.method} {_route(req.path)}"] += 1
        if req.path == "/_stats":
            return json_response(200, self.stats.as_dict())
        if req.path == "/token":
            return self._token(req)
        denied = self._auth(req)
        if denied is not None:
            return denied
        if req.path == "/v2/":
            return json_response(200, {})
        if req.path == "/v2/_catalog" and req.method == "GET":
            names = set(self._tags) | set(self.fleet.names if self.fleet else ())
            return _page(req, "/v2/_catalog", "repositories", sorted(names))
        m = _TAGS.match(req.path)
        if m and req.method == "GET":
            return self._list_tags(req, m["name"])
        m = _MANIFEST.match(req.path)
        if m:
            return self._manifest(req, m["name"], m["ref"])
        m = _UPLOADS.match(req.path)
        if m and req.method == "POST":
            return self._post_upload(req, m["name"])
        m = _BLOB.match(req.path)
        if m and req.method in ("GET", "HEAD"):
            return self._blob(req, m["name"], m["digest"])
        return error_response(405 if m else 404, "UNSUPPORTED", f"{req.method} {req.path}")

    def _auth(self, req: Request) -> Response | None:
        if self.token_ttl is None:
            return None
        header = req.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is not None and expiry > time.monotonic():
            return None
        if expiry is not None:
            self.stats.expired_rejected += 1
        else:
            self.stats.challenges += 1
        m = (
            _MANIFEST.match(req.path)
            or _UPLOAD.match(req.path)
            or _UPLOADS.match(req.path)
            or _BLOB.match(req.path)
        )
        scope = ""
        if m:
            action = "pull" if req.method in ("GET", "HEAD") else "pull,push"
            scope = f',scope="repository:{m["name"]}:{action}"'
        realm = f"http://127.0.0.1:{self.port}/token"
        resp = error_response(401, "UNAUTHORIZED", "authentication required")
        resp.headers["WWW-Authenticate"] = f'Bearer realm="{realm}",service="synthetic"{scope}'
        return resp

    def _token(self, req: Request) -> Response:
        ttl = self.token_ttl or 300.0
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + ttl
        self.stats.tokens_issued += 1
        for key, value in req.query.items():
            if key == "scope":
                self.stats.token_scopes[value] += 1
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return json_response(200, {"token": token, "expires_in": int(ttl), "issued_at": issued})

    # -- manifests ---------------------------------------------------------------------------

    def _list_tags(self, req: Request, name: str) -> Response:
        tags = set(self._tags.get(name, ()))
        if self.fleet is not None and self.fleet.repository(name) is not None:
            tags.update(self.fleet.tag_names())
        elif not tags:
            return error_response(404, "NAME_UNKNOWN", "repository name not known to registry")
        return _page(req, f"/v2/{name}/tags/list", "tags", sorted(tags), name=name)

    def _manifest(self, req: Request, name: str, ref: str) -> Response:
        fleet_repo = self.fleet.repository(name) if self.fleet else None
        if fleet_repo is not None and req.method in ("GET", "HEAD") and self.fleet is not None:
            data = self.fleet.find_manifest(fleet_repo, ref)
            if data is not None:
                return self._bytes(req, data, mt.OCI_MANIFEST, Digest.of(data))
        if self.image is not None and name == self.source_repo:
            if req.method not in ("GET", "HEAD"):
                return error_response(405, "UNSUPPORTED", "the synthetic source is read-only")
            if ":" in ref and ref != str(self.image.manifest_digest):
                return error_response(404, "MANIFEST_UNKNOWN", "unknown manifest")
            return self._bytes(req, self.image.manifest, mt.OCI_MANIFEST, self.image.manifest_digest)
        key = (name, ref)
        if req.method == "PUT":
            media_type = req.headers.get("content-type", mt.OCI_MANIFEST)
            digest = Digest.of(req.body)
            self._manifests[key] = (req.body, media_type)
            self._manifests[(name, str(digest))] = (req.body, media_type)
            if ":" not in ref:
                self._tags.setdefault(name, set()).add(ref)
            return Response(
                201, {"Docker-Content-Digest": str(digest), "Location": f"/v2/{name}/manifests/{digest}"}
            )
        if req.method == "DELETE":
            found = self._manifests.get(key)
            if found is None:
                return error_response(404, "MANIFEST_UNKNOWN", "unknown manifest")
            digest = Digest.of(found[0])
            gone = [k for k, v in self._manifests.items() if k[0] == name and Digest.of(v[0]) == digest]
            for k in gone:
                del self._manifests[k]
            return Response(202)
        found = self._manifests.get(key)
        if found is None:
            return error_response(404, "MANIFEST_UNKNOWN", "unknown manifest")
        return self._bytes(req, found[0], found[1], Digest.of(found[0]))

    def _bytes(self, req: Request, data: bytes, media_type: str, digest: Digest) -> Response:
        headers = {"Docker-Content-Digest": str(digest), "Content-Type": media_type}
        if req.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(200, headers)
        self.stats.bytes_served += len(data)
        return Response(200, headers, data)

    # -- blobs -------------------------------------------------------------------------------

    def _blob(self, req: Request, name: str, digest: str) -> Response:
        fleet_repo = self.fleet.repository(name) if self.fleet else None
        if fleet_repo is not None and self.fleet is not None:
            data = self.fleet.find_blob(fleet_repo, digest)
            if data is not None:
                return self._bytes(req, data, "application/octet-stream", Digest.parse(digest))
        if self.image is not None and name == self.source_repo:
            if digest == str(self.image.config_desc.digest):
                return self._bytes(
                    req, self.image.config, "application/octet-stream", self.image.config_desc.digest
                )
            if digest != str(self.image.layer.digest):
                return error_response(404, "BLOB_UNKNOWN", "unknown blob")
            headers = {
                "Content-Length": str(self.size),
                "Content-Type": "application/octet-stream",
                "Docker-Content-Digest": digest,
                "ETag": f'"{digest}"',
                "Accept-Ranges": "bytes",
            }
            if req.method == "HEAD":
                return Response(200, headers)
            start = _range_start(req, headers["ETag"], self.size)
            if start:
                headers["Content-Length"] = str(self.size - start)
                headers["Content-Range"] = f"bytes {start}-{self.size - 1}/{self.size}"
                return Response(206, headers, stream=self._layer(start))
            return Response(200, headers, stream=self._layer())
        size = self._blobs.get((name, digest))
        if size is None or req.method != "HEAD":
            return error_response(404, "BLOB_UNKNOWN", "unknown blob (the sink keeps no bytes)")
        return Response(200, {"Content-Length": str(size), "Docker-Content-Digest": digest})

    def _layer(self, start: int = 0) -> Iterator[bytes | object]:
        record = [start, 0]
        self.stats.layer_gets.append(record)
        chunks = synthetic_chunks(self.seed, self.size, SEND_CHUNK) if not start else _layer_from(self, start)
        pos = start
        for chunk in chunks:
            cut = next((r for r in self.reset_at if pos <= r < pos + len(chunk)), None)
            if cut is not None:
                self.reset_at.remove(cut)
                self.stats.resets += 1
                part = chunk[: cut - pos]
                self.stats.bytes_served += len(part)
                record[1] += len(part)
                yield part
                yield RESET
                return
            pos += len(chunk)
            self.stats.bytes_served += len(chunk)
            record[1] += len(chunk)
            yield chunk

    def _post_upload(self, req: Request, name: str) -> Response:
        mount, source = req.query.get("mount"), req.query.get("from", "")
        known = self._blobs.get((source, mount or ""))
        if mount and known is None and self.fleet is not None:
            fleet_repo = self.fleet.repository(source)
            data = self.fleet.find_blob(fleet_repo, mount) if fleet_repo is not None else None
            known = None if data is None else len(data)
        if mount and known is not None:
            self._blobs[(name, mount)] = known
            return Response(201, {"Docker-Content-Digest": mount, "Location": f"/v2/{name}/blobs/{mount}"})
        upload = uuid.uuid4().hex
        self._uploads.add(upload)
        return Response(
            202,
            {
                "Location": f"/v2/{name}/blobs/uploads/{upload}?_state={secrets.token_urlsafe(8)}",
                "Docker-Upload-UUID": upload,
                "Range": "0-0",
            },
        )

    def start_upload(self, req: Request) -> Upload | Response:
        """Checks before a blob PUT body is read: a Response refuses it (the connection then closes)."""
        denied = self._auth(req)
        if denied is not None:
            return denied
        m = _UPLOAD.match(req.path)
        assert m is not None
        if m["id"] not in self._uploads:
            return error_response(404, "BLOB_UPLOAD_UNKNOWN", "unknown upload")
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            self.stats.chunked_rejected += 1
            return error_response(400, "BLOB_UPLOAD_INVALID", "chunked transfer encoding is not accepted")
        length = req.headers.get("content-length", "")
        if not length.isdigit():
            return error_response(411, "SIZE_INVALID", "Content-Length required")
        return Upload(req, int(length), hashlib.sha256() if self.verify else None)

    def finish_upload(self, up: Upload) -> Response:
        req = up.request
        m = _UPLOAD.match(req.path)
        assert m is not None
        self.stats.requests[req.method] += 1
        self.stats.routes["PUT blob"] += 1
        self.stats.put_seconds += time.monotonic() - up.began
        self.stats.bytes_received += up.received
        self._uploads.discard(m["id"])
        digest = req.query.get("digest", "")
        if up.hasher is not None and f"sha256:{up.hasher.hexdigest()}" != digest:
            self.stats.digest_rejected += 1
            return error_response(400, "DIGEST_INVALID", "digest mismatch")
        self._blobs[(m["name"], digest)] = up.received
        self.stats.blobs_received += 1
        self.stats.received_digests.append(digest)
        return Response(201, {"Docker-Content-Digest": digest, "Location": f"/v2/{m['name']}/blobs/{digest}"})


def _route(path: str) -> str:
    """What a request path addresses, for the per-route counters."""
    if path == "/v2/":
        return "ping"
    if path == "/v2/_catalog":
        return "catalog"
    if path == "/token":
        return "token"
    for pattern, name in ((_TAGS, "tags"), (_MANIFEST, "manifest"), (_UPLOADS, "upload")):
        if pattern.match(path):
            return name
    if _UPLOAD.match(path):
        return "upload"
    return "blob" if _BLOB.match(path) else "other"


def _page(req: Request, path: str, key: str, values: list[str], **extra: str) -> Response:
    """One page of a listing: ``n`` entries after ``last``, with a ``Link`` to the next page."""
    n = req.query.get("n", "")
    size = int(n) if n.isdigit() and int(n) > 0 else LIST_PAGE
    last = req.query.get("last")
    start = 0
    if last is not None:
        import bisect

        start = bisect.bisect_right(values, last)
    page = values[start : start + size]
    headers: dict[str, str] = {}
    if start + size < len(values):
        headers["Link"] = f'<{path}?n={size}&last={page[-1]}>; rel="next"'
    return json_response(200, {**extra, key: page}, headers)


def _layer_from(server: SyntheticRegistry, start: int) -> Iterator[bytes]:
    """The synthetic layer from byte ``start`` on: its 1 MiB blocks regenerated from their index."""
    tail = random.Random(server.seed).randbytes(BLOCK)[8:]
    header = GZIP_HEADER[: server.size]
    pos = start
    if pos < len(header):
        yield header[pos:]
        pos = len(header)
    while pos < server.size:
        block, skip = divmod(pos - len(header), BLOCK)
        count = min(SEND_CHUNK // BLOCK, -(-(server.size - pos + skip) // BLOCK))
        data = b"".join(i.to_bytes(8, "big") + tail for i in range(block, block + count))
        data = data[skip : skip + server.size - pos]
        pos += len(data)
        yield data


def _range_start(req: Request, etag: str, size: int) -> int:
    """The first byte a ``Range: bytes=N-`` request asks for (0: the whole blob, as when its
    ``If-Range`` names another ETag or the range is not one this server answers)."""
    value = req.headers.get("range", "")
    m = re.fullmatch(r"bytes=(\d+)-", value.strip())
    if not m or int(m[1]) >= size:
        return 0
    if_range = req.headers.get("if-range")
    if if_range is not None and if_range != etag:
        return 0
    return int(m[1])
