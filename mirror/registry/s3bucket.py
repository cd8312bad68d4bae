"""S3 object access for the S3 store: one shared client, small objects, conditional writes.

:class:`S3Bucket` sends every request of one layout through one aiobotocore client, opened on
first use and closed once idle (:class:`~mirror.registry.lingering.LingeringClient`), counts the
HTTP requests it sends, and translates botocore's errors into mirror's
(:mod:`mirror.registry.aws`). :class:`S3BlobReader` streams a GetObject body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mirror.registry.aws import STREAM_ERRORS, TRANSLATED, PreconditionFailed, translate
from mirror.registry.lingering import LingeringClient
from mirror.types.errors import ManifestError, NotFound

READ_CHUNK = 1024 * 1024
OCTET_STREAM = "application/octet-stream"


class S3BlobReader:
    """A GetObject body being streamed; close() releases the connection and the client."""

    def __init__(
        self, body: Any, size: int | None, what: str, release: Callable[[], Awaitable[None]]
    ) -> None:
        self._body = body
        self.size: int | None = size
        self._what = what
        self._release: Callable[[], Awaitable[None]] | None = release
        self.etag: str | None = None
        self.content_range: str | None = None  # on a range answer

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


class S3Bucket:
    """The objects of ``bucket`` as one layout uses them; ``name`` (the layout's) starts messages.

    ``open_client`` opens an aiobotocore S3 client; it is closed after ``idle_timeout`` seconds
    without use, by :meth:`aclose`, or when the event loop shuts down. ``conditional_writes``
    off, writes carry no If-Match / If-None-Match.
    """

    def __init__(
        self,
        bucket: str,
        name: str,
        *,
        open_client: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
        idle_timeout: float,
        conditional_writes: bool,
    ) -> None:
        self.bucket = bucket
        self.name = name
        self.conditional_writes = conditional_writes
        self._clients = LingeringClient(open_client, idle_timeout)
        self.requests_sent = 0  # HTTP requests to S3, retries included (for run reports)

    def _count_request(self, **_: Any) -> None:
        self.requests_sent += 1  # returns None: botocore then sends the request itself

    async def acquire(self) -> Any:
        try:
            client = await self._clients.acquire()
        except TRANSLATED as exc:
            raise translate(exc, f"{self.name}: opening an S3 client") from None
        # Each client has its own event hooks; unique_id makes this a no-op after the first time.
        # before-send runs once per attempt, retries included.
        client.meta.events.register("before-send.s3", self._count_request, unique_id="mirror-requests")
        return client

    async def release(self) -> None:
        await self._clients.release()

    @property
    def client(self) -> Any:
        """The open client, or None while it is closed."""
        return self._clients.client

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Any]:
        client = await self.acquire()
        try:
            yield client
        finally:
            await self.release()

    async def aclose(self) -> None:
        """Close the client now, or as soon as the operations still using it finish."""
        await self._clients.aclose()

    async def call(self, what: str, operation: str, **kwargs: Any) -> Any:
        async with self.use() as client:
            try:
                return await getattr(client, operation)(Bucket=self.bucket, **kwargs)
            except TRANSLATED as exc:
                raise translate(exc, what) from None

    async def open(
        self, key: str, what: str, *, offset: int = 0, if_match: str | None = None
    ) -> S3BlobReader:
        """The object at ``key`` as a stream (from ``offset``, only if its ETag is still
        ``if_match``: else PreconditionFailed); the reader keeps a use of the client until closed."""
        client = await self.acquire()
        extra: dict[str, str] = {}
        if offset:
            extra["Range"] = f"bytes={offset}-"
        if if_match:
            extra["IfMatch"] = if_match
        try:
            resp = await client.get_object(Bucket=self.bucket, Key=key, **extra)
        except BaseException as exc:
            await self.release()
            if isinstance(exc, TRANSLATED):
                raise translate(exc, what) from None
            raise
        size = resp.get("ContentLength")
        reader = S3BlobReader(resp["Body"], int(size) if size is not None else None, what, self.release)
        reader.etag, reader.content_range = resp.get("ETag"), resp.get("ContentRange")
        return reader

    async def head(self, key: str) -> int | None:
        """The size of the object at ``key``, or None when there is none."""
        try:
            head = await self.call(f"{self.name}: HEAD {key}", "head_object", Key=key)
        except NotFound:
            return None
        return int(head.get("ContentLength", 0))

    async def get_small(self, key: str, limit: int, what: str) -> tuple[bytes, str | None]:
        """The bytes (at most ``limit``) and ETag of a small object. Raises NotFound."""
        async with self.use() as client:
            try:
                resp = await client.get_object(Bucket=self.bucket, Key=key)
            except TRANSLATED as exc:
                raise translate(exc, what) from None
            raw = await _read_limited(resp["Body"], limit, what)
        return raw, resp.get("ETag")

    async def put(
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
        if self.conditional_writes:
            if if_match is not None:
                kwargs["IfMatch"] = if_match
            elif if_absent:
                kwargs["IfNoneMatch"] = "*"
        await self.call(f"{self.name}: PUT {key}", "put_object", **kwargs)

    async def put_new(self, key: str, body: bytes, content_type: str) -> None:
        """Write content-addressed bytes; an object already there is left alone."""
        with contextlib.suppress(PreconditionFailed):
            await self.put(key, body, content_type, if_absent=True)
