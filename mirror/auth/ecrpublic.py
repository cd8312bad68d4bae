"""Credentials for Amazon ECR Public (``public.ecr.aws``): ``ecr-public:GetAuthorizationToken``.

Anyone may pull from ECR Public anonymously; an authenticated principal gets higher limits and
may push. The token comes from ``GetAuthorizationToken`` of the ``ecr-public`` service, which
exists in ``us-east-1`` only; its answer is one ``authorizationData`` (not a list, as for private
ECR) holding base64 of ``AWS:PASSWORD`` and an ``expiresAt``. AWS credentials come from
aiobotocore's usual chain; without any, this provider has nothing to offer and pulls stay
anonymous (it raises only when credentials exist and are refused). botocore also reads
``AWS_ENDPOINT_URL_ECR_PUBLIC``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore import exceptions as botoexc

from mirror.auth.credentials import Credential
from mirror.auth.ecr import credential_from
from mirror.auth.expiry import DEFAULT_REFRESH_MARGIN, CredentialCache
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import AuthError

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

REGION = "us-east-1"  # ecr-public's only API region
HOSTS = ("public.ecr.aws",)


class EcrPublicProvider:
    """``AWS`` / token credentials for ECR Public, when AWS credentials are at hand."""

    name = "ecr-public"

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        hosts: tuple[str, ...] = HOSTS,
        endpoint_url: str | None = None,
        session: AioSession | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self.clock = clock
        self.hosts = tuple(h.lower() for h in hosts)
        self.endpoint_url = endpoint_url
        self._session = session
        self._cache: CredentialCache[str] = CredentialCache(clock, refresh_margin=refresh_margin)

    def __repr__(self) -> str:
        return "<EcrPublicProvider>"

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        if host.lower() not in self.hosts:
            return None

        async def fetch() -> Credential | None:
            return await self._fetch(host)

        return await self._cache.get(REGION, min_valid, fetch)

    async def _fetch(self, host: str) -> Credential | None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        session = self._session or get_session()
        where = f"ecr-public GetAuthorizationToken for {host}"
        obtained = self.clock()
        config = AioConfig(
            connect_timeout=10, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
        )
        try:
            async with session.create_client(
                "ecr-public", region_name=REGION, endpoint_url=self.endpoint_url, config=config
            ) as client:
                answer: Mapping[str, Any] = await client.get_authorization_token()
        except botoexc.NoCredentialsError:
            return None  # no AWS credentials: pull anonymously
        except botoexc.ClientError as exc:
            error = exc.response.get("Error", {})
            message = " ".join(str(error.get("Message", "")).split())[:300]
            raise AuthError(f"{where} refused: {error.get('Code', 'error')}: {message}") from None
        except botoexc.BotoCoreError as exc:
            failure = AuthError(f"{where} failed: {' '.join(str(exc).split())[:300]}")
            failure.temporary = isinstance(exc, botoexc.EndpointConnectionError | botoexc.ConnectTimeoutError)
            raise failure from None
        return self._parse(answer, where, obtained)

    def _parse(self, answer: Mapping[str, Any], where: str, obtained: float) -> Credential:
        data = answer.get("authorizationData")
        if not isinstance(data, Mapping):
            raise AuthError(f"{where}: the answer holds no authorization data")
        return credential_from(
            data, where=where, obtained=obtained, clock=self.clock, provider=f"{self.name} ({REGION})"
        )
