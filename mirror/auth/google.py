"""Credentials for Google registries: Artifact Registry, Container Registry, and other universes.

A Google access token is Basic auth with the user name ``oauth2accesstoken``; the transport
exchanges it at the registry's token realm like any password. Where the token comes from is a
*source*:

- :class:`ApplicationDefault` - ``google.auth.default()``: ``GOOGLE_APPLICATION_CREDENTIALS``, the
  gcloud ADC file, or the metadata server (GCE, GKE, Cloud Run);
- :class:`KeyFile` - a service account key file, as a token source; or, with ``as_json_key``, as
  the non-expiring Basic credential ``_json_key_base64`` / base64 of the file;
- :class:`Impersonated` - a token for another service account, minted by IAM Credentials
  ``generateAccessToken`` with the source's identity (which needs
  ``roles/iam.serviceAccountTokenCreator`` on the target);
- :class:`MetadataServer` - the metadata server directly.

Which hosts a provider answers for follows the credential's *universe domain*
(``credentials.universe_domain``; for the metadata server, its ``universe/universe-domain``
entry): ``googleapis.com`` serves ``gcr.io``, ``*.gcr.io`` and ``*-docker.pkg.dev``; Trusted Cloud
by S3NS (``s3nsapis.fr``) serves ``*-docker.s3nsregistry.fr``. A token is never offered to a
registry of another universe. More patterns can be given (``hosts``), and more universes
(``registry_hosts``). In a pattern ``*`` stands for one DNS label.

google-auth refreshes synchronously; the refresh runs in a worker thread (``asyncio.to_thread``)
and its HTTP calls go through aiohttp on the event loop (:mod:`mirror.auth.googlehttp`). A token
is refreshed when its remaining life, on the injected clock, is shorter than what the caller asked
for plus a margin; concurrent callers share one refresh.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirror.auth.credentials import Credential
from mirror.auth.expiry import DEFAULT_REFRESH_MARGIN, CredentialCache, anchor_expiry, epoch_of
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import AuthError

if TYPE_CHECKING:  # google-auth's transport (and aiohttp): imported when a Google token is needed
    from mirror.auth.googlehttp import AiohttpRequest

log = logging.getLogger("mirror.auth")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_UNIVERSE = "googleapis.com"
S3NS_UNIVERSE = "s3nsapis.fr"
ACCESS_TOKEN_USER = "oauth2accesstoken"
JSON_KEY_USER = "_json_key_base64"

REGISTRY_HOSTS: Mapping[str, tuple[str, ...]] = {
    DEFAULT_UNIVERSE: ("gcr.io", "*.gcr.io", "*-docker.pkg.dev"),
    S3NS_UNIVERSE: ("*-docker.s3nsregistry.fr",),
}
"""Registry host patterns by universe domain."""

_ASSUMED_LIFETIME = 3600.0


def _pattern(glob: str) -> re.Pattern[str]:
    parts = (re.escape(p) for p in glob.lower().split("*"))
    return re.compile("^" + "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?".join(parts) + "$")


def host_matches(host: str, pattern: str) -> bool:
    """Whether ``host`` fits ``pattern``, where ``*`` stands for one DNS label."""
    return _pattern(pattern).match(host.lower()) is not None


def universe_of_host(host: str, registry_hosts: Mapping[str, Sequence[str]] = REGISTRY_HOSTS) -> str | None:
    """The universe domain whose registries include ``host``, if any."""
    for universe, patterns in registry_hosts.items():
        if any(host_matches(host, p) for p in patterns):
            return universe
    return None


# -- sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplicationDefault:
    """``google.auth.default()``. ``optional``: no ADC to be found means "nothing", not an error."""

    optional: bool = False

    def describe(self) -> str:
        return "application default credentials"


@dataclass(frozen=True)
class KeyFile:
    """A service account key file; ``as_json_key`` sends it as ``_json_key_base64`` (no expiry)."""

    path: str
    as_json_key: bool = False

    def describe(self) -> str:
        how = " as _json_key_base64" if self.as_json_key else ""
        return f"service account key {self.path}{how}"


@dataclass(frozen=True)
class MetadataServer:
    """The metadata server of a GCE VM, GKE node or Cloud Run service."""

    service_account: str = "default"

    def describe(self) -> str:
        account = "" if self.service_account == "default" else f" for {self.service_account}"
        return f"metadata server{account}"


@dataclass(frozen=True)
class Impersonated:
    """A token for ``target_principal`` minted with the identity of ``source``."""

    target_principal: str
    source: ApplicationDefault | KeyFile | MetadataServer = ApplicationDefault()
    lifetime: int = 3600
    delegates: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"impersonating {self.target_principal} with {self.source.describe()}"


GoogleSource = ApplicationDefault | KeyFile | MetadataServer | Impersonated


# -- loading (blocking; runs in a worker thread) ----------------------------------------------


def _metadata_universe(request: AiohttpRequest) -> str:
    """The metadata server's universe domain; ``googleapis.com`` when it has no such entry."""
    host = os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_ROOT")
    url = f"http://{host or 'metadata.google.internal'}/computeMetadata/v1/universe/universe-domain"
    resp = request(url=url, method="GET", headers={"Metadata-Flavor": "Google"})
    if resp.status == 404:
        return DEFAULT_UNIVERSE
    if resp.status != 200:
        from mirror.auth.googlehttp import transport_error

        raise transport_error(f"the metadata server answered HTTP {resp.status} for its universe domain")
    return resp.data.decode("utf-8", "replace").strip() or DEFAULT_UNIVERSE


def _pin_universe(creds: Any, request: AiohttpRequest) -> Any:
    """Metadata-server credentials with their universe domain read through ``request``.

    google-auth would otherwise look it up lazily with its own ``requests`` transport.
    """
    from google.auth import compute_engine

    if isinstance(creds, compute_engine.Credentials):
        return creds.with_universe_domain(_metadata_universe(request))
    return creds


def _load(source: GoogleSource, request: AiohttpRequest, scopes: list[str]) -> Any:
    """google-auth credentials for a token source."""
    if isinstance(source, ApplicationDefault):
        import google.auth

        creds, _project = google.auth.default(scopes=scopes, request=request)
        return _pin_universe(creds, request)
    if isinstance(source, KeyFile):
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_file(source.path, scopes=scopes)  # type: ignore[no-untyped-call]
    if isinstance(source, MetadataServer):
        from google.auth import compute_engine

        return compute_engine.Credentials(  # type: ignore[no-untyped-call]
            service_account_email=source.service_account,
            scopes=scopes,
            universe_domain=_metadata_universe(request),
        )
    from google.auth import impersonated_credentials

    inner = _load(source.source, request, scopes)
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=inner,
        target_principal=source.target_principal,
        target_scopes=scopes,
        delegates=list(source.delegates) or None,
        lifetime=source.lifetime,
    )


def _load_json_key(path: str) -> tuple[str, str]:
    """(base64 of the key file, its universe domain), after checking it is a service account key."""
    from google.oauth2 import service_account

    raw = Path(path).read_bytes()
    info = json.loads(raw)
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    creds = service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    return base64.b64encode(raw).decode("ascii"), str(creds.universe_domain)


def _refresh(creds: Any, request: AiohttpRequest) -> tuple[str, Any]:
    creds.refresh(request)
    token = creds.token
    if isinstance(token, bytes):
        token = token.decode("ascii")
    return str(token or ""), creds.expiry


# -- the provider -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    creds: Any
    universe: str
    json_key: str | None = None


def _summary(exc: BaseException, limit: int = 300) -> str:
    parts = [a for a in exc.args if isinstance(a, str) and a] or [type(exc).__name__]
    text = " ".join(" ".join(parts).split())
    return text if len(text) <= limit else text[:limit] + "…"


class GoogleProvider:
    """Google access tokens (or a ``_json_key_base64`` key) for the registries of a universe."""

    name = "google"

    def __init__(
        self,
        source: GoogleSource | None = None,
        *,
        clock: Clock = system_clock,
        scopes: Sequence[str] = (CLOUD_PLATFORM,),
        hosts: Sequence[str] = (),
        registry_hosts: Mapping[str, Sequence[str]] = REGISTRY_HOSTS,
        http_timeout: float = 30.0,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        min_refresh_interval: float = 30.0,
    ) -> None:
        self.source: GoogleSource = source if source is not None else ApplicationDefault()
        self.clock = clock
        self.scopes = list(scopes)
        self.hosts = tuple(h.lower() for h in hosts)
        self.registry_hosts = {u: tuple(p) for u, p in registry_hosts.items()}
        self.http_timeout = http_timeout
        self.label = f"google ({self.source.describe()})"
        self._cache: CredentialCache[str] = CredentialCache(
            clock, refresh_margin=refresh_margin, min_refresh_interval=min_refresh_interval
        )
        self._loading: asyncio.Future[_Loaded | None] | None = None

    def __repr__(self) -> str:
        return f"<GoogleProvider {self.source.describe()}>"

    def might_serve(self, host: str) -> bool:
        """Whether ``host`` is a Google registry of some universe (checked before any IO)."""
        return any(host_matches(host, p) for p in self.hosts) or (
            universe_of_host(host, self.registry_hosts) is not None
        )

    def serves(self, host: str, universe: str) -> bool:
        """Whether a credential of ``universe`` may be offered to ``host``."""
        if any(host_matches(host, p) for p in self.hosts):
            return True
        return any(host_matches(host, p) for p in self.registry_hosts.get(universe, ()))

    async def universe_domain(self) -> str | None:
        """The universe domain of the configured credentials; ``None`` when there are none."""
        loaded = await self._loaded()
        return loaded.universe if loaded is not None else None

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        if not self.might_serve(host):
            return None
        loaded = await self._loaded()
        if loaded is None:
            return None
        if not self.serves(host, loaded.universe):
            log.debug("%s: %s is not a registry of universe %s", self.label, host, loaded.universe)
            return None
        if loaded.json_key is not None:
            return Credential(username=JSON_KEY_USER, password=loaded.json_key, provider=self.label)

        async def fetch() -> Credential | None:
            return await self._token(loaded)

        return await self._cache.get("token", min_valid, fetch)

    # -- internals ------------------------------------------------------------------------

    async def _loaded(self) -> _Loaded | None:
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        future = self._loading
        try:
            return await asyncio.shield(future)
        except BaseException:
            if self._loading is future and future.done():
                self._loading = None  # a failed load is tried again by the next caller
            raise

    async def _load(self) -> _Loaded | None:
        from google.auth import exceptions as gexc

        from mirror.auth.googlehttp import AiohttpRequest

        source = self.source
        if isinstance(source, KeyFile) and source.as_json_key:
            try:
                encoded, universe = await asyncio.to_thread(_load_json_key, source.path)
            except OSError as exc:
                raise AuthError(f"{self.label}: cannot read the key file: {exc.strerror}") from None
            except (ValueError, gexc.GoogleAuthError) as exc:
                raise AuthError(f"{self.label}: not a service account key file ({_summary(exc)})") from None
            return _Loaded(None, universe, encoded)
        request = AiohttpRequest(asyncio.get_running_loop(), timeout=self.http_timeout)
        try:
            creds = await asyncio.to_thread(_load, source, request, self.scopes)
            universe = str(await asyncio.to_thread(lambda: creds.universe_domain))
        except gexc.DefaultCredentialsError as exc:
            if isinstance(source, ApplicationDefault) and source.optional:
                log.info("%s: none found (%s)", self.label, _summary(exc, 160))
                return None
            raise AuthError(f"{self.label}: {_summary(exc)}") from None
        except OSError as exc:
            raise AuthError(f"{self.label}: cannot read the key file: {exc.strerror}") from None
        except ImportError as exc:
            # google-auth's metadata server support imports ``requests`` (google-auth[requests]).
            raise AuthError(
                f"{self.label}: google-auth cannot load its metadata server support ({exc.name or exc} "
                "is missing; install google-auth[requests])"
            ) from None
        except (ValueError, gexc.GoogleAuthError) as exc:
            raise AuthError(f"{self.label}: cannot load the credentials: {_summary(exc)}") from None
        return _Loaded(creds, universe)

    async def _token(self, loaded: _Loaded) -> Credential:
        from google.auth import exceptions as gexc

        from mirror.auth.googlehttp import AiohttpRequest

        request = AiohttpRequest(asyncio.get_running_loop(), timeout=self.http_timeout)
        try:
            token, expiry = await asyncio.to_thread(_refresh, loaded.creds, request)
        except (gexc.GoogleAuthError, ValueError) as exc:
            raise self._refresh_error(exc) from None
        if not token:
            raise AuthError(f"{self.label}: the token service answered without an access token")
        if expiry is None:
            expires_at = self.clock() + _ASSUMED_LIFETIME
        else:
            expires_at = anchor_expiry(epoch_of(expiry), self.clock)
        return Credential(
            username=ACCESS_TOKEN_USER, password=token, expires_at=expires_at, provider=self.label
        )

    def _refresh_error(self, exc: BaseException) -> AuthError:
        text = _summary(exc)
        hint = ""
        if isinstance(self.source, Impersonated) and (
            "PERMISSION_DENIED" in text or "403" in text or "iam.serviceAccounts" in text
        ):
            hint = (
                f"; the source identity needs roles/iam.serviceAccountTokenCreator on "
                f"{self.source.target_principal}"
            )
        from google.auth import exceptions as gexc

        error = AuthError(f"{self.label}: could not get an access token: {text}{hint}")
        error.temporary = bool(
            getattr(exc, "retryable", False)
            or isinstance(exc, gexc.TransportError)
            or isinstance(exc.__cause__, gexc.TransportError)
        )
        return error


async def access_token_from_json_key(
    username: str,
    password: str,
    *,
    clock: Clock = system_clock,
    scopes: Sequence[str] = (CLOUD_PLATFORM,),
    http_timeout: float = 30.0,
) -> Credential:
    """An access token for the service account key that a ``_json_key`` (the key's JSON) or
    ``_json_key_base64`` credential carries: for the Google APIs that do not take the key itself
    (the Artifact Registry API)."""
    from google.auth import exceptions as gexc
    from google.oauth2 import service_account

    from mirror.auth.googlehttp import AiohttpRequest

    label = f"google (service account key given as {username})"
    try:
        raw = base64.b64decode(password, validate=True) if username == JSON_KEY_USER else password.encode()
        info = json.loads(raw)
        creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, gexc.GoogleAuthError) as exc:
        raise AuthError(f"{label}: not a service account key ({_summary(exc)})") from None
    request = AiohttpRequest(asyncio.get_running_loop(), timeout=http_timeout)
    try:
        token, expiry = await asyncio.to_thread(_refresh, creds, request)
    except (gexc.GoogleAuthError, ValueError) as exc:
        raise AuthError(f"{label}: could not get an access token: {_summary(exc)}") from None
    expires_at = clock() + _ASSUMED_LIFETIME if expiry is None else anchor_expiry(epoch_of(expiry), clock)
    return Credential(username=ACCESS_TOKEN_USER, password=token, expires_at=expires_at, provider=label)
