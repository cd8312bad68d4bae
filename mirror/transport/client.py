"""The HTTP transport every registry request goes through.

It owns: the aiohttp session, scheme selection (https; plain http only on opt-in or for
loopback), the ``/v2/`` ping and the auth challenge per host, bearer tokens per (host, scopes)
refreshed *before* they would expire during a request, Basic auth, redirects that never carry
``Authorization`` to another host, retries with backoff (the only layer that retries),
per-host concurrency and rate limits, and the translation of failures into typed errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mirror import __version__
from mirror.auth.credentials import Credential, CredentialProvider, StaticProvider
from mirror.transport.challenge import Challenge, pick_challenge
from mirror.transport.errors import (
    MAX_ERROR_BODY,
    from_exception,
    read_bounded,
    redact_url,
    registry_error,
)
from mirror.transport.lifetime import check_lifetime, expected_seconds, refresh_margin
from mirror.transport.limits import RateLimiter
from mirror.transport.retry import RetryPolicy, parse_retry_after
from mirror.transport.throughput import ThroughputMeter
from mirror.transport.tokens import Token, TokenCache, parse_token_response
from mirror.transport.urls import (
    credentials_allowed,
    host_of,
    parse_url,
    ping_schemes,
    resolve_location,
)
from mirror.types import events as ev
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import (
    AuthError,
    InputError,
    MirrorError,
    RegistryError,
    UnsafeRequest,
)
from mirror.types.events import Event, EventSink

USER_AGENT = f"mirror/{__version__}"
CREDENTIAL_RECHECK = 60.0  # seconds a provider's answer is kept before it is asked again
MAX_REDIRECTS = 5
READ_CHUNK = 1024 * 1024

BodyFactory = Callable[[], AsyncIterator[bytes]]
# bytes and factories can be sent again (a factory re-opens its source); a bare iterator cannot.
Body = bytes | BodyFactory | AsyncIterator[bytes] | None


def _replayable(body: Body) -> bool:
    return body is None or isinstance(body, bytes) or callable(body)


@dataclass(frozen=True)
class HostOptions:
    plain_http: bool = False
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    max_concurrency: int = 16
    requests_per_second: float | None = None


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL


@dataclass
class _HostState:
    options: HostOptions
    semaphore: asyncio.Semaphore
    limiter: RateLimiter | None
    scheme: str = ""
    challenge: Challenge | None = None
    ping: asyncio.Task[None] | None = None
    secrets: set[str] = field(default_factory=set)


class Transport:
    """One per run; share it between all stores of that run."""

    def __init__(
        self,
        credentials: CredentialProvider | None = None,
        *,
        options: Mapping[str, HostOptions] | None = None,
        default_options: HostOptions | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock = system_clock,
        events: EventSink = ev.discard,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        throughput: ThroughputMeter | None = None,
        connect_timeout: float = 30.0,
        read_timeout: float = 300.0,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.credentials: CredentialProvider = credentials or StaticProvider()
        self._options = dict(options or {})
        self._default_options = default_options or HostOptions()
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.events = events
        self.sleep = sleep
        self.throughput = throughput or ThroughputMeter()
        self._hosts: dict[str, _HostState] = {}
        self._tokens = TokenCache()
        self._credentials: dict[str, tuple[Credential | None, float]] = {}
        self.on_secret = on_secret
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self.request_count = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for state in self._hosts.values():
            if state.ping is not None and not state.ping.done():
                state.ping.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            keep_buffers_in_heap()
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                read_bufsize=READ_CHUNK,
                headers={"User-Agent": USER_AGENT},
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    def options_for(self, host: str) -> HostOptions:
        return self._options.get(host, self._default_options)

    def set_options(self, host: str, options: HostOptions) -> None:
        self._options[host] = options
        self._hosts.pop(host, None)

    def _state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            opts = self.options_for(host)
            limiter = RateLimiter(opts.requests_per_second) if opts.requests_per_second else None
            state = _HostState(opts, asyncio.Semaphore(max(1, opts.max_concurrency)), limiter)
            self._hosts[host] = state
        return state

    def _ssl_for(self, opts: HostOptions) -> ssl.SSLContext | bool:
        if not (opts.ca_file or opts.client_cert):
            return True
        ctx = ssl.create_default_context(cafile=opts.ca_file)
        if opts.client_cert:
            ctx.load_cert_chain(opts.client_cert, opts.client_key)
        return ctx

    def _emit(self, kind: str, **fields: Any) -> None:
        self.events(Event(kind, **fields))

    # -- scheme, ping, challenge -------------------------------------------------------------

    async def base_url(self, host: str) -> URL:
        """``scheme://host`` for a registry, after its ``/v2/`` ping (once per host per run)."""
        state = self._state(host)
        if not state.scheme:
            if state.ping is None:
                state.ping = asyncio.ensure_future(self._ping(host, state))
            try:
                await asyncio.shield(state.ping)
            except BaseException:
                if state.ping.done():
                    state.ping = None  # let a later call try again
                raise
        return URL.build(scheme=state.scheme, authority=host)

    async def _ping(self, host: str, state: _HostState) -> None:
        opts = state.options
        schemes = ping_schemes(host, opts.plain_http)
        last: MirrorError | None = None
        for scheme in schemes:
            url = URL.build(scheme=scheme, authority=host, path="/v2/")
            for attempt in range(1, self.retry.attempts + 1):
                try:
                    async with state.semaphore:
                        resp = await self._get_session().get(
                            url, allow_redirects=False, ssl=self._ssl_for(opts)
                        )
                        body = await read_bounded(resp.content, MAX_ERROR_BODY)
                        resp.release()
                    self._count(host, "GET", resp.status)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    last = from_exception(exc, "GET", str(url))
                    if (
                        len(schemes) > 1
                        and scheme == "https"
                        and not isinstance(exc, aiohttp.ClientConnectorCertificateError)
                    ):
                        break  # try plain http on loopback, unless it speaks TLS with a bad certificate
                    if self.retry.should_retry(last, attempt):
                        await self.backoff(host, attempt, last)
                        continue
                    raise last from None
                if resp.status == 401:
                    header = resp.headers.get("WWW-Authenticate", "")
                    state.challenge = pick_challenge(header)
                elif resp.status >= 500 or resp.status == 429:
                    last = registry_error("GET", str(url), resp.status, body)
                    if self.retry.should_retry(last, attempt):
                        await self.backoff(host, attempt, last)
                        continue
                    raise last
                elif resp.status == 404:
                    raise RegistryError(
                        f"{host} does not serve the registry API (GET /v2/ answered 404)",
                        status=404,
                    )
                state.scheme = scheme
                return
        assert last is not None
        raise last

    # -- auth -------------------------------------------------------------------------------

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
        cred = await self.credentials.resolve(host, min_valid=min_valid)
        if kept is not None and kept[0] is not None and cred is not None and cred != kept[0]:
            self._emit(ev.CREDENTIAL_REFRESH, host=host, detail=cred.provider)
        self._credentials[host] = (cred, now)
        if cred is not None:
            for secret in cred.secrets():
                self._remember_secret(host, secret)
        return cred

    def _remember_secret(self, host: str, secret: str) -> None:
        state = self._state(host)
        if secret not in state.secrets:
            state.secrets.add(secret)
            if self.on_secret is not None:
                self.on_secret(secret)

    def _check_credentials_safe(self, host: str, target: URL) -> None:
        if not credentials_allowed(target):
            raise UnsafeRequest(
                f"refusing to send credentials for {host} over plain HTTP to "
                f"{target.host}: serve the registry over https (plain HTTP with credentials is "
                "allowed on loopback only)"
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
        session = self._get_session()
        ssl_opt = self._ssl_for(self.options_for(host_of(realm)))
        try:
            if cred is not None and cred.identity_token:
                self._check_credentials_safe(host, realm)
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
                    self._check_credentials_safe(host, realm)
                    headers["Authorization"] = _basic(cred)
                resp = await session.get(url, headers=headers, allow_redirects=False, ssl=ssl_opt)
            body = await read_bounded(resp.content, 64 * 1024)
            resp.release()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise from_exception(exc, "GET", redact_url(str(realm))) from None
        self._count(host_of(realm), "GET", resp.status)
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
        self._emit(ev.TOKEN_FETCH, host=host, detail=f"{int(token.lifetime)}s")
        return token

    async def _authorization(
        self, host: str, scopes: tuple[str, ...], expected_seconds: float, size: int
    ) -> str | None:
        """The Authorization header for a request expected to take ``expected_seconds``.

        Whatever is presented -- a Basic credential or a bearer token -- must stay valid until
        the request ends (plus a margin); it is refreshed first when it would not. When even a
        fresh one cannot last that long and it does expire, the request is refused before a
        byte is sent. A credential that does not expire (a service account key, a password)
        lets a long request go ahead with the freshest token the realm gives.
        """
        state = self._state(host)
        challenge = state.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            margin = refresh_margin(3600.0) if expected_seconds else 0.0
            cred = await self.credential(host, expected_seconds + margin)
            if cred is None or cred.anonymous:
                return None
            self._check(host, cred.remaining(self.clock()), expected_seconds, size, cred)
            self._check_credentials_safe(host, URL.build(scheme=state.scheme, authority=host))
            return _basic(cred)
        if challenge.scheme != "bearer":
            return None
        key = (host, frozenset(scopes))

        def fresh_enough(token: Token) -> bool:
            need = expected_seconds + refresh_margin(token.lifetime)
            return token.remaining(self.clock()) >= need

        token, _ = await self._tokens.get(
            key, fresh_enough, lambda: self._fetch_token(host, challenge, key[1], expected_seconds)
        )
        if not fresh_enough(token):
            # Even a freshly minted token will not outlive this request.
            cred = await self.credential(host)
            if cred is not None and cred.expires_at is not None:
                self._check(host, token.remaining(self.clock()), expected_seconds, size, cred)
        self._remember_secret(host, token.value)
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

    def secrets_for(self, host: str) -> frozenset[str]:
        return frozenset(self._state(host).secrets)

    # -- requests ---------------------------------------------------------------------------

    def _count(self, host: str, method: str, status: int) -> None:
        self.request_count += 1
        self._emit(ev.REQUEST, host=host, status=status, detail=method)
        if status == 429:
            self._emit(ev.THROTTLED, host=host, status=status)

    async def backoff(self, host: str, attempt: int, error: MirrorError) -> None:
        retry_after = getattr(error, "retry_after", None)
        delay = self.retry.delay(attempt, retry_after)
        self._emit(ev.RETRY, host=host, detail=error.kind, status=getattr(error, "status", 0))
        await self.sleep(delay)

    async def request(
        self,
        method: str,
        host: str,
        path: str | URL,
        *,
        scopes: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        content_length: int | None = None,
        ok: tuple[int, ...] = (200,),
        max_body: int = MAX_ERROR_BODY,
        retry: bool = True,
        transfer_size: int = 0,
    ) -> Reply:
        """Send a request and read its (bounded) body; raise a typed error unless ``ok``.

        A body that breaks off while it is read (reset, timeout) is a temporary failure: the
        request is sent again, like one that failed before its answer.
        """
        attempt = 0
        while True:
            attempt += 1
            where: str | URL = path
            try:
                async with self.stream(
                    method,
                    host,
                    path,
                    scopes=scopes,
                    headers=headers,
                    body=body,
                    content_length=content_length,
                    ok=ok,
                    retry=retry,
                    transfer_size=transfer_size,
                ) as resp:
                    where = resp.url
                    data = await read_bounded(resp.content, max_body) if method != "HEAD" else b""
                    if len(data) > max_body:
                        raise RegistryError(
                            f"{method} {redact_url(str(resp.url))}: response larger than {max_body} bytes",
                            status=resp.status,
                            temporary=False,
                        )
                    return Reply(resp.status, resp.headers, data, resp.url)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure = from_exception(exc, method, redact_url(str(where)))
                if not retry or not self.retry.should_retry(failure, attempt):
                    raise failure from None
                await self.backoff(host, attempt, failure)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        host: str,
        path: str | URL,
        *,
        scopes: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        content_length: int | None = None,
        ok: tuple[int, ...] = (200,),
        retry: bool = True,
        transfer_size: int = 0,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Like :meth:`request` but yields the response for the caller to read as a stream.

        Requests with a body factory or a ``transfer_size`` do not hold a per-host slot while
        their body moves (the copy engine bounds transfers); all others do.
        """
        base = await self.base_url(host)
        url = path if isinstance(path, URL) else base.join(URL(path, encoded=True))
        state = self._state(host)
        long_running = transfer_size > 0 or callable(body)
        expected = expected_seconds(transfer_size, self.throughput.rate(host))
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._send(
                    method,
                    host,
                    url,
                    scopes,
                    headers,
                    body,
                    content_length,
                    expected,
                    transfer_size,
                    hold_slot=not long_running,
                )
                if resp.status in ok:
                    break
                err_body = b""
                if method != "HEAD":
                    err_body = await read_bounded(resp.content, MAX_ERROR_BODY)
                resp.release()
                error = registry_error(
                    method,
                    redact_url(str(resp.url)),
                    resp.status,
                    err_body,
                    parse_retry_after(resp.headers.get("Retry-After"), self.clock()),
                )
                if resp.status == 401:
                    # A body that could not be sent again was refused with a stale token: the
                    # token is dropped, and the caller may retry with a fresh read of its source.
                    error.temporary = not _replayable(body)
                raise error
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure = from_exception(exc, method, redact_url(str(url)))
                if not retry or not self.retry.should_retry(failure, attempt):
                    raise failure from None
                await self.backoff(host, attempt, failure)
            except MirrorError as error:
                if isinstance(error, InputError | UnsafeRequest | AuthError):
                    raise
                if not retry or not self.retry.should_retry(error, attempt):
                    raise
                await self.backoff(host, attempt, error)
        try:
            yield resp
        finally:
            resp.release()
        del state

    async def _send(
        self,
        method: str,
        host: str,
        url: URL,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None,
        body: Body,
        content_length: int | None,
        expected: float,
        size: int,
        *,
        hold_slot: bool,
    ) -> aiohttp.ClientResponse:
        """One request, with auth, one re-challenge on 401, and safe redirects."""
        state = self._state(host)
        rechallenged = False
        while True:
            hdrs = CIMultiDict(headers or {})
            # Credentials only ever go to the registry host itself.
            auth = await self._authorization(host, scopes, expected, size) if host_of(url) == host else None
            if auth:
                hdrs["Authorization"] = auth
            if content_length is not None:
                hdrs["Content-Length"] = str(content_length)
            data: Any = body() if callable(body) else body
            if state.limiter is not None:
                await state.limiter.acquire()
            if hold_slot:
                async with state.semaphore:
                    resp = await self._follow(method, host, url, hdrs, data)
            else:
                resp = await self._follow(method, host, url, hdrs, data)
            if resp.status == 401 and not rechallenged:
                header = resp.headers.get("WWW-Authenticate", "")
                challenge = pick_challenge(header)
                if challenge is not None and not _replayable(body):
                    state.challenge = challenge
                    self._tokens.invalidate((host, frozenset(scopes)))
                if challenge is not None and _replayable(body):
                    await resp.read()
                    resp.release()
                    rechallenged = True
                    state.challenge = challenge
                    wanted = set(scopes) | set(challenge.scopes)
                    self._tokens.invalidate((host, frozenset(scopes)))
                    scopes = tuple(sorted(wanted))
                    self._tokens.invalidate((host, frozenset(scopes)))
                    continue
            return resp

    async def _follow(
        self, method: str, host: str, url: URL, headers: CIMultiDict[str], data: Any
    ) -> aiohttp.ClientResponse:
        session = self._get_session()
        ssl_opt = self._ssl_for(self.options_for(host))
        for _ in range(MAX_REDIRECTS + 1):
            resp = await session.request(
                method, url, headers=headers, data=data, allow_redirects=False, ssl=ssl_opt
            )
            self._count(host_of(url), method, resp.status)
            if resp.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return resp
            location = resp.headers.get("Location")
            if not location:
                return resp
            resp.release()
            target = resolve_location(url, location)
            if host_of(target) != host_of(url) or target.scheme != url.scheme:
                headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() != "authorization")
            url = target
        raise UnsafeRequest(f"{method} {redact_url(str(url))}: more than {MAX_REDIRECTS} redirects")


def _basic(cred: Credential) -> str:
    raw = f"{cred.username}:{cred.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


_heap_tuned = False


def keep_buffers_in_heap() -> None:
    """Let glibc keep freed stream buffers instead of returning them to the OS (once per process).

    A streamed blob allocates and frees a ~256 KiB chunk for every network read; with glibc's
    adaptive mmap/trim thresholds that memory keeps going back to the OS and is faulted in
    again. Fixed thresholds (blocks up to 8 MiB from the heap, trim only above 32 MiB free)
    cut the page-fault churn. Peak memory is unchanged: it is what the transfer holds anyway.
    """
    global _heap_tuned
    if _heap_tuned or not sys.platform.startswith("linux"):
        return
    _heap_tuned = True
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-1, 32 * 1024 * 1024)  # M_TRIM_THRESHOLD
    mallopt(-3, 8 * 1024 * 1024)  # M_MMAP_THRESHOLD
