"""The HTTP transport every registry request goes through: Transport, and HostOptions per host.

A Transport owns the state of each registry host (the scheme and auth challenge its ``/v2/``
ping found, per-host concurrency and rate limits, the secrets sent to it), retries with backoff
(the only layer that retries), and the translation of failures into typed errors. Around it:
:mod:`~mirror.transport.session` (the aiohttp session and TLS contexts),
:mod:`~mirror.transport.ping` (scheme selection: https; plain http only on opt-in or for
loopback), :mod:`~mirror.transport.authorize` (Basic auth and bearer tokens per (host, scopes),
refreshed *before* they would expire during a request) and :mod:`~mirror.transport.redirects`
(redirects that never carry ``Authorization`` to another host).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mirror.auth.credentials import Credential, CredentialProvider, StaticProvider
from mirror.transport.authorize import Authorizer
from mirror.transport.challenge import Challenge, pick_challenge
from mirror.transport.errors import MAX_ERROR_BODY, from_exception, read_bounded, redact_url, registry_error
from mirror.transport.lifetime import expected_seconds
from mirror.transport.limits import RateLimiter
from mirror.transport.ping import ping
from mirror.transport.redirects import follow
from mirror.transport.retry import RetryPolicy, parse_retry_after
from mirror.transport.session import new_session, ssl_context
from mirror.transport.throughput import ThroughputMeter
from mirror.transport.urls import host_of, ping_schemes
from mirror.types import events as ev
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import AuthError, InputError, MirrorError, RegistryError, UnsafeRequest
from mirror.types.events import Event, EventSink

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
    final_codes: frozenset[str] = frozenset()
    """OCI error codes this host means as final, not to be retried (Docker Hub's
    ``TOOMANYREQUESTS``: a pull limit that refills in hours, not seconds)."""
    expired_token_statuses: frozenset[int] = frozenset()
    """Statuses besides 401 this host answers to an expired bearer token, without a challenge
    (ECR Public: 400): the token is fetched again, once."""


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
        self._options = dict(options or {})
        self._default_options = default_options or HostOptions()
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.events = events
        self.sleep = sleep
        self.throughput = throughput or ThroughputMeter()
        self._hosts: dict[str, _HostState] = {}
        self._auth = Authorizer(
            credentials or StaticProvider(),
            clock=clock,
            throughput=self.throughput,
            events=events,
            session=self._get_session,
            ssl_for=lambda host: self._ssl_for(self.options_for(host)),
            on_response=self._count,
            on_secret=self._remember_secret,
        )
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
            self._session = new_session(self._timeout)
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
        return ssl_context(opts.ca_file, opts.client_cert, opts.client_key)

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

        def get(url: URL) -> Awaitable[aiohttp.ClientResponse]:
            return self._get_session().get(url, allow_redirects=False, ssl=self._ssl_for(opts))

        state.scheme, state.challenge = await ping(
            host,
            ping_schemes(host, opts.plain_http),
            get=get,
            slots=state.semaphore,
            retry=self.retry,
            backoff=self.backoff,
            on_response=self._count,
        )

    # -- auth -------------------------------------------------------------------------------

    @property
    def credentials(self) -> CredentialProvider:
        return self._auth.provider

    async def credential(self, host: str, min_valid: float = 0.0) -> Credential | None:
        """The provider's credential for ``host``, valid ``min_valid`` more seconds when it can be
        (kept a while, refreshed before expiry: :meth:`Authorizer.credential`)."""
        return await self._auth.credential(host, min_valid)

    def _remember_secret(self, host: str, secret: str) -> None:
        state = self._state(host)
        if secret not in state.secrets:
            state.secrets.add(secret)
            if self.on_secret is not None:
                self.on_secret(secret)

    def secrets_for(self, host: str) -> frozenset[str]:
        return frozenset(self._state(host).secrets)

    async def _authorization(
        self, host: str, scopes: tuple[str, ...], expected_seconds: float, size: int
    ) -> str | None:
        state = self._state(host)
        return await self._auth.header(host, state.challenge, state.scheme, scopes, expected_seconds, size)

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
                if error.code in state.options.final_codes:
                    error.temporary = False
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
                    self._auth.tokens.invalidate((host, frozenset(scopes)))
                if challenge is not None and _replayable(body):
                    # Read (bounded) so the connection may be reused; a longer body closes it.
                    await read_bounded(resp.content, MAX_ERROR_BODY)
                    resp.release()
                    rechallenged = True
                    state.challenge = challenge
                    wanted = set(scopes) | set(challenge.scopes)
                    self._auth.tokens.invalidate((host, frozenset(scopes)))
                    scopes = tuple(sorted(wanted))
                    self._auth.tokens.invalidate((host, frozenset(scopes)))
                    continue
            if (
                resp.status in state.options.expired_token_statuses
                and not rechallenged
                and (auth or "").startswith("Bearer ")
                and _replayable(body)
            ):
                # An expired token refused without a challenge: fetch another and send again.
                await read_bounded(resp.content, MAX_ERROR_BODY)
                resp.release()
                rechallenged = True
                self._auth.tokens.invalidate((host, frozenset(scopes)))
                continue
            return resp

    async def _follow(
        self, method: str, host: str, url: URL, headers: CIMultiDict[str], data: Any
    ) -> aiohttp.ClientResponse:
        ssl_opt = self._ssl_for(self.options_for(host))
        return await follow(
            self._get_session(), method, url, headers, data, ssl=ssl_opt, on_response=self._count
        )
