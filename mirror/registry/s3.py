"""An OCI image layout kept in S3 (``s3://BUCKET/PREFIX[:TAG]``) as a repository.

The object-storage twin of :mod:`mirror.registry.ocilayout`: the same keys under ``PREFIX/``
(``oci-layout``, ``index.json`` whose tagged entries carry ``org.opencontainers.image.ref.name``,
``blobs/<alg>/<hex>``) and the same guarantees:

- *Verified before visible.* A blob is hashed while it streams. One that fits in one part is
  buffered (at most one part) and written with one PutObject after its size and digest matched.
  A larger one goes through a multipart upload whose parts are sent concurrently while the
  source streams; the upload is completed only after the digest matched, and aborted otherwise,
  so nothing ever appears at a blob's key unverified. Memory is bounded by the parts in flight:
  ``concurrency`` parts being sent plus the one filling, about ``(concurrency + 1) * part_size``
  per upload (16 MiB parts, 4 in flight: 80 MiB).
- *No orphaned parts.* A failure or cancellation during a multipart upload aborts it. A process
  killed mid-upload cannot abort; an ``AbortIncompleteMultipartUpload`` lifecycle rule on the
  bucket cleans those up.
- *Present blobs are not sent again.* Before a multipart upload the blob's key is checked, and
  writes carry ``If-None-Match: *`` (when conditional writes are on) so an existing object is
  left alone.
- *Keys come from validated digests only.* Blob keys are built from parsed digests; tags are
  validated; a hostile ``index.json`` (bad digests, ``../`` names) is refused with a
  ManifestError naming the entry.
- *index.json is read-modify-written.* One writer per layout is the supported setup. Writes are
  conditional (``If-Match`` on the ETag read, ``If-None-Match: *`` when creating), so a
  concurrent writer's change is detected and the update is redone on the new document instead
  of being lost; stores without conditional writes can turn them off (``conditional_writes``),
  and then the last writer wins.

Requests go through aiobotocore: endpoint URL, region, profile and credentials are
configurable, otherwise the standard AWS chain applies (environment variables, shared config
and credentials files, SSO, web identity, container and instance roles). botocore retries each
request; see :mod:`mirror.registry.aws` for how its errors become mirror's. S3-compatible
stores that reject botocore's default request checksums work with
``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``; stores without conditional writes with
``conditional_writes=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror.registry.aws import STREAM_ERRORS, TRANSLATED, PreconditionFailed, translate
from mirror.registry.base import BlobReader, ChunkSource, FetchedManifest, ManifestInfo
from mirror.registry.layoutindex import MAX_INDEX_BYTES, REF_NAME, index_bytes, parse_index, tag_of
from mirror.registry.multipart import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    check_part_size,
    is_multipart,
    part_size_for,
)
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest
from mirror.types.errors import (
    BlobTooLarge,
    DigestMismatch,
    InputError,
    InvalidReference,
    ManifestError,
    MirrorError,
    NotFound,
    SizeMismatch,
)
from mirror.types.manifest import Descriptor, parse_manifest
from mirror.types.reference import validate_tag

log = logging.getLogger("mirror.s3")

READ_CHUNK = 1024 * 1024
THREADED_HASH_MIN = 256 * 1024
INDEX_ATTEMPTS = 5
OCTET_STREAM = "application/octet-stream"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class S3Options:
    """How to reach the bucket and how to upload. Unset fields fall to the AWS defaults."""

    endpoint_url: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO or moto
    region: str | None = None
    profile: str | None = None  # a profile of the shared AWS config files
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    part_size: int = DEFAULT_PART_SIZE  # the minimum part size; raised for blobs over 10,000 parts
    concurrency: int = 4  # parts of one upload in flight at once
    max_connections: int = 32  # HTTP connections of the client, shared by every upload
    addressing_style: str | None = None  # "path" or "virtual"; None lets botocore choose
    conditional_writes: bool = True  # If-Match / If-None-Match on writes
    max_attempts: int = 5  # botocore's attempts per request (standard retry mode)
    connect_timeout: float = 30.0
    read_timeout: float = 300.0
    idle_timeout: float = 5.0  # seconds without use after which the client is closed

    def __post_init__(self) -> None:
        check_part_size(self.part_size)
        if self.concurrency < 1 or self.max_connections < 1 or self.max_attempts < 1:
            raise InputError("S3 concurrency, max_connections and max_attempts must be at least 1")
        if self.addressing_style not in (None, "auto", "path", "virtual"):
            raise InputError(
                f"S3 addressing style {self.addressing_style!r} is not one of auto, path, virtual"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Options:
        """Options from the environment.

        ``MIRROR_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``),
        ``MIRROR_S3_REGION`` (else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``),
        ``MIRROR_S3_PART_SIZE`` (bytes), ``MIRROR_S3_CONCURRENCY``,
        ``MIRROR_S3_ADDRESSING_STYLE`` and ``MIRROR_S3_CONDITIONAL_WRITES`` (0/1). Profiles
        (``AWS_PROFILE``) and credentials (``AWS_ACCESS_KEY_ID``...) are read by botocore's
        standard chain.
        """
        env = os.environ if env is None else env

        def first(*names: str) -> str | None:
            for name in names:
                value = env.get(name, "").strip()
                if value:
                    return value
            return None

        def integer(name: str, default: int) -> int:
            value = first(name)
            if value is None:
                return default
            try:
                return int(value)
            except ValueError:
                raise InputError(f"${name} must be a whole number, got {value!r}") from None

        conditional = (first("MIRROR_S3_CONDITIONAL_WRITES") or "1").lower()
        if conditional not in _TRUE + _FALSE:
            raise InputError(f"$MIRROR_S3_CONDITIONAL_WRITES must be 0 or 1, got {conditional!r}")
        return cls(
            endpoint_url=first("MIRROR_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region=first("MIRROR_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
            part_size=integer("MIRROR_S3_PART_SIZE", DEFAULT_PART_SIZE),
            concurrency=integer("MIRROR_S3_CONCURRENCY", 4),
            addressing_style=first("MIRROR_S3_ADDRESSING_STYLE"),
            conditional_writes=conditional in _TRUE,
        )


def split_location(location: str) -> tuple[str, str]:
    """``BUCKET[/PREFIX]`` into a validated bucket and prefix (no ``.``/``..``/empty parts)."""
    bucket, _, prefix = location.strip().partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket):
        raise InvalidReference(f"s3://{location}: {bucket!r} is not a valid S3 bucket name")
    if prefix and any(part in ("", ".", "..") or "\\" in part for part in prefix.split("/")):
        raise InvalidReference(
            f"s3://{location}: the prefix may not hold empty, '.' or '..' parts, or backslashes"
        )
    return bucket, prefix


# -- index.json ----------------------------------------------------------------------------------


# -- verification --------------------------------------------------------------------------------


class _Verifier:
    """Counts and hashes a blob's bytes as they pass; raises as soon as there are too many."""

    def __init__(self, desc: Descriptor) -> None:
        self.desc = desc
        self.hasher = desc.digest.hasher()
        self.count = 0

    async def update(self, chunk: bytes) -> None:
        self.count += len(chunk)
        if self.count > self.desc.size:
            raise SizeMismatch(self.desc.size, self.count, what=f"blob {self.desc.digest.short}")
        if len(chunk) >= THREADED_HASH_MIN:
            await asyncio.to_thread(self.hasher.update, chunk)
        else:
            self.hasher.update(chunk)

    def finish(self) -> None:
        if self.count != self.desc.size:
            raise SizeMismatch(self.desc.size, self.count, what=f"blob {self.desc.digest.short}")
        actual = self.hasher.hexdigest()
        if actual != self.desc.digest.hex:
            raise DigestMismatch(str(self.desc.digest), f"{self.desc.digest.algorithm}:{actual}")


# -- reading -------------------------------------------------------------------------------------


class S3BlobReader:
    """A GetObject body being streamed; close() releases the connection and the client."""

    def __init__(
        self, body: Any, size: int | None, what: str, release: Callable[[], Awaitable[None]]
    ) -> None:
        self._body = body
        self.size: int | None = size
        self._what = what
        self._release: Callable[[], Awaitable[None]] | None = release

    async def chunks(self) -> AsyncIterator[bytes]:
        while self._body is not None:
            try:
                chunk = await self._body.read(READ_CHUNK)
            except STREAM_ERRORS + TRANSLATED as exc:
                raise translate(exc, self._what, streaming=True) from None
            if not chunk:
                return
            yield chunk

    async def close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()
        release, self._release = self._release, None
        if release is not None:
            await release()


async def _read_limited(body: Any, limit: int, what: str) -> bytes:
    data = bytearray()
    try:
        while True:
            chunk = await body.read(min(READ_CHUNK, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
            if len(data) > limit:
                raise ManifestError(f"{what} is larger than {limit} bytes")
    except STREAM_ERRORS + TRANSLATED as exc:
        raise translate(exc, what, streaming=True) from None
    finally:
        body.close()
    return bytes(data)


# -- the client ----------------------------------------------------------------------------------


class LingeringClient:
    """A client opened on first use and closed after ``linger`` idle seconds.

    A watcher task closes it once no operation has used it for ``linger`` seconds. When the
    event loop shuts down, ``asyncio.run`` (or ``asyncio.Runner``) cancels the watcher, which
    then closes the client, so no connection pool is left open without anyone calling close.
    Operations still running then keep it open until the last one releases it.
    """

    def __init__(
        self, open_client: Callable[[], contextlib.AbstractAsyncContextManager[Any]], linger: float
    ) -> None:
        self._open_client = open_client
        self._linger = linger
        self.client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._users = 0
        self._idle_since = 0.0
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def acquire(self) -> Any:
        async with self._lock:
            if self.client is None:
                stack = contextlib.AsyncExitStack()
                self.client = await stack.enter_async_context(self._open_client())
                self._stack = stack
                self._watcher = asyncio.create_task(self._watch())
            self._users += 1
            return self.client

    async def release(self) -> None:
        self._users -= 1
        self._idle_since = asyncio.get_running_loop().time()
        if self._users == 0 and self._watcher is None:
            await self._close()

    async def aclose(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if self._users == 0:
            await self._close()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                idle = loop.time() - self._idle_since
                if self._users == 0 and idle >= self._linger:
                    return
                await asyncio.sleep(self._linger - idle if self._users == 0 else self._linger)
        finally:  # idle long enough, or cancelled (aclose, or the event loop shutting down)
            if self._watcher is asyncio.current_task():
                self._watcher = None
            if self._users == 0:
                await self._close()

    async def _close(self) -> None:
        stack, self._stack, self.client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


# -- the store -----------------------------------------------------------------------------------


class S3Layout:
    """One OCI image layout under ``s3://bucket/prefix``; every tag in it is a tag of this repository.

    The aiobotocore client (and its connection pool) is opened on first use, shared by every
    operation, and closed after ``idle_timeout`` seconds without use, by :meth:`aclose`, or when
    the event loop shuts down: callers need not close an S3Layout, and may.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        create: bool = False,
        options: S3Options | None = None,
        session: Any = None,
    ) -> None:
        self.bucket, self.prefix = split_location(f"{bucket}/{prefix}")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._create = create
        self.options = options or S3Options()
        self._session = session
        self._clients = LingeringClient(self._open_client, self.options.idle_timeout)
        self._index_lock = asyncio.Lock()
        self._layout_ok = False
        self.requests_sent = 0  # HTTP requests to S3, retries included (for run reports)
        self._entries: list[dict[str, Any]] | None = None  # the index.json read last
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_location(
        cls,
        location: str,
        *,
        create: bool = False,
        options: S3Options | None = None,
        env: Mapping[str, str] | None = None,
    ) -> S3Layout:
        """The layout at ``BUCKET[/PREFIX]``; ``options`` default to :meth:`S3Options.from_env`."""
        bucket, prefix = split_location(location)
        return cls(bucket, prefix, create=create, options=options or S3Options.from_env(env))

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def registry(self) -> str:
        return self.name

    @property
    def max_blob_size(self) -> int | None:
        return MAX_OBJECT_SIZE

    # -- keys --------------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return self._root + relative

    def _blob_key(self, digest: Digest) -> str:
        # Digest.parse admits only known algorithms and lowercase hex: nothing here can climb.
        return self._key(f"blobs/{digest.algorithm}/{digest.hex}")

    # -- the client --------------------------------------------------------------------------

    def _client_args(self) -> dict[str, Any]:
        from aiobotocore.config import AioConfig

        o = self.options
        config: dict[str, Any] = {
            "retries": {"max_attempts": o.max_attempts, "mode": "standard"},
            "max_pool_connections": o.max_connections,
            "connect_timeout": o.connect_timeout,
            "read_timeout": o.read_timeout,
        }
        if o.addressing_style and o.addressing_style != "auto":
            config["s3"] = {"addressing_style": o.addressing_style}
        args: dict[str, Any] = {"config": AioConfig(**config)}
        if o.endpoint_url:
            args["endpoint_url"] = o.endpoint_url
        if o.region:
            args["region_name"] = o.region
        if o.access_key_id or o.secret_access_key:
            args["aws_access_key_id"] = o.access_key_id
            args["aws_secret_access_key"] = o.secret_access_key
            args["aws_session_token"] = o.session_token
        return args

    def _open_client(self) -> Any:
        if self._session is None:
            from aiobotocore.session import AioSession

            self._session = AioSession(profile=self.options.profile)
        return self._session.create_client("s3", **self._client_args())

    def _count_request(self, **_: Any) -> None:
        self.requests_sent += 1  # returns None: botocore then sends the request itself

    async def _acquire(self) -> Any:
        try:
            client = await self._clients.acquire()
        except TRANSLATED as exc:
            raise translate(exc, f"{self.name}: opening an S3 client") from None
        # Each client has its own event hooks; unique_id makes this a no-op after the first time.
        # before-send runs once per attempt, retries included.
        client.meta.events.register("before-send.s3", self._count_request, unique_id="mirror-requests")
        return client

    async def _release(self) -> None:
        await self._clients.release()

    @property
    def _client(self) -> Any:
        return self._clients.client

    @contextlib.asynccontextmanager
    async def _use(self) -> AsyncIterator[Any]:
        client = await self._acquire()
        try:
            yield client
        finally:
            await self._release()

    async def __aenter__(self) -> S3Layout:
        await self._acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._release()
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client now, or as soon as the operations still using it finish.

        Without this the client closes by itself after ``idle_timeout`` seconds without use, or
        when the event loop shuts down (``asyncio.run`` cancels the task that watches it).
        """
        await self._clients.aclose()

    async def _call(self, what: str, operation: str, **kwargs: Any) -> Any:
        async with self._use() as client:
            try:
                return await getattr(client, operation)(Bucket=self.bucket, **kwargs)
            except TRANSLATED as exc:
                raise translate(exc, what) from None

    async def _head(self, key: str) -> int | None:
        """The size of the object at ``key``, or None when there is none."""
        try:
            head = await self._call(f"{self.name}: HEAD {key}", "head_object", Key=key)
        except NotFound:
            return None
        return int(head.get("ContentLength", 0))

    async def _get_small(self, key: str, limit: int, what: str) -> tuple[bytes, str | None]:
        """The bytes (at most ``limit``) and ETag of a small object. Raises NotFound."""
        async with self._use() as client:
            try:
                resp = await client.get_object(Bucket=self.bucket, Key=key)
            except TRANSLATED as exc:
                raise translate(exc, what) from None
            raw = await _read_limited(resp["Body"], limit, what)
        return raw, resp.get("ETag")

    async def _put(
        self,
        key: str,
        body: bytes,
        content_type: str,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> None:
        """PutObject; conditions apply only when conditional writes are on."""
        kwargs: dict[str, Any] = {"Key": key, "Body": body, "ContentType": content_type}
        if self.options.conditional_writes:
            if if_match is not None:
                kwargs["IfMatch"] = if_match
            elif if_absent:
                kwargs["IfNoneMatch"] = "*"
        await self._call(f"{self.name}: PUT {key}", "put_object", **kwargs)

    async def _put_new(self, key: str, body: bytes, content_type: str) -> None:
        """Write content-addressed bytes; an object already there is left alone."""
        with contextlib.suppress(PreconditionFailed):
            await self._put(key, body, content_type, if_absent=True)

    # -- layout files ------------------------------------------------------------------------

    async def _ensure_layout(self) -> None:
        if self._layout_ok:
            return
        if await self._head(self._key("oci-layout")) is None:
            if not self._create:
                raise NotFound(f"{self.name} is not an OCI image layout (no oci-layout object)", status=404)
            layout = json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode()
            await self._put_new(self._key("oci-layout"), layout, "application/json")
            await self._put_new(self._key("index.json"), index_bytes([]), mt.OCI_INDEX)
        self._layout_ok = True

    async def _read_index(self) -> tuple[list[dict[str, Any]], str | None]:
        """The entries of ``index.json`` and its ETag (None when it does not exist yet)."""
        where = f"{self.name}/index.json"
        try:
            raw, etag = await self._get_small(self._key("index.json"), MAX_INDEX_BYTES, where)
        except NotFound as exc:
            if self._create and exc.code != "NoSuchBucket":
                return [], None
            raise NotFound(
                f"{self.name} is not an OCI image layout: {exc.message}", status=404, code=exc.code
            ) from None
        entries = parse_index(raw, where)
        self._entries = entries
        return entries, etag

    async def _update_index(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Read-modify-write of ``index.json``, redone when another writer changed it meanwhile."""
        async with self._index_lock:
            for attempt in range(INDEX_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
                entries, etag = await self._read_index()
                updated = change(list(entries))
                try:
                    await self._put(
                        self._key("index.json"),
                        index_bytes(updated),
                        mt.OCI_INDEX,
                        if_match=etag,
                        if_absent=etag is None,
                    )
                except PreconditionFailed:
                    continue
                self._entries = updated
                return
        raise MirrorError(
            f"{self.name}/index.json changed under us {INDEX_ATTEMPTS} times in a row: another "
            "writer is updating this layout; one writer per layout is supported"
        )

    async def _media_type(self, digest: Digest, raw: bytes | None = None) -> str:
        """The media type ``index.json`` gives ``digest``, else what the manifest says it is."""
        for entry in reversed(self._entries or []):
            if entry.get("digest") == str(digest) and entry.get("mediaType"):
                return str(entry["mediaType"])
        if raw is None:
            return ""
        try:
            return parse_manifest(raw).media_type
        except MirrorError:
            return ""

    # -- manifests ---------------------------------------------------------------------------

    async def _lookup(self, reference: str) -> Descriptor | None:
        if ":" in reference:
            digest = Digest.parse(reference)
            size = await self._head(self._blob_key(digest))
            if size is None:
                return None
            if self._entries is None:
                with contextlib.suppress(NotFound):
                    await self._read_index()
            media_type = await self._media_type(digest)
            if not media_type and size <= mt.MAX_MANIFEST_BYTES:
                raw, _ = await self._get_small(
                    self._blob_key(digest), mt.MAX_MANIFEST_BYTES, f"{self.name}@{digest}"
                )
                media_type = await self._media_type(digest, raw)
            return Descriptor(media_type, digest, size)
        tag = validate_tag(reference)
        entries, _ = await self._read_index()
        for entry in reversed(entries):
            if tag_of(entry) == tag:
                digest = Digest.parse(str(entry["digest"]))
                return Descriptor(str(entry.get("mediaType", "")), digest, int(entry.get("size", 0)))
        return None

    async def head_manifest(self, reference: str) -> ManifestInfo | None:
        desc = await self._lookup(reference)
        if desc is None:
            return None
        return ManifestInfo(desc.digest, desc.media_type, desc.size)

    async def get_manifest(self, reference: str) -> FetchedManifest:
        if ":" in reference:
            digest = Digest.parse(reference)
            media_type = ""
        else:
            desc = await self._lookup(reference)
            if desc is None:
                raise NotFound(f"{self.name}: no manifest {reference}", status=404)
            digest, media_type = desc.digest, desc.media_type
        try:
            raw, _ = await self._get_small(
                self._blob_key(digest), mt.MAX_MANIFEST_BYTES, f"{self.name} manifest {digest}"
            )
        except NotFound:
            raise NotFound(f"{self.name}: no manifest {reference}", status=404) from None
        actual = Digest.of(raw, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(str(digest), str(actual), what=f"{self.name} manifest")
        media_type = media_type or await self._media_type(digest, raw)
        if not media_type:
            media_type = parse_manifest(raw).media_type  # raises ManifestError saying why
        return FetchedManifest(raw, media_type, actual)

    async def put_manifest(self, reference: str, raw: bytes, media_type: str) -> None:
        digest = Digest.of(raw)
        if ":" in reference and Digest.parse(reference) != digest:
            raise DigestMismatch(reference, str(digest), what="manifest")
        tag = None if ":" in reference else validate_tag(reference)
        await self._ensure_layout()
        await self._put_new(self._blob_key(digest), raw, media_type or OCTET_STREAM)
        if tag is None:
            return
        entry = {
            "mediaType": media_type,
            "digest": str(digest),
            "size": len(raw),
            "annotations": {REF_NAME: tag},
        }

        def set_tag(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [*(e for e in entries if tag_of(e) != tag), entry]

        await self._update_index(set_tag)

    async def delete_manifest(self, reference: str) -> None:
        """Remove a tag, or every entry of a digest, from ``index.json`` (blobs stay)."""
        if ":" in reference:
            key = str(Digest.parse(reference))

            def untag(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [e for e in entries if e.get("digest") != key]
        else:
            tag = validate_tag(reference)

            def untag(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [e for e in entries if tag_of(e) != tag]

        await self._update_index(untag)

    async def list_tags(self, limit: int | None = None) -> list[str]:
        entries, _ = await self._read_index()
        return sorted({t for t in map(tag_of, entries) if t})[:limit]

    # -- blobs -------------------------------------------------------------------------------

    async def has_blob(self, digest: Digest) -> bool:
        return await self._head(self._blob_key(digest)) is not None

    async def open_blob(self, desc: Descriptor) -> BlobReader:
        key = self._blob_key(desc.digest)
        what = f"{self.name}: blob {desc.digest.short}"
        client = await self._acquire()
        try:
            resp = await client.get_object(Bucket=self.bucket, Key=key)
        except BaseException as exc:
            await self._release()
            if isinstance(exc, TRANSLATED):
                error = translate(exc, what)
                if isinstance(error, NotFound):
                    raise NotFound(f"{self.name}: blob {desc.digest} not found", status=404) from None
                raise error from None
            raise
        size = resp.get("ContentLength")
        return S3BlobReader(resp["Body"], int(size) if size is not None else None, what, self._release)

    async def mount_blob(self, digest: Digest, from_repository: str) -> bool:
        return False

    async def put_blob(self, desc: Descriptor, source: ChunkSource, *, replayable: bool) -> None:
        """Store a verified blob (``replayable`` is not needed: botocore retries each part)."""
        if desc.size > MAX_OBJECT_SIZE:
            raise BlobTooLarge(
                f"blob {desc.digest.short} is {desc.size} bytes, over the {MAX_OBJECT_SIZE}-byte "
                f"S3 object limit of {self.name}"
            )
        await self._ensure_layout()
        key = self._blob_key(desc.digest)
        part_size = part_size_for(desc.size, self.options.part_size)
        if not is_multipart(desc.size, part_size):
            verifier = _Verifier(desc)
            chunks: list[bytes] = []
            async for chunk in source():
                await verifier.update(chunk)
                chunks.append(chunk)
            verifier.finish()
            await self._put_new(key, b"".join(chunks), OCTET_STREAM)
            return
        existing = await self._head(key)
        if existing == desc.size:
            return  # already there (it was verified when written): not sent again
        # An object of another size under this digest is not this blob: it is replaced.
        await self._multipart(key, desc, source, part_size, replace=existing is not None)

    async def _multipart(
        self, key: str, desc: Descriptor, source: ChunkSource, part_size: int, *, replace: bool
    ) -> None:
        what = f"{self.name}: blob {desc.digest.short}"
        async with self._use() as client:

            async def call(operation: str, **kwargs: Any) -> Any:
                try:
                    return await getattr(client, operation)(Bucket=self.bucket, Key=key, **kwargs)
                except TRANSLATED as exc:
                    raise translate(exc, f"{what}: {operation}") from None

            created = await call("create_multipart_upload", ContentType=OCTET_STREAM)
            upload_id = str(created["UploadId"])
            etags: dict[int, str] = {}
            slots = asyncio.Semaphore(self.options.concurrency)
            tasks: list[asyncio.Task[None]] = []

            async def upload(number: int, data: bytes) -> None:
                try:
                    part = await call("upload_part", UploadId=upload_id, PartNumber=number, Body=data)
                    etags[number] = str(part["ETag"])
                finally:
                    slots.release()

            async def free_slot() -> None:
                """Wait until fewer than ``concurrency`` parts are in flight; raise if one failed."""
                await slots.acquire()
                for task in tasks:  # a failed part stops the upload before more is read
                    error = task.exception() if task.done() and not task.cancelled() else None
                    if error is not None:
                        slots.release()
                        raise error

            def send(data: bytes) -> None:
                tasks.append(asyncio.create_task(upload(len(tasks) + 1, data)))

            try:
                verifier = _Verifier(desc)
                buffer = bytearray()
                async for chunk in source():
                    await verifier.update(chunk)
                    buffer += chunk
                    # Cut a part only when more bytes follow it: the last part waits for the digest.
                    while len(buffer) > part_size:
                        await free_slot()  # the source waits meanwhile: memory stays bounded
                        send(bytes(buffer[:part_size]))
                        del buffer[:part_size]
                verifier.finish()
                await free_slot()
                send(bytes(buffer))
                del buffer
                await asyncio.gather(*tasks)
                parts = [{"ETag": etags[n], "PartNumber": n} for n in sorted(etags)]
                complete: dict[str, Any] = {"UploadId": upload_id, "MultipartUpload": {"Parts": parts}}
                if self.options.conditional_writes and not replace:
                    complete["IfNoneMatch"] = "*"
                try:
                    await call("complete_multipart_upload", **complete)
                except PreconditionFailed:
                    # Another writer stored this blob meanwhile: keep theirs, drop ours.
                    await self._abort(key, upload_id)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                abort = asyncio.create_task(self._abort(key, upload_id))
                self._background.add(abort)
                abort.add_done_callback(self._background.discard)
                with contextlib.suppress(Exception):
                    await asyncio.shield(abort)  # when cancelled again, the abort goes on by itself
                raise

    async def _abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload, holding its own use of the client (it may outlive the caller)."""
        try:
            await self._call(
                f"{self.name}: abort upload of {key}", "abort_multipart_upload", Key=key, UploadId=upload_id
            )
        except NotFound:
            pass  # already gone
        except MirrorError as exc:
            log.warning(
                "%s: could not abort multipart upload %s of %s: %s; a bucket lifecycle rule "
                "(AbortIncompleteMultipartUpload) removes it",
                self.name,
                upload_id,
                key,
                exc.message,
            )
