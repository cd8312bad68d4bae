"""Docker Hub, emulated: a real `docker-registry` behind an aiohttp front that counts pulls as
Docker Hub does.

    hub = DockerHubEmulator(registry_handle, pulls=10).start()
    push_image(registry_handle, "library/app", "v1")     # seed through the real registry
    ... mirror reads hub.host (config: kind: docker-hub) ...
    hub.manifest_gets()  ->  the manifest GETs it answered (each one a pull)
    hub.refill()         ->  the window has passed: the full allowance again

Each behaviour, and where it comes from:
- a pull is a manifest GET; HEAD is not counted -- documented (Docker Hub "Pull usage and
  limits": "a pull is ... a GET request to a manifest"; "HEAD requests are not counted");
- limits per 6 hours: 10 anonymous (per IP; all loopback clients share one count here), 100 for
  an authenticated personal account -- documented ("Docker Hub usage and limits");
- manifest answers (GET and HEAD) carry `RateLimit-Limit: N;w=21600` and
  `RateLimit-Remaining: R;w=21600` -- documented (the HEAD to check the limit, "View pull rate
  and limit"); `headers="empty"` sends them without values and `headers="absent"` without them at
  all -- absent is documented for unlimited accounts ("I don't see any RateLimit headers"), empty
  values are reported in the wild;
- past the limit a manifest GET gets `429` with `TOOMANYREQUESTS` "You have reached your pull
  rate limit..." -- documented; whether a `Retry-After` comes is not, and none is sent here;
- the registry answers `401` with a bearer challenge; tokens come from the realm (`/token` here,
  `auth.docker.io` on Docker Hub), anonymously or with Basic credentials, and last 300 s
  (`expires_in: 300`) -- documented (registry token authentication) and observed;
- the manifest a GET or HEAD returns depends on `Accept` (the real registry behind decides), so
  the two must send the same -- documented (OCI distribution spec, content negotiation).
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from aiohttp import web

from tests.support.faults import _error_response
from tests.support.proxy import RecordedRequest, RegistryProxy

WINDOW = 21600
LIMIT_MESSAGE = (
    "You have reached your pull rate limit. You may increase the limit by authenticating and "
    "upgrading: https://www.docker.com/increase-rate-limit"
)
ANONYMOUS = ""


class DockerHubEmulator(RegistryProxy):
    thread_name = "hub-emulator"

    def __init__(
        self,
        upstream: Any,
        *,
        pulls: int = 10,
        authenticated_pulls: int = 100,
        headers: str = "present",
        users: dict[str, str] | None = None,
        token_ttl: int = 300,
    ) -> None:
        super().__init__(upstream)
        self.allowance = {ANONYMOUS: pulls}
        self.authenticated_pulls = authenticated_pulls
        self.headers_mode = headers
        self.users = dict(users or {})
        self.token_ttl = token_ttl
        self.used: dict[str, int] = {}  # identity -> pulls counted in this window
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (identity, expiry)
        self.limited: list[str] = []  # manifest GETs answered 429

    def refill(self) -> None:
        """The window has passed: every identity has its full allowance again."""
        self.used.clear()

    def manifest_gets(self) -> list[RecordedRequest]:
        return self.select("GET", "/manifests/")

    def remaining(self, identity: str = ANONYMOUS) -> int:
        limit = self.allowance.get(identity, self.authenticated_pulls)
        return max(0, limit - self.used.get(identity, 0))

    # -- the front ---------------------------------------------------------------------------
    async def _emulate(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if request.path == "/token":
            return self._token(request)
        identity = self._identity(request)
        if identity is None:
            return self._challenge()
        if "/manifests/" in request.path and request.method in ("GET", "HEAD"):
            return await self._manifest(request, identity)
        return None

    def _challenge(self) -> web.Response:
        realm = f'Bearer realm="http://{self.host}/token",service="registry.docker.io"'
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return web.json_response(body, status=401, headers={"WWW-Authenticate": realm})

    def _identity(self, request: web.BaseRequest) -> str | None:
        value = request.headers.get("Authorization", "")
        if not value.lower().startswith("bearer "):
            return None
        identity, expiry = self.tokens.get(value[7:].strip(), ("", 0.0))
        return identity if expiry > time.time() else None

    def _token(self, request: web.BaseRequest) -> web.Response:
        identity = ANONYMOUS
        value = request.headers.get("Authorization", "")
        if value.lower().startswith("basic "):
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
            if self.users.get(user) != password or not user:
                return web.json_response({"details": "incorrect username or password"}, status=401)
            identity = user
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (identity, time.time() + self.token_ttl)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": self.token_ttl, "issued_at": issued}
        )

    def _rate_headers(self, identity: str) -> dict[str, str]:
        if self.headers_mode == "absent":
            return {}
        if self.headers_mode == "empty":
            return {"RateLimit-Limit": "", "RateLimit-Remaining": ""}
        limit = self.allowance.get(identity, self.authenticated_pulls)
        return {
            "RateLimit-Limit": f"{limit};w={WINDOW}",
            "RateLimit-Remaining": f"{self.remaining(identity)};w={WINDOW}",
        }

    async def _manifest(self, request: web.BaseRequest, identity: str) -> web.Response:
        if request.method == "GET" and self.remaining(identity) == 0:
            self.limited.append(request.path)
            response = _error_response(429, "TOOMANYREQUESTS", LIMIT_MESSAGE)
            response.headers.update(self._rate_headers(identity))
            return response
        assert self._session is not None
        headers = {"Accept": request.headers.get("Accept", "")}
        async with self._session.request(
            request.method, self.upstream_url + request.raw_path, headers=headers
        ) as up:
            body = await up.read()
            keep = ("Content-Type", "Docker-Content-Digest", "Content-Length")
            out = {k: up.headers[k] for k in keep if k in up.headers}
            status = up.status
        if request.method == "GET" and status == 200:
            self.used[identity] = self.used.get(identity, 0) + 1
        if status == 200:
            out.update(self._rate_headers(identity))
        response = web.Response(status=status, body=None if request.method == "HEAD" else body)
        response.headers.update(out)
        return response
