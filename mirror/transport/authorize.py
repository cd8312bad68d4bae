"""What a request presents to a registry: the Authorization header, from credentials and tokens.

An :class:`Authorizer` answers the header for a request from the host's auth challenge: Basic
from the provider's credential, or a bearer token for the request's scopes, kept per (host,
scopes) and fetched from the challenge's realm (the token flow with Basic or anonymous access,
or the OAuth2 refresh-token flow for identity tokens). Whatever is presented is refreshed
*before* it would expire during the request. Credentials never go over plain HTTP except to
loopback.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable

import aiohttp
from yarl import URL

from mirror.auth.credentials import Credential, CredentialProvider
from mirror.transport.challenge import Challenge
from mirror.transport.errors import MAX_ERROR_BODY, from_exception, read_bounded, redact_url, registry_error
from mirror.transport.lifetime import check_lifetime, refresh_margin
from mirror.transport.throughput import ThroughputMeter
from mirror.transport.tokens import Token, TokenCache, parse_token_response
from mirror.transport.urls import credentials_allowed, host_of, parse_url
from mirror.types import events as ev
from mirror.types.clock import Clock
from mirror.types.errors import AuthError, UnsafeRequest
from mirror.types.events import Event, EventSink

CREDENTIAL_RECHECK = 60.0  # seconds a provider's answer is kept before it is asked again


class Authorizer:
    """The credentials and bearer tokens of one transport, per host.

    Token requests go through ``session()`` with ``ssl_for(realm host)``; each answer is
    reported to ``on_response(host, method, status)``. Every secret presented to a host is
    reported to ``on_secret(host, secret)`` first.
    """

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        clock: Clock,
        throughput: ThroughputMeter,
        events: EventSink,
        session: Callable[[], aiohttp.ClientSession],
        ssl_for: Callable[[str], ssl.SSLContext | bool],
        on_response: Callable[[str, str, int], None],
        on_secret: Callable[[str, str], None],
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.throughput = throughput
        self._events = events
        self._session = session
        self._ssl_for = ssl_for
        self._on_response = on_response
        self._on_secret = on_secret
        self.tokens = TokenCache()
        self._credentials: dict[str, tuple[Credential | None, float]] = {}

    async def credential(self, host: str, min_valid: float = 0.0) -> Credential | None:
        """The provider's credential for ``host``, valid ``min_valid`` more seconds when it can be.

        Answers are kept for a while; the provider is asked again when the kept credential
        would not last ``min_valid`` seconds, so a refresh happens before expiry, not after.
        """
        now = self.clock()
        kept = self._credentials.get(host)
        if kept is not None:
            cred, asked_at = kept
            lasts = cred is None or cred.remaining(now) >= min_valid
            if lasts and now - asked_at < CREDENTIAL_RECHECK:
                return cred
        cred = await self.provider.resolve(host, min_valid=min_valid)
        if kept is not None and kept[0] is not None and cred is not None and cred != kept[0]:
            self._events(Event(ev.CREDENTIAL_REFRESH, host=host, detail=cred.provider))
        self._credentials[host] = (cred, now)
        if cred is not None:
            for secret in cred.secrets():
                self._on_secret(host, secret)
        return cred

    async def header(
        self,
        host: str,
        challenge: Challenge | None,
        scheme: str,
        scopes: tuple[str, ...],
        expected_seconds: float,
        size: int,
    ) -> str | None:
        """The Authorization header for a request to ``host``, expected to take ``expected_seconds``.

        Whatever is presented -- a Basic credential or a bearer token -- must stay valid until
        the request ends (plus a margin); it is refreshed first when it would not. When even a
        fresh one cannot last that long and it does expire, the request is refused before a
        byte is sent. A credential that does not expire (a service account key, a password)
        lets a long request go ahead with the freshest token the realm gives.
        """
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            margin = refresh_margin(3600.0) if expected_seconds else 0.0
            cred = await self.credential(host, expected_seconds + margin)
            if cred is None or cred.anonymous:
                return None
            self._check(host, cred.remaining(self.clock()), expected_seconds, size, cred)
            _check_credentials_safe(host, URL.build(scheme=scheme, authority=host))
            return _basic(cred)
        if challenge.scheme != "bearer":
            return None
        key = (host, frozenset(scopes))

        def fresh_enough(token: Token) -> bool:
            need = expected_seconds + refresh_margin(token.lifetime)
            return token.remaining(self.clock()) >= need

        token, _ = await self.tokens.get(
            key, fresh_enough, lambda: self._fetch_token(host, challenge, key[1], expected_seconds)
        )
        if not fresh_enough(token):
            # Even a freshly minted token will not outlive this request.
            cred = await self.credential(host)
            if cred is not None and cred.expires_at is not None:
                self._check(host, token.remaining(self.clock()), expected_seconds, size, cred)
        self._on_secret(host, token.value)
        return f"Bearer {token.value}"

    def _check(self, host: str, remaining: float, expected: float, size: int, cred: Credential) -> None:
        check_lifetime(
            host=host,
            size=size,
            rate=self.throughput.rate(host),
            expected=expected,
            remaining=remaining,
            what=f"{cred.kind} from {cred.provider}",
        )

    async def _fetch_token(
        self, host: str, challenge: Challenge, scopes: frozenset[str], min_valid: float
    ) -> Token:
        cred = await self.credential(host, min_valid)
        now = self.clock()
        if cred is not None and cred.registry_token:
            return Token(cred.registry_token, now, cred.expires_at or now + 3600 * 24 * 365)
        try:
            realm = parse_url(challenge.realm) if challenge.realm else None
        except UnsafeRequest:
            realm = None
        if realm is None or realm.scheme not in ("http", "https") or not realm.host:
            raise AuthError(f"{host} sent a bearer challenge without a usable realm")
        scope_list = sorted(scopes) if scopes else list(challenge.scopes)
        headers: dict[str, str] = {}
        session = self._session()
        ssl_opt = self._ssl_for(host_of(realm))
        try:
            if cred is not None and cred.identity_token:
                _check_credentials_safe(host, realm)
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": cred.identity_token,
                    "service": challenge.service,
                    "scope": " ".join(scope_list),
                    "client_id": "mirror",
                }
                resp = await session.post(realm, data=form, allow_redirects=False, ssl=ssl_opt)
            else:
                query: list[tuple[str, str]] = []
                if challenge.service:
                    query.append(("service", challenge.service))
                query.extend(("scope", s) for s in scope_list)
                url = realm.update_query(query)
                if cred is not None and not cred.anonymous:
                    _check_credentials_safe(host, realm)
                    headers["Authorization"] = _basic(cred)
                resp = await session.get(url, headers=headers, allow_redirects=False, ssl=ssl_opt)
            body = await read_bounded(resp.content, 64 * 1024)
            resp.release()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise from_exception(exc, "GET", redact_url(str(realm))) from None
        self._on_response(host_of(realm), "GET", resp.status)
        if resp.status != 200:
            err = registry_error("GET", redact_url(str(realm)), resp.status, body[:MAX_ERROR_BODY])
            if resp.status in (401, 403):
                who = cred.kind if cred else "anonymous access"
                raise AuthError(
                    f"{host}: the token service refused {who} for {' '.join(scope_list)} "
                    f"(HTTP {resp.status}); check the credentials for {host}"
                )
            raise err
        token = parse_token_response(body, self.clock())
        if cred is not None and cred.expires_at is not None and cred.expires_at < token.expires_at:
            # A token minted from an expiring credential is not trusted to outlive it.
            token = Token(token.value, token.issued_at, cred.expires_at)
        self._events(Event(ev.TOKEN_FETCH, host=host, detail=f"{int(token.lifetime)}s"))
        return token


def _basic(cred: Credential) -> str:
    raw = f"{cred.username}:{cred.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _check_credentials_safe(host: str, target: URL) -> None:
    if not credentials_allowed(target):
        raise UnsafeRequest(
            f"refusing to send credentials for {host} over plain HTTP to "
            f"{target.host}: serve the registry over https (plain HTTP with credentials is "
            "allowed on loopback only)"
        )
