"""A blob written to S3, verified before it is visible: one PutObject, or a multipart upload.

A blob is hashed and counted while it streams. One that fits in one part is buffered (at most
one part) and written with one PutObject after its size and digest matched. A larger one goes
through a multipart upload whose parts are sent concurrently while the source streams: at most
``concurrency`` parts in flight plus the one filling, so memory stays near
``(concurrency + 1) * part_size``. The upload is completed only after the digest matched; a
failure or cancellation aborts it, so nothing unverified ever appears at a blob's key. Before a
multipart upload the key is checked, and a blob already there is not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mirror.registry.aws import TRANSLATED, PreconditionFailed, translate
from mirror.registry.base import ChunkSource
from mirror.registry.multipart import is_multipart
from mirror.registry.s3bucket import OCTET_STREAM, S3Bucket
from mirror.types.errors import DigestMismatch, MirrorError, NotFound, SizeMismatch
from mirror.types.manifest import Descriptor

log = logging.getLogger("mirror.s3")

THREADED_HASH_MIN = 256 * 1024


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


class S3Uploads:
    """Verified blob uploads into ``bucket``, each multipart one with ``concurrency`` parts in flight.

    ``background`` holds the aborts of failed multipart uploads whose caller was cancelled.
    """

    def __init__(self, bucket: S3Bucket, *, concurrency: int) -> None:
        self._bucket = bucket
        self._concurrency = concurrency
        self.background: set[asyncio.Task[None]] = set()

    async def put(self, key: str, desc: Descriptor, source: ChunkSource, part_size: int) -> None:
        """Store the blob ``desc`` at ``key`` from ``source``, verified."""
        if not is_multipart(desc.size, part_size):
            verifier = _Verifier(desc)
            chunks: list[bytes] = []
            async for chunk in source():
                await verifier.update(chunk)
                chunks.append(chunk)
            verifier.finish()
            await self.put_whole(key, b"".join(chunks), OCTET_STREAM)
            return
        existing = await self._bucket.head(key)
        if existing == desc.size:
            return  # already there (it was verified when written): not sent again
        # An object of another size under this digest is not this blob: it is replaced.
        await self._multipart(key, desc, source, part_size, replace=existing is not None)

    async def put_whole(self, key: str, data: bytes, content_type: str) -> None:
        """One PutObject of verified content-addressed bytes. An object already there is kept
        when it has their size and replaced when it has not: a truncated copy is never kept."""
        try:
            await self._bucket.put(key, data, content_type, if_absent=True)
        except PreconditionFailed:
            if await self._bucket.head(key) != len(data):
                await self._bucket.put(key, data, content_type)

    async def _multipart(
        self, key: str, desc: Descriptor, source: ChunkSource, part_size: int, *, replace: bool
    ) -> None:
        what = f"{self._bucket.name}: blob {desc.digest.short}"
        async with self._bucket.use() as client:

            async def call(operation: str, **kwargs: Any) -> Any:
                try:
                    return await getattr(client, operation)(Bucket=self._bucket.bucket, Key=key, **kwargs)
                except TRANSLATED as exc:
                    raise translate(exc, f"{what}: {operation}") from None

            created = await call("create_multipart_upload", ContentType=OCTET_STREAM)
            upload_id = str(created["UploadId"])
            etags: dict[int, str] = {}
            slots = asyncio.Semaphore(self._concurrency)
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
                if self._bucket.conditional_writes and not replace:
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
                self.background.add(abort)
                abort.add_done_callback(self.background.discard)
                with contextlib.suppress(Exception):
                    await asyncio.shield(abort)  # when cancelled again, the abort goes on by itself
                raise

    async def _abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload, holding its own use of the client (it may outlive the caller)."""
        try:
            await self._bucket.call(
                f"{self._bucket.name}: abort upload of {key}",
                "abort_multipart_upload",
                Key=key,
                UploadId=upload_id,
            )
        except NotFound:
            pass  # already gone
        except MirrorError as exc:
            log.warning(
                "%s: could not abort multipart upload %s of %s: %s; a bucket lifecycle rule "
                "(AbortIncompleteMultipartUpload) removes it",
                self._bucket.name,
                upload_id,
                key,
                exc.message,
            )
