"""Amazon ECR Public, emulated: a real `docker-registry` behind an aiohttp front with ECR Public's
token realm, its answer to an expired token, and its `GetAuthorizationToken` (`POST /`, JSON 1.1,
target `SpencerFrontendService.GetAuthorizationToken`) on the same port.

    public = EcrPublicEmulator(registry_handle).start()
    push_image(registry_handle, "lib/app", "v1")       # seed through the real registry
    public.expire_tokens()                             # every token handed out so far expires

Each behaviour, and where it comes from:
- `/v2/` answers `401` with a bearer challenge whose realm is the registry's `/token/`; anonymous
  token requests get a pull token -- documented (ECR Public User Guide, "Registry
  authentication") and observed (`curl -I https://public.ecr.aws/v2` answers 401);
- the realm takes Basic `AWS` and the password of `ecr-public:GetAuthorizationToken`, whose answer
  is one `authorizationData` object with `authorizationToken` (base64 of `AWS:PASSWORD`) and
  `expiresAt` -- documented (ECR Public API reference);
- a request with an expired or invalid bearer token is answered `400` without a challenge, not
  `401` -- reported (aws/containers-roadmap#2835, lablup/backend.ai#2549); the error body is
  guessed.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from aiohttp import web

from tests.support.faults import _error_response
from tests.support.proxy import RegistryProxy


class EcrPublicEmulator(RegistryProxy):
    thread_name = "ecr-public-emulator"

    def __init__(self, upstream: Any, *, token_ttl: int = 3600) -> None:
        super().__init__(upstream)
        self.token_ttl = token_ttl
        self.passwords: set[str] = set()  # from GetAuthorizationToken
        self.tokens: dict[str, tuple[str, float]] = {}  # bearer token -> (identity, expiry)
        self.token_requests: list[str] = []  # identity of each token request ("" anonymous)
        self.expired_answers = 0

    def expire_tokens(self) -> None:
        self.tokens = {t: (who, 0.0) for t, (who, _) in self.tokens.items()}

    async def _emulate(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if request.method == "POST" and request.path == "/":
            return self._api(request)
        if request.path == "/token/":
            return self._token(request)
        return self._check_bearer(request)

    def _check_bearer(self, request: web.BaseRequest) -> web.Response | None:
        value = request.headers.get("Authorization", "")
        if not value.lower().startswith("bearer "):
            realm = f'Bearer realm="http://{self.host}/token/",service="public.ecr.aws",scope="aws"'
            body = {"errors": [{"code": "DENIED", "message": "Not Authorized"}]}
            return web.json_response(body, status=401, headers={"WWW-Authenticate": realm})
        _, expiry = self.tokens.get(value[7:].strip(), ("", 0.0))
        if expiry <= time.time():
            self.expired_answers += 1
            return _error_response(
                400, "DENIED", "Your authorization token has expired. Reauthenticate and try again."
            )
        return None

    def _token(self, request: web.BaseRequest) -> web.Response:
        identity = ""
        value = request.headers.get("Authorization", "")
        if value.lower().startswith("basic "):
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
            if user != "AWS" or password not in self.passwords:
                return web.json_response(
                    {"errors": [{"code": "DENIED", "message": "bad credentials"}]}, status=401
                )
            identity = user
        self.token_requests.append(identity)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (identity, time.time() + self.token_ttl)
        return web.json_response({"token": token, "expires_in": self.token_ttl})

    def _api(self, request: web.BaseRequest) -> web.Response:
        if request.headers.get("X-Amz-Target", "") != "SpencerFrontendService.GetAuthorizationToken":
            body = {"__type": "UnknownOperationException", "message": request.headers.get("X-Amz-Target", "")}
            return web.Response(status=400, text=json.dumps(body), content_type="application/x-amz-json-1.1")
        password = secrets.token_urlsafe(32)
        self.passwords.add(password)
        data = {
            "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
            "expiresAt": time.time() + 12 * 3600,
        }
        return web.Response(
            status=200,
            text=json.dumps({"authorizationData": data}),
            content_type="application/x-amz-json-1.1",
        )
