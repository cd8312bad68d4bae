"""Artifact Registry, emulated: a real `docker-registry` behind an aiohttp front that behaves as
Artifact Registry does, plus its API on the same port (`/v1/...`).

    ar = ArtifactRegistryEmulator(registry_handle, page_size_cap=7).start()
    ar.create_repository("proj", "repo")            # an AR repository (PROJECT/REPOSITORY)
    push_image(registry_handle, "proj/repo/web", "v1")   # seed through the real registry
    token = ar.access_token()                        # what `gcloud auth print-access-token` gives

Each behaviour, and where it comes from:
- `_catalog` answers `{"repositories": []}` -- documented ("Docker Registry API": list
  repositories through the Artifact Registry API) and reported (google/go-containerregistry#1643);
- `dockerImages.list` and `repositories.list` page with `pageSize`/`pageToken` and give `name`,
  `uri`, `tags`, `imageSizeBytes`, `uploadTime`, `updateTime`, `mediaType` -- documented (REST
  reference v1); `page_size_cap` makes pages smaller than asked, as an API may;
- a Docker tag listing is cut at 10,000 tags -- reported by users; where it cuts (the first
  10,000 in order) is guessed;
- chunked uploads (`PATCH`, or a body sent with `Transfer-Encoding: chunked`) are refused --
  documented ("Docker Registry API" note); the status and code of the refusal are guessed;
- a push to a repository that was not created is refused with `404 NAME_UNKNOWN` -- documented
  (repositories are created before pushing); the message is as reported by users;
- `repositories.create` answers a long-running operation (done on its first poll here; until then
  the repository does not accept pushes) and `409 ALREADY_EXISTS` for an existing one --
  documented; the delay is guessed;
- quota: `quota(times)` answers `429 TOOMANYREQUESTS: Quota exceeded for quota metric 'Requests
  per project per region'...` without `Retry-After` -- the message as reported
  (kubernetes/k8s.io#6431); the absence of `Retry-After` is guessed;
- immutable tags (`create_repository(..., immutable=True)`): moving a tag is refused; the answer
  is not documented, so `immutable_answer` (status, code, message) is set by each test, and
  `refuse_same_digest` says whether re-pushing the digest a tag already names is refused too;
- the registry takes `oauth2accesstoken` with an access token at its realm `/v2/token` -- documented
  ("Configure authentication to Artifact Registry for Docker"); access tokens live 60 minutes --
  documented (OAuth 2.0 access tokens); the registry token's lifetime (1 hour) is guessed;
- the API takes `Authorization: Bearer <access token>`; without one it answers `401
  UNAUTHENTICATED` unless `public=True` -- documented (Google API errors).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.faults import Fault, FaultContext, _error_response
from tests.support.mediatypes import ACCEPT_ALL
from tests.support.proxy import RegistryProxy

TAG_LIST_CAP = 10_000
QUOTA_MESSAGE = (
    "Quota exceeded for quota metric 'Requests per project per region' and limit 'Requests per "
    "project per region per minute per region' of service 'artifactregistry.googleapis.com'"
)


class QuotaExceeded(Fault):
    """Artifact Registry's answer past its per-minute quota (no `Retry-After`)."""

    name = "quota-exceeded"

    async def on_request(self, ctx: FaultContext) -> Any:
        return _error_response(429, "TOOMANYREQUESTS", QUOTA_MESSAGE)


def _rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _api_error(status: int, state: str, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": state}}
    return web.json_response(body, status=status)


class ArtifactRegistryEmulator(RegistryProxy):
    thread_name = "ar-emulator"

    def __init__(
        self,
        upstream: Any,
        *,
        location: str = "europe-west1",
        page_size_cap: int | None = None,
        auth: bool = True,
        public: bool = False,
    ) -> None:
        super().__init__(upstream)
        self.location = location
        self.page_size_cap = page_size_cap
        self.require_auth = auth
        self.public = public
        self.repositories: dict[str, str] = {}  # PROJECT/REPOSITORY -> format
        self.pending: dict[str, str] = {}  # operation name -> PROJECT/REPOSITORY being created
        self.immutable: set[str] = set()
        self.immutable_answer = (403, "DENIED", "Failed to update tag: the tag is immutable")
        self.refuse_same_digest = False
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch)
        self.registry_tokens: dict[str, float] = {}
        self.refusals: list[str] = []  # what the emulator refused, one line each
        self.extra_tags: dict[str, dict[str, str]] = {}  # repository -> tag -> digest (add_tags)

    # -- set-up -----------------------------------------------------------------------------
    def create_repository(
        self, project: str, repository: str, *, immutable: bool = False, fmt: str = "DOCKER"
    ) -> None:
        self.repositories[f"{project}/{repository}"] = fmt
        if immutable:
            self.immutable.add(f"{project}/{repository}")

    def access_token(self, ttl: float = 3600.0) -> str:
        token = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.time() + ttl
        return token

    def quota(self, times: int = 1, **match: Any) -> Fault:
        return self.add_fault(QuotaExceeded(times=times, **match))

    def add_tags(self, repo: str, digest: str, tags: list[str]) -> None:
        """Tag ``digest`` (already in ``repo``) as ``tags`` in the front: the tag listing, manifest
        reads by tag and the API see them as the registry's own (thousands of tag links written
        to a registry's storage take minutes to create and delete on a slow disk)."""
        self.extra_tags.setdefault(repo, {}).update(dict.fromkeys(tags, digest))

    # -- storage, read as the API would see it ----------------------------------------------
    def _root(self) -> Path:
        return Path(self.upstream.storage_dir) / "docker/registry/v2"

    def _images(self, project: str, repository: str) -> list[dict[str, Any]]:
        base = self._root() / "repositories" / project / repository
        items: list[dict[str, Any]] = []
        if not base.is_dir():
            return items
        for manifests in sorted(base.rglob("_manifests")):
            image = manifests.parent.relative_to(base).as_posix()
            tags: dict[str, list[str]] = {}
            tag_dir = manifests / "tags"
            for link in tag_dir.glob("*/current/link") if tag_dir.is_dir() else []:
                tags.setdefault(link.read_text().strip(), []).append(link.parent.parent.name)
            for tag, digest in self.extra_tags.get(f"{project}/{repository}/{image}", {}).items():
                tags.setdefault(digest, []).append(tag)
            for rev in sorted((manifests / "revisions/sha256").glob("*/link")):
                digest = rev.read_text().strip()
                items.append(
                    self._image(project, repository, image, digest, sorted(tags.get(digest, [])), rev)
                )
        return sorted(items, key=lambda i: str(i["name"]))

    def _image(
        self, project: str, repo: str, image: str, digest: str, tags: list[str], link: Path
    ) -> dict[str, Any]:
        hex_ = digest.split(":", 1)[1]
        data = json.loads((self._root() / "blobs/sha256" / hex_[:2] / hex_ / "data").read_bytes())
        parts = data.get("manifests") or [data.get("config") or {}, *(data.get("layers") or [])]
        stamp = _rfc3339(link.stat().st_mtime)
        return {
            "name": f"projects/{project}/locations/{self.location}/repositories/{repo}/dockerImages/"
            f"{urllib.parse.quote(image, safe='')}@{digest}",
            "uri": f"{self.location}-docker.pkg.dev/{project}/{repo}/{image}@{digest}",
            "tags": tags,
            "imageSizeBytes": str(sum(int(p.get("size", 0)) for p in parts)),
            "uploadTime": stamp,
            "updateTime": stamp,
            "mediaType": data.get("mediaType", ""),
        }

    # -- the front ---------------------------------------------------------------------------
    async def _emulate(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if request.path.startswith("/v1/"):
            return self._api(request)
        if request.path == "/v2/token":
            return self._token(request)
        if self.require_auth and not self._authorized(request):
            return self._challenge(request)
        return await self._registry(request)

    def _refuse(self, what: str, response: web.Response) -> web.Response:
        self.refusals.append(what)
        return response

    def _challenge(self, request: web.BaseRequest) -> web.Response:
        realm = f'Bearer realm="http://{self.host}/v2/token",service="{self.host}"'
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return web.json_response(body, status=401, headers={"WWW-Authenticate": realm})

    def _bearer(self, request: web.BaseRequest) -> str:
        value = request.headers.get("Authorization", "")
        return value[7:].strip() if value.lower().startswith("bearer ") else ""

    def _authorized(self, request: web.BaseRequest) -> bool:
        return self.registry_tokens.get(self._bearer(request), 0) > time.time()

    def _token(self, request: web.BaseRequest) -> web.Response:
        value = request.headers.get("Authorization", "")
        user, password = "", ""
        if value.lower().startswith("basic "):
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        if user != "oauth2accesstoken" or self.access_tokens.get(password, 0) <= time.time():
            return self._refuse("token", web.json_response({"details": "invalid credentials"}, status=401))
        token = secrets.token_urlsafe(24)
        self.registry_tokens[token] = time.time() + 3600
        return web.json_response({"token": token, "expires_in": 3600})

    async def _registry(self, request: web.BaseRequest) -> web.Response | None:
        path, method = request.path, request.method
        if path == "/v2/_catalog":
            return web.json_response({"repositories": []})
        if method == "PATCH" or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return self._refuse(
                f"chunked {method} {path}",
                _error_response(
                    400, "UNSUPPORTED", "chunked upload is not supported; use a monolithic upload"
                ),
            )
        name, _, rest = path.removeprefix("/v2/").partition("/manifests/")
        if not rest:
            name, _, rest = path.removeprefix("/v2/").partition("/blobs/")
        if path.endswith("/tags/list"):
            return await self._tags(path)
        if method in ("GET", "HEAD") and rest in self.extra_tags.get(name, {}):
            return await self._extra_tag(request, name, self.extra_tags[name][rest])
        parts = name.split("/")
        if method in ("POST", "PUT", "DELETE") and "/".join(parts[:2]) not in self.repositories:
            repo = f"projects/{parts[0]}/locations/{self.location}/repositories/{'/'.join(parts[1:2])}"
            return self._refuse(
                f"{method} {path}: no repository",
                _error_response(404, "NAME_UNKNOWN", f'Repository "{repo}" not found'),
            )
        if method == "PUT" and "/manifests/" in path and "/".join(parts[:2]) in self.immutable:
            return await self._immutable(request, name, rest)
        return None

    async def _tags(self, path: str) -> web.Response:
        doc = await self._upstream_json(path)
        if isinstance(doc, web.Response):
            return doc
        name = path.removeprefix("/v2/").removesuffix("/tags/list")
        doc["tags"] = sorted({*(doc.get("tags") or []), *self.extra_tags.get(name, {})})[:TAG_LIST_CAP]
        return web.json_response(doc)

    async def _extra_tag(self, request: web.BaseRequest, name: str, digest: str) -> web.Response:
        assert self._session is not None
        headers = {"Accept": request.headers.get("Accept", "")}
        url = f"{self.upstream_url}/v2/{name}/manifests/{digest}"
        async with self._session.request(request.method, url, headers=headers) as upstream:
            body = await upstream.read()
            keep = ("Content-Type", "Docker-Content-Digest", "Content-Length")
            out = {k: upstream.headers[k] for k in keep if k in upstream.headers}
            response = web.Response(status=upstream.status, body=None if request.method == "HEAD" else body)
            response.headers.update(out)
            return response

    async def _immutable(self, request: web.BaseRequest, name: str, tag: str) -> web.Response | None:
        if tag.startswith("sha256:"):
            return None
        assert self._session is not None
        headers = {"Accept": ACCEPT_ALL}
        async with self._session.head(
            f"{self.upstream_url}/v2/{name}/manifests/{tag}", headers=headers
        ) as head:
            existing = head.headers.get("Docker-Content-Digest") if head.status == 200 else None
        if existing is None:
            return None
        body = await request.read()
        same = existing == "sha256:" + hashlib.sha256(body).hexdigest()
        if same and not self.refuse_same_digest:
            return web.Response(status=201, headers={"Docker-Content-Digest": existing})
        status, code, message = self.immutable_answer
        return self._refuse(f"PUT {name}:{tag}: immutable", _error_response(status, code, message))

    # -- the API -------------------------------------------------------------------------------
    def _api(self, request: web.BaseRequest) -> web.Response:
        token = self._bearer(request)
        if (not self.public or token) and self.access_tokens.get(token, 0) <= time.time():
            return self._refuse(
                f"API {request.path}: unauthenticated",
                _api_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            )
        parts = request.path.removeprefix("/v1/").split("/")
        query = request.query
        if "operations" in parts:
            return self._operation("/".join(parts))
        if len(parts) < 5 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "repositories":
            return _api_error(404, "NOT_FOUND", f"no such resource {request.path}")
        if parts[3] != self.location:
            return _api_error(404, "NOT_FOUND", f"location {parts[3]} not found")
        project = parts[1]
        if len(parts) == 5 and request.method == "POST":
            return self._create(project, query.get("repositoryId", ""))
        if len(parts) == 5:
            names = sorted(k.split("/", 1)[1] for k in self.repositories if k.split("/", 1)[0] == project)
            items = [
                {
                    "name": f"projects/{project}/locations/{self.location}/repositories/{n}",
                    "format": self.repositories[f"{project}/{n}"],
                }
                for n in names
            ]
            return self._page("repositories", items, query)
        if len(parts) == 7 and parts[6] == "dockerImages":
            if f"{project}/{parts[5]}" not in self.repositories:
                return _api_error(404, "NOT_FOUND", f"Repository {parts[5]} not found")
            return self._page("dockerImages", self._images(project, parts[5]), query)
        return _api_error(404, "NOT_FOUND", f"no such resource {request.path}")

    def _page(self, key: str, items: list[dict[str, Any]], query: Any) -> web.Response:
        size = int(query.get("pageSize") or 1000)
        if self.page_size_cap is not None:
            size = min(size, self.page_size_cap)
        start = int(base64.b64decode(query["pageToken"]).decode()) if query.get("pageToken") else 0
        doc: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            doc["nextPageToken"] = base64.b64encode(str(start + size).encode()).decode()
        return web.json_response(doc)

    def _create(self, project: str, repository: str) -> web.Response:
        key = f"{project}/{repository}"
        if key in self.repositories or key in self.pending.values():
            return _api_error(409, "ALREADY_EXISTS", f"the repository already exists: {key}")
        name = f"projects/{project}/locations/{self.location}/operations/{secrets.token_hex(8)}"
        self.pending[name] = key
        return web.json_response({"name": name, "done": False})

    def _operation(self, name: str) -> web.Response:
        key = self.pending.pop(name, None)
        if key is None:
            return _api_error(404, "NOT_FOUND", f"operation {name} not found")
        self.repositories[key] = "DOCKER"
        return web.json_response({"name": name, "done": True, "response": {"name": key}})
