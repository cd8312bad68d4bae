"""The Artifact Registry API: listing repositories and Docker images, creating repositories.

Calls (Artifact Registry REST reference, v1):
- ``repositories.list``: ``GET {api}/v1/projects/P/locations/L/repositories`` (``pageSize``,
  ``pageToken``; items carry ``name`` and ``format``);
- ``dockerImages.list``: ``GET .../repositories/R/dockerImages`` (``pageSize`` up to 1,000,
  ``pageToken``; items carry ``name``, ``uri``, ``tags``, ``imageSizeBytes``, ``uploadTime``,
  ``updateTime``, ``buildTime``, ``mediaType``);
- ``repositories.create``: ``POST .../repositories?repositoryId=R`` with ``{"format": "DOCKER"}``,
  answering a long-running operation polled with ``GET {api}/v1/OPERATION`` until ``done``;
  ``409 ALREADY_EXISTS`` when the repository is there.

The API takes the registry's own credential: a Google access token (the password of
``oauth2accesstoken``), a bearer token, or a service account key (``_json_key``,
``_json_key_base64``) exchanged for an access token. Without any (an emulator on loopback, a
public repository) it is called anonymously, and a refusal says how to give it one.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from yarl import URL

from mirror.auth.credentials import Credential
from mirror.auth.google import ACCESS_TOKEN_USER, access_token_from_json_key
from mirror.transport.api import call_json
from mirror.transport.client import Transport
from mirror.types.errors import AuthError, RegistryError

PAGE_SIZE = 1000
MAX_PAGES = 100_000
CREATE_DEADLINE = 120.0  # seconds to wait for a repository creation to finish
JSON_KEY_USERS = ("_json_key", "_json_key_base64")
MINTED_MARGIN = 300.0  # seconds of life a minted access token must have left to be used again


@dataclass(frozen=True)
class DockerImage:
    """One image (digest) of an Artifact Registry repository, as ``dockerImages.list`` gives it."""

    repository: str  # PROJECT/REPOSITORY/IMAGE, the registry path of the image
    digest: str
    uri: str = ""
    tags: tuple[str, ...] = ()
    size: int = 0
    media_type: str = ""
    upload_time: str = ""
    update_time: str = ""
    build_time: str = ""


def parse_image(item: Any, project: str, repository: str) -> DockerImage | None:
    """A ``dockerImages`` item; ``None`` when it does not name an image with a digest."""
    if not isinstance(item, dict):
        return None
    name = str(item.get("name") or "")
    _, sep, tail = name.partition("/dockerImages/")
    image, at, digest = urllib.parse.unquote(tail).rpartition("@")
    if not sep or not at or not image or not digest.startswith("sha"):
        return None
    tags = item.get("tags") or []
    size = str(item.get("imageSizeBytes") or "0")
    return DockerImage(
        repository=f"{project}/{repository}/{image}",
        digest=digest,
        uri=str(item.get("uri") or ""),
        tags=tuple(t for t in tags if isinstance(t, str)),
        size=int(size) if size.isdigit() else 0,
        media_type=str(item.get("mediaType") or ""),
        upload_time=str(item.get("uploadTime") or ""),
        update_time=str(item.get("updateTime") or ""),
        build_time=str(item.get("buildTime") or ""),
    )


class ArtifactRegistryApi:
    """The API of one Artifact Registry location, called with the credential of ``host``."""

    def __init__(
        self,
        transport: Transport,
        *,
        host: str,
        location: str,
        api_endpoint: str,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.transport = transport
        self.host = host
        self.location = location
        self.base = URL(api_endpoint.rstrip("/") + "/v1/")
        self.page_size = page_size
        self._minted: Credential | None = None  # an access token minted from a service account key

    def _url(self, path: str, **query: str) -> URL:
        url = self.base.join(URL(path, encoded=False))
        return url.with_query({k: v for k, v in query.items() if v}) if query else url

    async def _authorization(self) -> str | None:
        cred = await self.transport.credential(self.host)
        if cred is None or cred.anonymous:
            return None
        if cred.registry_token:
            return f"Bearer {cred.registry_token}"
        if cred.username == ACCESS_TOKEN_USER:
            return f"Bearer {cred.password}"
        if cred.username in JSON_KEY_USERS:
            minted = self._minted
            if minted is None or minted.remaining(self.transport.clock()) < MINTED_MARGIN:
                minted = await access_token_from_json_key(
                    cred.username, cred.password, clock=self.transport.clock
                )
                self._minted = minted
            return f"Bearer {minted.password}"
        raise AuthError(
            f"{self.host}: the Artifact Registry API needs a Google credential, not a "
            f"{cred.kind}; use application default credentials, a service account key "
            "(username _json_key_base64) or an access token (username oauth2accesstoken)"
        )

    async def _get(self, url: URL) -> Any:
        try:
            _, doc = await call_json(self.transport, "GET", url, authorization=await self._authorization())
        except RegistryError as exc:
            raise _explained(exc, self.host) from None
        return doc

    async def _pages(self, path: str, key: str) -> list[Any]:
        items: list[Any] = []
        token = ""
        for _ in range(MAX_PAGES):
            doc = await self._get(self._url(path, pageSize=str(self.page_size), pageToken=token))
            page = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(page, list):
                items.extend(page)
            token = str(doc.get("nextPageToken") or "") if isinstance(doc, dict) else ""
            if not token:
                return items
        raise RegistryError(f"{self.base}{path}: more than {MAX_PAGES} pages")

    async def repositories(self, project: str) -> list[str]:
        """The Docker repositories of ``project`` in this location (their ids, sorted)."""
        path = f"projects/{project}/locations/{self.location}/repositories"
        names = []
        for item in await self._pages(path, "repositories"):
            if isinstance(item, dict) and str(item.get("format", "DOCKER")).upper() == "DOCKER":
                names.append(str(item.get("name", "")).rsplit("/", 1)[-1])
        return sorted(n for n in names if n)

    async def images(self, project: str, repository: str) -> list[DockerImage]:
        """Every image (digest) of ``PROJECT/REPOSITORY``, with its tags."""
        path = f"projects/{project}/locations/{self.location}/repositories/{repository}/dockerImages"
        found = [parse_image(item, project, repository) for item in await self._pages(path, "dockerImages")]
        return [image for image in found if image is not None]

    async def create_repository(self, project: str, repository: str) -> bool:
        """Create the Docker repository ``PROJECT/REPOSITORY``; False when it already exists.
        Waits (up to two minutes) until the creation has finished."""
        url = self._url(f"projects/{project}/locations/{self.location}/repositories", repositoryId=repository)
        auth = await self._authorization()
        try:
            status, operation = await call_json(
                self.transport, "POST", url, authorization=auth, body={"format": "DOCKER"}, ok=(200, 409)
            )
        except RegistryError as exc:
            raise _explained(exc, self.host) from None
        if status == 409:
            return False
        deadline = time.monotonic() + CREATE_DEADLINE
        delay = 0.2
        while isinstance(operation, dict) and not operation.get("done") and operation.get("name"):
            if time.monotonic() > deadline:
                raise RegistryError(
                    f"{self.host}: creating repository {project}/{repository} did not finish within "
                    f"{CREATE_DEADLINE:.0f}s (operation {operation['name']})"
                )
            await self.transport.sleep(delay)
            delay = min(delay * 2, 5.0)
            operation = await self._get(self.base.join(URL(str(operation["name"]), encoded=False)))
        if isinstance(operation, dict) and isinstance(operation.get("error"), dict):
            message = operation["error"].get("message", "failed")
            raise RegistryError(f"{self.host}: creating repository {project}/{repository}: {message}")
        return True


def _explained(exc: RegistryError, host: str) -> RegistryError | AuthError:
    """A refusal of the API, with the fix when it is about credentials or permissions."""
    if exc.status in (401, 403):
        return AuthError(
            f"{exc.message}; the Artifact Registry API of {host} needs a Google credential with "
            "access to the project: set application default credentials (gcloud auth "
            "application-default login), a service account key (username _json_key_base64 and "
            "password_file) or an access token (username oauth2accesstoken) for this registry"
        )
    return exc
