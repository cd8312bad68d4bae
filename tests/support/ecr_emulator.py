"""Amazon ECR, emulated: a real `docker-registry` behind an aiohttp front that behaves as an ECR
private registry does, with the ECR API (`POST /`, JSON 1.1, `X-Amz-Target`) on the same port.

    ecr = EcrEmulator(registry_handle).start()
    ecr.create_repository("team/app", immutable=True)
    password = ecr.authorization_token()          # what GetAuthorizationToken gives (user AWS)
    # AWS_ENDPOINT_URL_ECR=ecr.url lets aiobotocore's CreateRepository reach it

Each behaviour, and where it comes from:
- Basic auth with `AWS` and the password of `GetAuthorizationToken`; `/v2/` answers `401` with a
  Basic challenge -- documented (ECR User Guide, "Private registry authentication");
- a push (or read) of a repository that does not exist: `404 NAME_UNKNOWN` "The repository with
  name '...' does not exist in the registry with id '...'" -- documented (repositories are
  created before pushing); the message as reported by users;
- `CreateRepository` (`imageTagMutability`), `RepositoryAlreadyExistsException` -- documented
  (ECR API reference);
- an immutable repository refuses a tag that exists, even for the same digest: `400 TAG_INVALID`
  "The image tag '...' already exists in the '...' repository and cannot be overwritten because
  the repository is immutable." -- documented (tag immutability) and the message as reported
  (aws/containers-roadmap#862, moby/buildkit#3776);
- blob mounting is an account setting, off by default (`mounting=False`): `POST ?mount=&from=`
  then opens an upload session, `202` -- documented ("Blob mounting");
- a session whose upload broke off is not continued from byte 0: `416 BLOB_UPLOAD_INVALID`
  "First byte of the layer part is 0 instead of N" -- reported (apple/containerization#790);
- an upload completed without any byte: `400 BLOB_UPLOAD_INVALID` "... cannot be completed
  because it does not have any parts" -- reported (radius-project/radius#7855) and the ECR API
  documents `EmptyUploadException`; `empty_uploads="accept"` takes them instead, since whether
  every path refuses them is not known;
- `BatchDeleteImage` given an `imageTag` removes that tag only; the image goes with its last tag;
  a tag that is not there is a `failures` entry with `failureCode` `ImageNotFound`, not an error
  -- documented (ECR API reference, `BatchDeleteImage`, `ImageFailure`). The front keeps the
  removed tags out of `tags/list` and answers `404 MANIFEST_UNKNOWN` for them until one is pushed
  again (distribution itself deletes manifests by digest only);
- `DescribeRepositories` lists the repositories a page at a time: `maxResults` 1 to 1000 (100 when
  not given; another value is `InvalidParameterException`), and a `nextToken` (opaque) while more
  remain -- documented (ECR API reference, `DescribeRepositories`); the order is not documented,
  here it is the order of creation;
- a principal without a permission gets `AccessDeniedException` "User: ARN is not authorized to
  perform: ecr:ACTION on resource: ARN because no identity-based policy allows the ecr:ACTION
  action" -- documented (IAM User Guide, "Troubleshoot access denied error messages");
  `denied={"DescribeRepositories"}` refuses those calls;
- `stuck_pages=True` makes `DescribeRepositories` give the same `nextToken` on every page (a
  paging fault no documentation describes; a client must still stop);
- errors in the OCI shape `{"errors": [{"code", "message"}]}` -- documented (ECR follows the
  Docker Registry HTTP API V2).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from aiohttp import web

from tests.support.faults import _error_response
from tests.support.mediatypes import ACCEPT_ALL
from tests.support.proxy import RecordedRequest, RegistryProxy

ACCOUNT = "123456789012"


class EcrEmulator(RegistryProxy):
    thread_name = "ecr-emulator"

    def __init__(
        self,
        upstream: Any,
        *,
        mounting: bool = False,
        empty_uploads: str = "refuse",
        denied: frozenset[str] | set[str] = frozenset(),
        stuck_pages: bool = False,
    ) -> None:
        super().__init__(upstream)
        self.denied = set(denied)  # ECR API operations answered AccessDeniedException
        self.stuck_pages = stuck_pages
        self.mounting = mounting
        self.empty_uploads = empty_uploads
        self.repositories: dict[str, str] = {}  # name -> MUTABLE | IMMUTABLE
        self.passwords: dict[str, float] = {}  # GetAuthorizationToken passwords -> expiry
        self.broken: dict[str, int] = {}  # upload session -> bytes its broken upload had sent
        self.sessions_put: list[str] = []  # the session of every blob PUT, in order
        self.refusals: list[str] = []
        self.removed: dict[str, set[str]] = {}  # repository -> tags BatchDeleteImage removed
        self.api_requests: list[tuple[str, dict[str, Any]]] = []  # (operation, request body)

    def create_repository(self, name: str, *, immutable: bool = False) -> None:
        self.repositories[name] = "IMMUTABLE" if immutable else "MUTABLE"

    def authorization_token(self, ttl: float = 12 * 3600) -> str:
        password = secrets.token_urlsafe(32)
        self.passwords[password] = time.time() + ttl
        return password

    # -- the front ---------------------------------------------------------------------------
    async def _dispatch(self, request: web.BaseRequest, record: RecordedRequest) -> web.StreamResponse:
        response = await super()._dispatch(request, record)
        if record.fault == "request-reset" and request.method == "PUT" and "/blobs/uploads/" in request.path:
            self.broken[request.path] = record.body_bytes  # a session whose upload broke off
        return response

    async def _emulate(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if request.method == "POST" and request.path == "/":
            return await self._api(request)
        if not self._authorized(request):
            realm = f'Basic realm="https://{self.host}/",service="ecr.amazonaws.com"'
            body = {"errors": [{"code": "DENIED", "message": "Not Authorized"}]}
            return web.json_response(body, status=401, headers={"WWW-Authenticate": realm})
        return await self._registry(request)

    def _refuse(self, what: str, status: int, code: str, message: str) -> web.Response:
        self.refusals.append(what)
        return _error_response(status, code, message)

    def _authorized(self, request: web.BaseRequest) -> bool:
        value = request.headers.get("Authorization", "")
        if not value.lower().startswith("basic "):
            return False
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user == "AWS" and self.passwords.get(password, 0) > time.time()

    async def _registry(self, request: web.BaseRequest) -> web.StreamResponse | None:
        path, method = request.path, request.method
        if path == "/v2/" or path == "/v2":
            return None
        name = path.removeprefix("/v2/")
        for marker in ("/manifests/", "/blobs/", "/tags/list"):
            if marker in name:
                name = name.split(marker, 1)[0]
                break
        if name not in self.repositories:
            return self._refuse(
                f"{method} {path}: no repository",
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'",
            )
        if path.endswith("/tags/list") and method == "GET":
            return await self._tags(path, name)
        tag = path.rsplit("/manifests/", 1)[1] if "/manifests/" in path else ""
        if method in ("GET", "HEAD") and tag in self.removed.get(name, set()):
            return _error_response(404, "MANIFEST_UNKNOWN", "manifest unknown")
        if method == "PUT" and tag:
            immutable = self.repositories[name] == "IMMUTABLE" and not tag.startswith("sha256:")
            if immutable and await self._tag_exists(name, tag):
                return self._refuse(
                    f"PUT {name}:{tag}: immutable",
                    400,
                    "TAG_INVALID",
                    f"The image tag '{tag}' already exists in the '{name}' repository and cannot be "
                    "overwritten because the repository is immutable.",
                )
            self.removed.get(name, set()).discard(tag)  # pushed again
        if method == "POST" and "mount" in request.query and not self.mounting:
            return await self._session_instead_of_mount(request)
        if method == "PUT" and "/blobs/uploads/" in path:
            return self._upload_rules(request, name)
        return None

    async def _tags(self, path: str, name: str) -> web.Response:
        doc = await self._upstream_json(path)
        if isinstance(doc, web.Response):
            return doc
        doc["tags"] = [t for t in doc.get("tags") or [] if t not in self.removed.get(name, set())]
        return web.json_response(doc)

    async def _tag_exists(self, name: str, tag: str) -> bool:
        assert self._session is not None
        if tag in self.removed.get(name, set()):
            return False
        url = f"{self.upstream_url}/v2/{name}/manifests/{tag}"
        async with self._session.head(url, headers={"Accept": ACCEPT_ALL}) as head:
            return head.status == 200

    async def _session_instead_of_mount(self, request: web.BaseRequest) -> web.Response:
        assert self._session is not None
        url = self.upstream_url + request.path  # the same POST without ?mount=&from=
        async with self._session.post(url, data=b"", headers={"Content-Length": "0"}) as upstream:
            location = upstream.headers.get("Location", "")
            status = upstream.status
        return web.Response(
            status=status, headers={"Location": self._rewrite(location), "Content-Length": "0"}
        )

    def _upload_rules(self, request: web.BaseRequest, name: str) -> web.Response | None:
        session = request.path
        self.sessions_put.append(session)
        if session in self.broken:
            return self._refuse(
                f"PUT {session}: continued a broken session",
                416,
                "BLOB_UPLOAD_INVALID",
                f"First byte of the layer part is 0 instead of {self.broken[session]}",
            )
        if request.content_length == 0 and self.empty_uploads == "refuse":
            upload_id = session.rsplit("/", 1)[1]
            return self._refuse(
                f"PUT {session}: no parts",
                400,
                "BLOB_UPLOAD_INVALID",
                f"The upload with id '{upload_id}' in the repository with name '{name}' in registry with "
                f"id '{ACCOUNT}' cannot be completed because it does not have any parts.",
            )
        return None

    # -- the ECR API ---------------------------------------------------------------------------
    async def _api(self, request: web.BaseRequest) -> web.Response:
        target = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        body = json.loads(await request.read() or b"{}")
        self.api_requests.append((target, body))
        if target in self.denied:
            # the region the request was signed for: Credential=KEY/DATE/REGION/ecr/aws4_request
            scope = request.headers.get("Authorization", "").partition("Credential=")[2].split("/")
            arn = f"arn:aws:ecr:{scope[2] if len(scope) > 2 else 'eu-west-3'}:{ACCOUNT}:repository/*"
            message = (
                f"User: arn:aws:iam::{ACCOUNT}:user/mirror is not authorized to perform: ecr:{target} "
                f"on resource: {arn} because no identity-based policy allows the ecr:{target} action"
            )
            return self._json({"__type": "AccessDeniedException", "message": message}, status=400)
        if target == "DescribeRepositories":
            return self._describe(body)
        if target == "GetAuthorizationToken":
            token = base64.b64encode(f"AWS:{self.authorization_token()}".encode()).decode()
            data = {
                "authorizationToken": token,
                "expiresAt": time.time() + 12 * 3600,
                "proxyEndpoint": self.url,
            }
            return self._json({"authorizationData": [data]})
        if target == "CreateRepository":
            name = str(body.get("repositoryName", ""))
            if name in self.repositories:
                return self._json(
                    {
                        "__type": "RepositoryAlreadyExistsException",
                        "message": f"The repository '{name}' already exists",
                    },
                    status=400,
                )
            self.create_repository(name, immutable=body.get("imageTagMutability") == "IMMUTABLE")
            repository = {
                "repositoryName": name,
                "registryId": body.get("registryId", ACCOUNT),
                "imageTagMutability": self.repositories[name],
            }
            return self._json({"repository": repository})
        if target == "BatchDeleteImage":
            return await self._batch_delete(body)
        return self._json({"__type": "UnknownOperationException", "message": target}, status=400)

    def _describe(self, body: dict[str, Any]) -> web.Response:
        size = body.get("maxResults", 100)
        if not isinstance(size, int) or not 1 <= size <= 1000:
            message = f"Invalid parameter at 'maxResults' failed to satisfy constraint: {size!r}"
            return self._json({"__type": "InvalidParameterException", "message": message}, status=400)
        names = list(self.repositories)
        start = int(base64.b64decode(body["nextToken"]).decode()) if body.get("nextToken") else 0
        page = names[start : start + size]
        doc: dict[str, Any] = {
            "repositories": [
                {
                    "repositoryName": name,
                    "registryId": body.get("registryId", ACCOUNT),
                    "repositoryArn": f"arn:aws:ecr:eu-west-3:{ACCOUNT}:repository/{name}",
                    "imageTagMutability": self.repositories[name],
                }
                for name in page
            ]
        }
        if start + size < len(names) or self.stuck_pages:
            following = size if self.stuck_pages else start + size
            doc["nextToken"] = base64.b64encode(str(following).encode()).decode()
        return self._json(doc)

    async def _batch_delete(self, body: dict[str, Any]) -> web.Response:
        name = str(body.get("repositoryName", ""))
        if name not in self.repositories:
            message = f"The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'"
            return self._json({"__type": "RepositoryNotFoundException", "message": message}, status=400)
        deleted, failures = [], []
        for image in body.get("imageIds") or []:
            tag = str(image.get("imageTag", ""))
            if tag and await self._tag_exists(name, tag):
                self.removed.setdefault(name, set()).add(tag)
                deleted.append({"imageTag": tag})
            else:
                reason = "Requested image not found"
                failures.append({"imageId": image, "failureCode": "ImageNotFound", "failureReason": reason})
        return self._json({"imageIds": deleted, "failures": failures})

    def _json(self, doc: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(doc), content_type="application/x-amz-json-1.1")
