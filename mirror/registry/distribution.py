"""A repository of an OCI distribution registry, over the shared Transport.

Uploads are monolithic: an empty POST opens a session, ONE PUT carries the whole blob with an
explicit Content-Length (never chunked, never PATCH). Artifact Registry rejects chunked uploads.
This layer does not authenticate or retry single requests itself; the only retry here is of a
whole upload session (POST + PUT), whose inner requests are sent with retries off.
"""

from __future__ import annotations

import time

from yarl import URL

from mirror.registry.base import BlobReader, ChunkSource, FetchedManifest, ManifestInfo
from mirror.registry.blobreads import open_resumable
from mirror.registry.pages import Pagination
from mirror.registry.profiles import RegistryProfile, profile_for
from mirror.registry.pulls import PullBudget
from mirror.registry.referrerstag import ReferrersTag
from mirror.registry.sessions import UploadSessions
from mirror.transport.client import Reply, Transport
from mirror.transport.urls import resolve_location, with_digest
from mirror.types import mediatypes as mt
from mirror.types.digest import Digest, is_digest
from mirror.types.errors import (
    InvalidReference,
    ManifestError,
    MirrorError,
    NotFound,
    RegistryError,
)
from mirror.types.manifest import Descriptor, parse_manifest
from mirror.types.reference import validate_tag
from mirror.types.referrers import referrer_entry, subject_of

TAGS_PAGE = 1000
MAX_LIST_BODY = 8 * 1024 * 1024


def _pull(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull",)


def _push(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull,push",)


def _reference(reference: str) -> str:
    """A tag or digest, checked before it becomes part of a URL path: a tag listed by a hostile
    registry (``../../other/manifests/x``, ``a?b``) must not reach another path or repository."""
    if is_digest(reference):
        Digest.parse(reference)
    else:
        validate_tag(reference)
    return reference


class RegistryRepository:
    """``host/repository`` on a registry speaking the OCI distribution API."""

    def __init__(
        self,
        transport: Transport,
        host: str,
        repository: str,
        *,
        max_blob_size: int | None = None,
        profile: RegistryProfile | None = None,
        pulls: PullBudget | None = None,
    ) -> None:
        self.transport = transport
        self.host = host
        self.repository = repository
        self._name = f"{host}/{repository}"
        self.profile = profile or profile_for(host)
        # Manifest GETs a pull-counting registry still allows (shared by the repositories of a
        # pass; a repository opened alone keeps its own).
        self.pulls = pulls if pulls is not None or not self.profile.counts_pulls else PullBudget(host)
        self._max_blob_size = max_blob_size
        # Upload sessions: a mount's 202 kept for the next upload; a failed one's cancelled.
        self.sessions = UploadSessions(self._delete_session)
        self.referrers_tag = ReferrersTag(self)  # the referrers tag schema, without the API

    @property
    def name(self) -> str:
        # One string for the run: a pass keys outcomes and results by it, per blob and image.
        return self._name

    @property
    def registry(self) -> str:
        return self.host

    @property
    def max_blob_size(self) -> int | None:
        return self._max_blob_size

    def _path(self, *parts: str) -> str:
        return "/v2/" + self.repository + "/" + "/".join(parts)

    # -- manifests ---------------------------------------------------------------------------

    async def head_manifest(self, reference: str) -> ManifestInfo | None:
        reply = await self.transport.request(
            "HEAD",
            self.host,
            self._path("manifests", _reference(reference)),
            scopes=_pull(self.repository),
            headers={"Accept": mt.ACCEPT},
            ok=(200, 404),
        )
        if reply.status == 404:
            return None
        if self.pulls is not None:
            self.pulls.observe(reply.headers)
        digest_text = reply.headers.get("Docker-Content-Digest")
        media_type = (reply.headers.get("Content-Type") or "").split(";")[0].strip()
        length = reply.headers.get("Content-Length", "")
        if not digest_text or not mt.is_manifest(media_type):
            # Some registries omit the digest on HEAD: fall back to reading the manifest.
            fetched = await self.get_manifest(reference)
            return ManifestInfo(fetched.digest, fetched.media_type, len(fetched.raw))
        try:
            digest = Digest.parse(digest_text)
        except InvalidReference as exc:
            raise ManifestError(f"{self.name}:{reference}: bad Docker-Content-Digest: {exc}") from None
        return ManifestInfo(digest, media_type, int(length) if length.isdigit() else -1)

    async def _get_manifest(self, reference: str) -> Reply:
        return await self.transport.request(
            "GET",
            self.host,
            self._path("manifests", _reference(reference)),
            scopes=_pull(self.repository),
            headers={"Accept": mt.ACCEPT},  # the same as HEAD's: the same representation, digest
            max_body=mt.MAX_MANIFEST_BYTES,
        )

    async def _pull_manifest(self, reference: str, pulls: PullBudget) -> Reply:
        """A manifest GET counted as a pull: admitted by the budget, which reads the count."""
        async with pulls.pull():
            try:
                reply = await self._get_manifest(reference)
            except RegistryError as exc:
                if exc.status == 429:
                    raise pulls.refused(exc) from None
                raise
            pulls.observe(reply.headers)
        return reply

    async def get_manifest(self, reference: str) -> FetchedManifest:
        if self.pulls is not None:
            reply = await self._pull_manifest(reference, self.pulls)
        else:
            reply = await self._get_manifest(reference)
        media_type = (reply.headers.get("Content-Type") or "").split(";")[0].strip()
        expected: Digest | None = None
        if ":" in reference:
            expected = Digest.parse(reference)
        computed = Digest.of(reply.body, expected.algorithm if expected else "sha256")
        if expected is not None and computed != expected:
            raise ManifestError(
                f"{self.name}@{expected}: the registry served a manifest whose digest is {computed}"
            )
        header = reply.headers.get("Docker-Content-Digest", "")
        if expected is None and header:
            try:
                claimed = Digest.parse(header)
            except InvalidReference as exc:
                raise ManifestError(f"{self.name}:{reference}: bad Docker-Content-Digest: {exc}") from None
            if claimed != Digest.of(reply.body, claimed.algorithm):
                raise ManifestError(
                    f"{self.name}:{reference}: Docker-Content-Digest says {header} but the bytes "
                    f"hash to {Digest.of(reply.body, claimed.algorithm)}"
                )
            computed = claimed  # verified: the registry's name for it, as its HEAD would give
        return FetchedManifest(reply.body, media_type, computed)

    async def put_manifest(self, reference: str, raw: bytes, media_type: str) -> None:
        """Store a manifest; one with a ``subject`` is listed under its subject's referrers tag
        too, unless the registry answered ``OCI-Subject`` (it has the referrers API)."""
        subject = subject_of(raw)
        async with self.referrers_tag.lock(reference):  # a referrers tag copied whole: not mid-update
            reply = await self._put_manifest(reference, raw, media_type)
        if subject is None:
            return
        if reply is not None:
            self.referrers_tag.api = bool(reply.headers.get("OCI-Subject"))
        if not self.referrers_tag.api:
            digest = Digest.parse(reference) if is_digest(reference) else Digest.of(raw)
            await self.referrers_tag.add(subject, referrer_entry(raw, media_type, digest))

    async def _put_manifest(self, reference: str, raw: bytes, media_type: str) -> Reply | None:
        try:
            return await self.transport.request(
                "PUT",
                self.host,
                self._path("manifests", _reference(reference)),
                scopes=_push(self.repository),
                headers={"Content-Type": media_type},
                body=raw,
                content_length=len(raw),
                ok=(200, 201, 202, 204),
            )
        except RegistryError as exc:
            if ":" in reference or not self.profile.may_be_tag_refusal(exc):
                raise
            await self._settle_tag_refusal(reference, raw, exc)
            return None

    async def _settle_tag_refusal(self, tag: str, raw: bytes, refusal: RegistryError) -> None:
        """A tag PUT was refused. Registries signal an immutable tag differently (ECR's
        ``TAG_INVALID``, Artifact Registry's undocumented answer), so the tag is read again: when
        it names these bytes there is nothing to do; when it names another digest the refusal is
        a conflict, never retried; otherwise the refusal stands."""
        try:
            info = await self.head_manifest(tag)
        except MirrorError:
            info = None
        if info is None:
            raise refusal
        wanted = Digest.of(raw, info.digest.algorithm)
        if info.digest == wanted:
            return
        conflict = RegistryError(
            f"{self.name}:{tag} already names {info.digest}, not {wanted}, and the registry "
            f"refused to move it ({refusal.message}); the tag is immutable there",
            status=refusal.status,
            code=refusal.code,
            temporary=False,
        )
        conflict.kind = "tag_conflict"
        raise conflict

    async def delete_manifest(self, reference: str) -> None:
        await self.transport.request(
            "DELETE",
            self.host,
            self._path("manifests", _reference(reference)),
            scopes=(f"repository:{self.repository}:delete", *_push(self.repository)),
            ok=(200, 202, 204),
        )

    # -- blobs -------------------------------------------------------------------------------

    async def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        reply = await self.transport.request(
            "HEAD",
            self.host,
            self._path("blobs", str(digest)),
            scopes=_pull(self.repository),
            ok=(200, 404),
        )
        length = reply.headers.get("Content-Length", "")
        if reply.status == 200 and size is not None and length.isdigit() and int(length) != size:
            return False  # not this blob whole: sent again
        return reply.status == 200

    async def open_blob(self, desc: Descriptor) -> BlobReader:
        """The blob as a stream that continues with a ``Range`` request if the connection breaks
        (:mod:`mirror.registry.resume`)."""
        return await open_resumable(
            self.transport, self.host, self._path("blobs", str(desc.digest)), _pull(self.repository), desc
        )

    async def _open_session(self) -> URL:
        reply = await self.transport.request(
            "POST",
            self.host,
            self._path("blobs", "uploads/"),
            scopes=_push(self.repository),
            body=b"",
            content_length=0,
            ok=(202,),
            retry=False,
        )
        return self._location(reply.url, reply.headers.get("Location"))

    def _location(self, base: URL, location: str | None) -> URL:
        if not location:
            raise RegistryError(f"{self.name}: upload session answered without a Location")
        return resolve_location(base, location)

    async def put_blob(self, desc: Descriptor, source: ChunkSource, *, replayable: bool) -> None:
        policy = self.transport.retry
        attempt = 0
        while True:
            attempt += 1
            location: URL | None = None
            try:
                location = self.sessions.take(desc.digest) or await self._open_session()
                started = time.monotonic()
                await self.transport.request(
                    "PUT",
                    self.host,
                    with_digest(location, str(desc.digest)),
                    scopes=_push(self.repository),
                    headers={"Content-Type": "application/octet-stream"},
                    body=source if replayable else source(),
                    content_length=desc.size,
                    ok=(201, 204),
                    retry=False,
                    transfer_size=desc.size,
                )
                self.transport.throughput.record(self.host, desc.size, time.monotonic() - started)
                return
            except BaseException as exc:  # failed or cancelled: its session is not left open
                if location is not None:
                    self.sessions.cancel(location)
                if isinstance(exc, MirrorError):
                    final = self.profile.upload_refusal(exc, desc.size)
                    if final is not None:
                        raise final from None
                if not (isinstance(exc, MirrorError) and replayable and policy.should_retry(exc, attempt)):
                    raise
                await self.transport.backoff(self.host, attempt, exc)

    async def mount_blob(self, digest: Digest, from_repository: str) -> bool:
        reply = await self.transport.request(
            "POST",
            self.host,
            URL(self._path("blobs", "uploads/"), encoded=False)
            .with_query({"mount": str(digest), "from": from_repository})
            .raw_path_qs,
            scopes=(*_push(self.repository), *_pull(from_repository)),
            body=b"",
            content_length=0,
            ok=(201, 202),
        )
        if reply.status == 201:
            return True
        location = reply.headers.get("Location")
        if location:
            self.sessions.keep(digest, self._location(reply.url, location))
        return False

    async def _delete_session(self, url: URL) -> None:
        await self.transport.request(
            "DELETE", self.host, url, scopes=_push(self.repository), ok=(200, 202, 204, 404), retry=False
        )

    async def aclose(self) -> None:
        """Cancel the upload sessions left open (a mount's 202 that no upload used)."""
        await self.sessions.aclose()

    # -- referrers ---------------------------------------------------------------------------

    async def list_referrers(self, subject: Digest, digests: list[Digest]) -> None:
        """Make sure the referrers ``digests`` of ``subject``, stored here already, are listed
        where clients look (:meth:`ReferrersTag.ensure`)."""
        await self.referrers_tag.ensure(subject, digests)

    async def referrers(self, digest: Digest) -> list[Descriptor] | None:
        """Manifests whose ``subject`` is ``digest`` (OCI referrers API, every ``Link`` page, each
        referrer once); None when the registry has no referrers API (404 on the first page)."""
        found: list[Descriptor] = []
        pages = Pagination(f"{self.name}: referrers of {digest}")
        path: str | URL = self._path("referrers", str(digest))
        while True:
            reply = await self.transport.request(
                "GET",
                self.host,
                path,
                scopes=_pull(self.repository),
                headers={"Accept": mt.OCI_INDEX},
                max_body=mt.MAX_MANIFEST_BYTES,
                ok=(200, 404),
            )
            if reply.status == 404:
                if pages.pages == 0:
                    return None
                raise NotFound(f"{self.name}: referrers of {digest}: a next page answered 404", status=404)
            try:
                index = parse_manifest(reply.body, mt.OCI_INDEX)
            except ManifestError as exc:
                raise ManifestError(f"{self.name}: referrers of {digest}: {exc.message}") from None
            page = {str(d.digest): d for d in reversed(index.manifests) if d.is_manifest}
            added = pages.new_names([str(d.digest) for d in index.manifests if str(d.digest) in page])
            found.extend(page[name] for name in added)
            link = pages.next_page(reply, added=len(added))
            if link is None:
                return found
            path = link

    # -- listing -----------------------------------------------------------------------------

    async def list_tags(self, limit: int | None = None) -> list[str]:
        tags: list[str] = []
        page = TAGS_PAGE if limit is None else max(1, min(limit, TAGS_PAGE))
        path: str | URL = f"{self._path('tags', 'list')}?n={page}"
        pages = Pagination(f"{self.name}: tag list")
        while True:
            reply = await self.transport.request(
                "GET",
                self.host,
                path,
                scopes=_pull(self.repository),
                max_body=MAX_LIST_BODY,
                ok=(200, 404),
            )
            if reply.status == 404:
                raise NotFound(f"repository {self.name} does not exist", status=404)
            added = pages.new_names(_json_list(reply.body, "tags", self.name))
            tags.extend(added)
            if limit is not None and len(tags) >= limit:
                return tags[:limit]
            link = pages.next_page(reply, added=len(added))
            if link is None:
                break
            path = link
        if limit is None:
            return await self.profile.complete_tags(self.transport, self.repository, tags)
        return tags


async def list_catalog(transport: Transport, host: str) -> list[str]:
    """Every repository of a registry, through ``_catalog`` with Link pagination."""
    names: list[str] = []
    path: str | URL = f"/v2/_catalog?n={TAGS_PAGE}"
    pages = Pagination(f"{host}: catalog")
    while True:
        reply = await transport.request(
            "GET", host, path, scopes=("registry:catalog:*",), max_body=MAX_LIST_BODY
        )
        added = pages.new_names(_json_list(reply.body, "repositories", host))
        names.extend(added)
        link = pages.next_page(reply, added=len(added))
        if link is None:
            break
        path = link
    return names


def _json_list(body: bytes, key: str, where: str) -> list[str]:
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(f"{where}: {key} listing is not JSON") from None
    values = doc.get(key) if isinstance(doc, dict) else None
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RegistryError(f"{where}: {key} listing is malformed")
    return values
