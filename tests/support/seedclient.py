"""A small blocking registry client on `requests`, independent of the `mirror` package.

It authenticates the way its target asks: nothing, Basic (htpasswd), or a bearer token from the
realm named in the `/v2/` challenge, with scope `repository:<repo>:pull,push`. Tokens are cached
per scope until shortly before they expire. It uses the seed account of a registry handle
unless given other credentials, and sends `User-Agent: mirror-tests-seeder`.
"""

from __future__ import annotations

import base64
import re
import time
import urllib.parse
from typing import Any, Protocol

import requests

USER_AGENT = "mirror-tests-seeder"
TIMEOUT = (5.0, 120.0)


class Target(Protocol):
    """What seeding needs to know about a registry (a RegistryHandle or a RegistryProxy)."""

    @property
    def url(self) -> str: ...
    @property
    def auth(self) -> str: ...
    @property
    def seed_creds(self) -> tuple[str, str] | None: ...


class RegistryError(AssertionError):
    def __init__(self, response: requests.Response, expected: tuple[int, ...]) -> None:
        self.response = response
        super().__init__(
            f"{response.request.method} {response.url} -> {response.status_code}, "
            f"expected {expected}: {response.text[:500]}"
        )


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class SeedClient:
    def __init__(self, target: Target, creds: tuple[str, str] | None = None) -> None:
        self.base = target.url.rstrip("/")
        self.mode = target.auth
        self.creds = creds if creds is not None else target.seed_creds
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["User-Agent"] = USER_AGENT
        self._challenge: dict[str, str] | None = None
        self._tokens: dict[str, tuple[str, float]] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return (
            urllib.parse.urljoin(self.base + "/", path.lstrip("/")) if not path.startswith("http") else path
        )

    def _bearer_challenge(self) -> dict[str, str]:
        if self._challenge is None:
            r = self.session.get(self.url("/v2/"), timeout=TIMEOUT)
            scheme, params = parse_challenge(r.headers.get("WWW-Authenticate", ""))
            if r.status_code != 401 or scheme != "bearer" or "realm" not in params:
                raise RegistryError(r, (401,))
            self._challenge = params
        return self._challenge

    def auth_headers(
        self, repo: str | None, actions: str = "pull,push", scope: str | None = None
    ) -> dict[str, str]:
        """Authorization for one request; `scope` overrides `repository:<repo>:<actions>`."""
        if self.mode == "none" or self.creds is None:
            return {}
        if self.mode == "htpasswd":
            user, password = self.creds
            basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {basic}"}
        if scope is None:
            scope = f"repository:{repo}:{actions}" if repo else ""
        cached = self._tokens.get(scope)
        if cached and cached[1] > time.monotonic():
            return {"Authorization": f"Bearer {cached[0]}"}
        challenge = self._bearer_challenge()
        params = {"service": challenge.get("service", "")}
        if scope:
            params["scope"] = scope
        r = self.session.get(challenge["realm"], params=params, auth=self.creds, timeout=TIMEOUT)
        if r.status_code != 200:
            raise RegistryError(r, (200,))
        body = r.json()
        token = body.get("token") or body["access_token"]
        ttl = float(body.get("expires_in", 60))
        self._tokens[scope] = (token, time.monotonic() + ttl - min(5.0, ttl / 2))
        return {"Authorization": f"Bearer {token}"}

    def request(
        self,
        method: str,
        path: str,
        repo: str | None,
        *,
        expect: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        actions: str = "pull,push",
        scope: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with auth; raises RegistryError unless the status is in `expect`."""
        all_headers = {**self.auth_headers(repo, actions, scope), **(headers or {})}
        r = self.session.request(
            method, self.url(path), headers=all_headers, timeout=TIMEOUT, allow_redirects=False, **kwargs
        )
        if r.status_code not in expect:
            raise RegistryError(r, expect)
        return r
