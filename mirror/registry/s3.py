"""An OCI image layout kept in S3 (``s3://BUCKET/PREFIX[:TAG]``) as a repository.

:class:`S3Layout` is the repository; :class:`S3Options` say how to reach the bucket and upload.
The object-storage twin of :mod:`mirror.registry.ocilayout`: the same keys under ``PREFIX/``
(``oci-layout``, ``index.json`` whose tagged entries carry ``org.opencontainers.image.ref.name``,
``blobs/<alg>/<hex>``) and the same guarantees:

- *Verified before visible.* A blob is hashed while it streams and appears at its key only after
  its size and digest matched: one PutObject, or a multipart upload completed only then, with
  memory bounded by the parts in flight (:mod:`mirror.registry.s3upload`).
- *No orphaned parts.* A failure or cancellation during a multipart upload aborts it. A process
  killed mid-upload cannot abort; an ``AbortIncompleteMultipartUpload`` lifecycle rule on the
  bucket cleans those up.
- *Present blobs are not sent again.* Before a multipart upload the blob's key is checked, and
  writes carry ``If-None-Match: *`` (when conditional writes are on) so an existing object is
  left alone.
- *Keys come from validated digests only.* Blob keys are built from parsed digests; tags are
  validated; a hostile ``index.json`` (bad digests, ``../`` names) is refused with a
  ManifestError naming the entry.
- *index.json is read-modify-written* with conditional writes: a concurrent writer's change is
  detected and the update redone on top of it (:mod:`mirror.registry.s3index`), not lost.

Requests go through one aiobotocore client per layout (:mod:`mirror.registry.s3bucket`):
endpoint URL, region, profile and credentials are configurable, otherwise the standard AWS
chain applies (environment variables, shared config and credentials files, SSO, web identity,
container and instance roles). botocore retries each request; see :mod:`mirror.registry.aws`
for how its errors become mirror's. S3-compatible stores that reject botocore's default request
checksums work with ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``; stores without
conditional writes with ``conditional_writes=False``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror.registry.aws import PreconditionFailed
from mirror.registry.base import BlobReader, ChunkSource, FetchedManifest, ManifestInfo
from mirror.registry.completeness import require_content
from mirror.registry.layoutindex import REF_NAME, index_bytes, tag_of
from mirror.registry.layoutreferrers import SubjectScan, add_referrer, tagged_digest
from mirror.registry.multipart import DEFAULT_PART_SIZE, MAX_OBJECT_SIZE, check_part_size, part_size_for
from mirror.registry.resume import Reopened, ResumingReader, range_mismatch, strong_etag
from mirror.registry.s3bucket import OCTET_STREAM, S3Bucket
from mirror.registry.s3index import Entries, S3Index
from mirror.registry.s3upload import S3Uploads
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest, is_digest
from mirror.types.errors import BlobTooLarge, DigestMismatch, InputError, InvalidReference, NotFound
from mirror.types.manifest import Descriptor, parse_manifest
from mirror.types.reference import validate_ref_name
from mirror.types.referrers import listed, referrer_entry, referrers_tag, subject_of

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

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments of ``create_client("s3", ...)`` for these options."""
        from aiobotocore.config import AioConfig

        config: dict[str, Any] = {
            "retries": {"max_attempts": self.max_attempts, "mode": "standard"},
            "max_pool_connections": self.max_connections,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.addressing_style and self.addressing_style != "auto":
            config["s3"] = {"addressing_style": self.addressing_style}
        args: dict[str, Any] = {"config": AioConfig(**config)}
        if self.endpoint_url:
            args["endpoint_url"] = self.endpoint_url
        if self.region:
            args["region_name"] = self.region
        if self.access_key_id or self.secret_access_key:
            args["aws_access_key_id"] = self.access_key_id
            args["aws_secret_access_key"] = self.secret_access_key
            args["aws_session_token"] = self.session_token
        return args


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
        self._s3 = S3Bucket(
            self.bucket,
            self.name,
            open_client=self._open_client,
            idle_timeout=self.options.idle_timeout,
            conditional_writes=self.options.conditional_writes,
        )
        self._index = S3Index(self._s3, self._key("index.json"), create=create)
        self._scan = SubjectScan(self._manifest_bytes)
        self._uploads = S3Uploads(self._s3, concurrency=self.options.concurrency)
        self._layout_ok = False
        self._held: dict[str, int] = {}  # blob key -> size, of objects this layout wrote or found

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

    @property
    def requests_sent(self) -> int:
        """HTTP requests to S3, retries included (for run reports)."""
        return self._s3.requests_sent

    # -- keys --------------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return self._root + relative

    def _blob_key(self, digest: Digest) -> str:
        # Digest.parse admits only known algorithms and lowercase hex: nothing here can climb.
        return self._key(f"blobs/{digest.algorithm}/{digest.hex}")

    # -- the client --------------------------------------------------------------------------

    def _open_client(self) -> Any:
        if self._session is None:
            from aiobotocore.session import AioSession

            self._session = AioSession(profile=self.options.profile)
        return self._session.create_client("s3", **self.options.client_args())

    @property
    def _client(self) -> Any:
        return self._s3.client

    async def __aenter__(self) -> S3Layout:
        await self._s3.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._s3.release()
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client now, or as soon as the operations still using it finish.

        Without this the client closes by itself after ``idle_timeout`` seconds without use, or
        when the event loop shuts down (``asyncio.run`` cancels the task that watches it).
        """
        await self._s3.aclose()

    # -- layout files ------------------------------------------------------------------------

    async def _ensure_layout(self) -> None:
        if self._layout_ok:
            return
        if await self._s3.head(self._key("oci-layout")) is None:
            if not self._create:
                raise NotFound(f"{self.name} is not an OCI image layout (no oci-layout object)", status=404)
            layout = json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode()
            await self._s3.put_new(self._key("oci-layout"), layout, "application/json")
            await self._s3.put_new(self._key("index.json"), index_bytes([]), mt.OCI_INDEX)
        self._layout_ok = True

    # -- manifests ---------------------------------------------------------------------------

    async def _lookup(self, reference: str) -> Descriptor | None:
        if is_digest(reference):
            digest = Digest.parse(reference)
            size = await self._s3.head(self._blob_key(digest))
            if size is None:
                return None
            if self._index.entries is None:
                with contextlib.suppress(NotFound):
                    await self._index.read()
            media_type = await self._index.media_type(digest)
            if not media_type and size <= mt.MAX_MANIFEST_BYTES:
                raw, _ = await self._s3.get_small(
                    self._blob_key(digest), mt.MAX_MANIFEST_BYTES, f"{self.name}@{digest}"
                )
                media_type = await self._index.media_type(digest, raw)
            return Descriptor(media_type, digest, size)
        tag = reference  # a reference name is matched as it is, never used as a key
        entries, _ = await self._index.read()
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
        if is_digest(reference):
            digest = Digest.parse(reference)
            media_type = ""
        else:
            desc = await self._lookup(reference)
            if desc is None:
                raise NotFound(f"{self.name}: no manifest {reference}", status=404)
            digest, media_type = desc.digest, desc.media_type
        try:
            raw, _ = await self._s3.get_small(
                self._blob_key(digest), mt.MAX_MANIFEST_BYTES, f"{self.name} manifest {digest}"
            )
        except NotFound:
            raise NotFound(f"{self.name}: no manifest {reference}", status=404) from None
        actual = Digest.of(raw, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(str(digest), str(actual), what=f"{self.name} manifest")
        media_type = media_type or await self._index.media_type(digest, raw)
        if not media_type:
            media_type = parse_manifest(raw).media_type  # raises ManifestError saying why
        return FetchedManifest(raw, media_type, actual)

    async def put_manifest(self, reference: str, raw: bytes, media_type: str) -> None:
        digest = Digest.of(raw)
        if is_digest(reference) and Digest.parse(reference) != digest:
            raise DigestMismatch(reference, str(digest), what="manifest")
        tag = None if is_digest(reference) else validate_ref_name(reference)
        await require_content(self.name, reference, raw, media_type, self._holds)
        await self._ensure_layout()
        await self._uploads.put_whole(self._blob_key(digest), raw, media_type or OCTET_STREAM)
        self._held[self._blob_key(digest)] = len(raw)
        subject = subject_of(raw)
        if tag is None and subject is None:
            return
        entry = {"mediaType": media_type, "digest": str(digest), "size": len(raw)}

        async def change(entries: Entries) -> Entries:
            if tag is not None:
                entries = [
                    *(e for e in entries if tag_of(e) != tag),
                    {**entry, "annotations": {REF_NAME: tag}},
                ]
            if subject is not None:
                entries = await self._with_referrer(entries, subject, referrer_entry(raw, media_type, digest))
            return entries

        await self._index.update(change)

    async def _with_referrer(self, entries: Entries, subject: Digest, entry: dict[str, Any]) -> Entries:
        """``entries`` listing the referrer ``entry`` (:mod:`mirror.registry.layoutreferrers`);
        the new referrers index is stored before ``index.json`` names it."""
        current = tagged_digest(entries, referrers_tag(subject))
        index = None if current is None else await self._manifest_bytes(current)
        updated, new_index = add_referrer(entries, subject, entry, index, self.name)
        if new_index is not None:
            key = self._blob_key(Digest.of(new_index))
            await self._uploads.put_whole(key, new_index, mt.OCI_INDEX)
            self._held[key] = len(new_index)
        return updated

    async def referrers(self, digest: Digest) -> list[Descriptor]:
        """Manifests ``index.json`` names (tagged or not) whose ``subject`` is ``digest``."""
        entries, _ = await self._index.read()
        return await self._scan.referrers(entries, digest)

    async def list_referrers(self, subject: Digest, digests: list[Digest]) -> None:
        """Make sure the referrers ``digests`` of ``subject``, stored here already (by an earlier
        run whose listing failed, or one that did not list them), are listed in ``index.json``;
        nothing is written when they are."""
        entries, _ = await self._index.read()
        current = tagged_digest(entries, referrers_tag(subject))
        index = None if current is None else await self._manifest_bytes(current)
        named = {str(e.get("digest")) for e in entries}
        missing = [d for d in digests if str(d) not in named or not listed(index, str(d))]
        if not missing:
            return

        async def change(entries: Entries) -> Entries:
            for digest in missing:
                raw = await self._manifest_bytes(digest)
                if subject_of(raw) == subject:
                    entries = await self._with_referrer(entries, subject, referrer_entry(raw, "", digest))
            return entries

        await self._index.update(change)

    async def _manifest_bytes(self, digest: Digest) -> bytes:
        what = f"{self.name} manifest {digest}"
        raw, _ = await self._s3.get_small(self._blob_key(digest), mt.MAX_MANIFEST_BYTES, what)
        if Digest.of(raw, digest.algorithm) != digest:
            raise DigestMismatch(str(digest), str(Digest.of(raw, digest.algorithm)), what=what)
        return raw

    async def delete_manifest(self, reference: str) -> None:
        """Remove a tag, or every entry of a digest, from ``index.json`` (blobs stay)."""
        if is_digest(reference):
            key = str(Digest.parse(reference))

            def untag(entries: Entries) -> Entries:
                return [e for e in entries if e.get("digest") != key]
        else:
            tag = reference

            def untag(entries: Entries) -> Entries:
                return [e for e in entries if tag_of(e) != tag]

        await self._index.update(untag)

    async def list_tags(self, limit: int | None = None) -> list[str]:
        entries, _ = await self._index.read()
        return sorted({t for t in map(tag_of, entries) if t})[:limit]

    # -- blobs -------------------------------------------------------------------------------

    async def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        key = self._blob_key(digest)
        found = await self._s3.head(key)
        if found is not None:
            self._held[key] = found
        return found is not None and (size is None or found == size)

    async def _holds(self, desc: Descriptor) -> bool:
        """Whether the layout holds ``desc`` whole: known from what it wrote or found, else asked."""
        if self._held.get(self._blob_key(desc.digest)) == desc.size:
            return True
        return await self.has_blob(desc.digest, desc.size)

    async def open_blob(self, desc: Descriptor) -> BlobReader:
        """The blob as a stream that continues with a ranged GetObject if the connection breaks."""
        what = f"{self.name}: blob {desc.digest.short}"
        try:
            first = await self._s3.open(self._blob_key(desc.digest), what)
        except NotFound:
            raise NotFound(f"{self.name}: blob {desc.digest} not found", status=404) from None
        etag = strong_etag(first.etag)

        async def rest(offset: int) -> Reopened:
            key = self._blob_key(desc.digest)
            try:
                reader = await self._s3.open(key, what, offset=offset, if_match=etag)
            except PreconditionFailed:
                problem = "another ETag (the object changed)"
            else:
                problem = range_mismatch(reader.content_range, offset, desc.size)
                if not problem:
                    return Reopened(reader)
                await reader.close()
            return Reopened(await self._s3.open(key, what), offset, f"the bucket answered {problem}")

        return ResumingReader(first, desc.size, rest)

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
        await self._uploads.put(key, desc, source, part_size_for(desc.size, self.options.part_size))
        self._held[key] = desc.size
