"""Credentials for Amazon ECR private registries: ``GetAuthorizationToken``, valid 12 hours.

Hosts look like ``ACCOUNT.dkr.ecr.REGION.amazonaws.com`` (``.amazonaws.com.cn`` in China; the
FIPS form ``dkr.ecr-fips``; dual-stack ``ACCOUNT.dkr-ecr.REGION.on.aws``). The region comes from
the host; AWS credentials come from aiobotocore's usual chain (environment, shared config and
profile, SSO, container or instance role). The answer is base64 of ``AWS:PASSWORD`` and an
``expiresAt``; the token opens every registry of that region the principal may use, so one token
per region is kept and fetched again before it runs out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore import exceptions as botoexc

from mirror.auth.credentials import Credential
from mirror.auth.expiry import DEFAULT_REFRESH_MARGIN, CredentialCache, anchor_expiry, epoch_of
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import AuthError
from mirror.types.hosts import EcrHost, parse_ecr_host

if TYPE_CHECKING:  # aiobotocore takes a third of a second to import: only when ECR is used
    from aiobotocore.session import AioSession

ECR_USER = "AWS"
TOKEN_LIFETIME = 12 * 3600.0


class EcrProvider:
    """``AWS`` / token credentials for ECR hosts, fetched with aiobotocore."""

    name = "ecr"

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        endpoint_url: str | None = None,
        session: AioSession | None = None,
        profile: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        min_refresh_interval: float = 30.0,
    ) -> None:
        self.clock = clock
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._session = session
        self._cache: CredentialCache[tuple[str, bool, str]] = CredentialCache(
            clock, refresh_margin=refresh_margin, min_refresh_interval=min_refresh_interval
        )

    def __repr__(self) -> str:
        return "<EcrProvider>"

    def _get_session(self) -> AioSession:
        if self._session is None:
            from aiobotocore.session import get_session

            self._session = get_session()
            if self.profile:
                self._session.set_config_variable("profile", self.profile)
        return self._session

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        ecr = parse_ecr_host(host)
        if ecr is None:
            return None

        async def fetch() -> Credential | None:
            return await self._fetch(host, ecr)

        return await self._cache.get((ecr.region, ecr.fips, ecr.domain), min_valid, fetch)

    async def _fetch(self, host: str, ecr: EcrHost) -> Credential:
        from aiobotocore.config import AioConfig

        where = f"ecr GetAuthorizationToken in {ecr.region}"
        config = AioConfig(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            use_fips_endpoint=ecr.fips,
        )
        obtained = self.clock()
        try:
            async with self._get_session().create_client(
                "ecr", region_name=ecr.region, endpoint_url=self.endpoint_url, config=config
            ) as client:
                answer: Mapping[str, Any] = await client.get_authorization_token()
        except botoexc.NoCredentialsError:
            raise AuthError(
                f"{where} for {host}: no AWS credentials found (environment, AWS_PROFILE, shared "
                "config, SSO, or a container/instance role)"
            ) from None
        except botoexc.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            message = " ".join(str(error.get("Message", "")).split())[:300]
            raise AuthError(f"{where} for {host} refused: {code}: {message}") from None
        except (
            botoexc.EndpointConnectionError,
            botoexc.ConnectTimeoutError,
            botoexc.ReadTimeoutError,
            botoexc.ConnectionClosedError,
        ) as exc:
            failure = AuthError(f"{where} for {host} failed: {type(exc).__name__}")
            failure.temporary = True
            raise failure from None
        except botoexc.BotoCoreError as exc:
            raise AuthError(f"{where} for {host} failed: {' '.join(str(exc).split())[:300]}") from None
        return self._parse(answer, host, ecr.region, obtained)

    def _parse(self, answer: Mapping[str, Any], host: str, region: str, obtained: float) -> Credential:
        where = f"ecr GetAuthorizationToken in {region} for {host}"
        data = answer.get("authorizationData") or []
        if not data or not isinstance(data[0], Mapping):
            raise AuthError(f"{where}: the answer holds no authorization data")
        return credential_from(
            data[0],
            where=where,
            obtained=obtained,
            clock=self.clock,
            provider=f"ecr (GetAuthorizationToken in {region})",
        )


def credential_from(
    item: Mapping[str, Any], *, where: str, obtained: float, clock: Clock, provider: str
) -> Credential:
    """The credential of one ``authorizationData`` (ECR's and ECR Public's): base64 of
    ``user:password`` in ``authorizationToken``, valid until ``expiresAt`` (12 hours when absent)."""
    try:
        decoded = base64.b64decode(str(item.get("authorizationToken", "")), validate=True)
        user, sep, password = decoded.decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep, user, password = "", "", ""
    if not sep or not password:
        raise AuthError(f"{where}: the authorization token is not base64 of user:password")
    expires = item.get("expiresAt")
    if isinstance(expires, datetime):
        expires_at = anchor_expiry(epoch_of(expires), clock)
    else:
        expires_at = obtained + TOKEN_LIFETIME
    return Credential(username=user or ECR_USER, password=password, expires_at=expires_at, provider=provider)
