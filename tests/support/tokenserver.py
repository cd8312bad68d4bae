"""A small Docker registry token server (the distribution "token" auth protocol) for tests.

    GET  <realm>?service=S&scope=repository:NAME:pull,push[&scope=...]   (Basic auth or anonymous)
    POST <realm>  form: grant_type=password, username, password, service, scope (space separated)

Behaviour:
- Basic credentials are checked against `users`; wrong or unknown credentials get 401.
- Anonymous requests (no Authorization) follow `anonymous`: "deny" (default) answers 401 with a
  Basic challenge; "empty" issues a token that carries no access at all (the registry then answers
  the real request with 401/403 as it would for any under-privileged token).
- An authenticated user is granted what `policy(user, access)` returns; the default policy
  grants every requested action.
- Tokens are JWTs signed with ES256 (default) or RS256. The registry trusts the self-signed
  certificate of the signing key (`rootcertbundle`); the key is named in the JWT header either by
  `kid` (the libtrust key ID, default) or by an `x5c` chain holding that certificate. Both are
  accepted by distribution 2.8.
- `exp` = ceil(now + ttl) (integer seconds, as distribution parses it), `nbf`/`iat` = floor(now);
  the response's `expires_in` is `ttl` (an int when the ttl is integral). Note that distribution
  itself accepts tokens up to 60 s past `exp`; the recording proxy can enforce `exp` exactly.
- Every request is recorded (`requests`) and every issued token too (`issued`).

Runs on a `http.server` thread, so it serves sync and async tests alike.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.support import jwt
from tests.support.certs import SigningIdentity, new_identity


@dataclass(frozen=True)
class Access:
    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, scope: str) -> Access:
        """`repository:library/busybox:pull,push` → Access; the name may itself hold ':'."""
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise ValueError(f"malformed scope {scope!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


Policy = Callable[[str | None, Access], tuple[str, ...]]


def grant_all(user: str | None, access: Access) -> tuple[str, ...]:
    return access.actions if user is not None else ()


@dataclass(frozen=True)
class TokenRequest:
    method: str
    user: str | None  # None when anonymous (or when the credentials were wrong: see `status`)
    service: str | None
    scopes: tuple[str, ...]
    status: int
    user_agent: str | None
    at: float


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user: str | None
    scopes: tuple[str, ...]  # as requested
    access: tuple[Access, ...]  # as granted
    issued_at: float
    exp: int
    expires_in: float
    claims: dict[str, Any] = field(repr=False)

    def allows(self, name: str, action: str, kind: str = "repository") -> bool:
        return any(a.type == kind and a.name == name and action in a.actions for a in self.access)


class TokenServer:
    def __init__(
        self,
        users: dict[str, str],
        *,
        service: str = "mirror-test-registry",
        issuer: str = "mirror-test-token-issuer",
        ttl: float = 60.0,
        anonymous: Literal["deny", "empty"] = "deny",
        key_header: Literal["kid", "x5c"] = "kid",
        algorithm: str = "ES256",
        policy: Policy = grant_all,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.anonymous = anonymous
        self.key_header = key_header
        self.policy = policy
        self.clock = clock
        self.identity: SigningIdentity = new_identity(algorithm)
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._issued: list[IssuedToken] = []
        self._injected: list[int] = []
        self._connections: set[socket.socket] = set()
        self._port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> TokenServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = False  # server_close() joins the per-connection threads
        server.token_server = self  # type: ignore[attr-defined]
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end idle keep-alive connections, and join every server thread."""
        if self._server is not None:
            self._server.shutdown()
            with self._lock:
                connections = list(self._connections)
            for conn in connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._port, "token server not started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    # records ---------------------------------------------------------------------------------
    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def issued(self) -> list[IssuedToken]:
        with self._lock:
            return list(self._issued)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    def requests_by(self, user: str | None) -> list[TokenRequest]:
        return [r for r in self.requests if r.user == user]

    def issued_to(self, user: str | None) -> list[IssuedToken]:
        return [t for t in self.issued if t.user == user]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._issued.clear()

    def inject_errors(self, status: int = 503, count: int = 1) -> None:
        """The next `count` token requests answer `status` (before any credential check)."""
        with self._lock:
            self._injected.extend([status] * count)

    # issuing ---------------------------------------------------------------------------------
    def issue(
        self,
        user: str | None,
        scopes: tuple[str, ...] | list[str],
        ttl: float | None = None,
        *,
        record: bool = True,
    ) -> IssuedToken:
        """Mint a token directly (no HTTP). A negative `ttl` gives an already expired token."""
        ttl = self.ttl if ttl is None else ttl
        requested = tuple(Access.parse(s) for s in scopes)
        granted = tuple(
            Access(a.type, a.name, acts) for a in requested if (acts := tuple(self.policy(user, a)))
        )
        now = self.clock()
        exp = math.ceil(now + ttl)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": exp,
            "nbf": math.floor(now),
            "iat": math.floor(now),
            "jti": secrets.token_hex(12),
            "access": [a.claim() for a in granted],
        }
        header: dict[str, Any] = {"typ": "JWT"}
        if self.key_header == "kid":
            header["kid"] = self.identity.key_id
        else:
            header["x5c"] = self.identity.x5c
        token = jwt.encode(header, claims, self.identity.key)
        issued = IssuedToken(token, user, tuple(scopes), granted, now, exp, ttl, claims)
        if record:
            with self._lock:
                self._issued.append(issued)
        return issued

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_injected(self) -> int | None:
        with self._lock:
            return self._injected.pop(0) if self._injected else None

    def _check(self, username: str | None, password: str | None) -> bool:
        return username is not None and username in self.users and self.users[username] == password


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mirror-test-token-server"
    timeout = 30  # an idle keep-alive connection ends after this long at the latest

    def setup(self) -> None:
        super().setup()
        with self.ts._lock:
            self.ts._connections.add(self.connection)

    def finish(self) -> None:
        with self.ts._lock:
            self.ts._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def ts(self) -> TokenServer:
        return self.server.token_server  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self._send(404, {"error": "not found"})
        query = urllib.parse.parse_qs(url.query)
        scopes = tuple(s for param in query.get("scope", []) for s in param.split(" ") if s)
        username, password = self._basic()
        self._answer("GET", username, password, (query.get("service") or [None])[0], scopes, oauth=False)

    def do_POST(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/token":
            return self._send(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            return self._send(413, {"error": "body too large"})
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        one = lambda k: (form.get(k) or [None])[0]  # noqa: E731
        if one("grant_type") != "password":
            return self._send(400, {"error": "unsupported_grant_type"})
        scopes = tuple(s for s in (one("scope") or "").split(" ") if s)
        self._answer("POST", one("username"), one("password"), one("service"), scopes, oauth=True)

    def _basic(self) -> tuple[str | None, str | None]:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return "", None
        return user, password

    def _answer(
        self,
        method: str,
        username: str | None,
        password: str | None,
        service: str | None,
        scopes: tuple[str, ...],
        *,
        oauth: bool,
    ) -> None:
        ts = self.ts

        def record(status: int, user: str | None) -> None:
            ts._record(
                TokenRequest(
                    method, user, service, scopes, status, self.headers.get("User-Agent"), ts.clock()
                )
            )

        injected = ts._take_injected()
        if injected is not None:
            record(injected, None)
            return self._send(injected, {"errors": [{"code": "UNAVAILABLE", "message": "injected"}]})
        anonymous = username is None
        if not anonymous and not ts._check(username, password):
            record(401, None)
            return self._unauthorized()
        if anonymous and ts.anonymous == "deny":
            record(401, None)
            return self._unauthorized()
        if service is not None and service != ts.service:
            record(400, username)
            return self._send(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service}"}]})
        try:
            issued = ts.issue(username, scopes)
        except ValueError as exc:
            record(400, username)
            return self._send(400, {"errors": [{"code": "DENIED", "message": str(exc)}]})
        record(200, username)
        expires_in: float = (
            int(issued.expires_in) if float(issued.expires_in).is_integer() else issued.expires_in
        )
        issued_at = dt.datetime.fromtimestamp(issued.issued_at, dt.UTC).isoformat().replace("+00:00", "Z")
        body: dict[str, Any] = {
            "access_token": issued.token,
            "expires_in": expires_in,
            "issued_at": issued_at,
        }
        if oauth:
            body["scope"] = " ".join(scopes)
        else:
            body["token"] = issued.token
        self._send(200, body)

    def _unauthorized(self) -> None:
        self._send(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            {"WWW-Authenticate": 'Basic realm="mirror-test-token-server"'},
        )

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
