"""Credentials and the provider protocol.

A provider turns a registry host into a :class:`Credential`, or ``None`` when it has nothing
for that host. Secrets are kept out of ``repr``/``str`` so they cannot reach a log by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mirror.types.clock import Clock, system_clock


@dataclass(frozen=True)
class Credential:
    """What a registry is told at its Basic auth or token realm.

    ``username``/``password`` go as Basic auth; ``identity_token`` is an OAuth2 refresh token
    (docker's ``identitytoken``) exchanged at the realm; ``registry_token`` is a bearer token used
    as is. ``expires_at`` is epoch seconds, ``None`` when the credential does not expire.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    expires_at: float | None = None
    provider: str = "static"

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def remaining(self, now: float) -> float:
        """Seconds of life left; ``inf`` for a credential that does not expire."""
        return float("inf") if self.expires_at is None else self.expires_at - now

    @property
    def kind(self) -> str:
        """A description safe to show: which kind of secret, never the secret."""
        return self._described()[0]

    @property
    def username_kind(self) -> str:
        """The user name this credential presents, described (user names are not secrets)."""
        return self._described()[1]

    def _described(self) -> tuple[str, str]:
        user = self.username
        if self.registry_token:
            return "bearer token", "none (bearer token)"
        if self.identity_token:
            return "identity token", "none (identity token, exchanged at the token realm)"
        if user == "oauth2accesstoken":
            return "OAuth2 access token", "oauth2accesstoken (Google access token)"
        if user in ("_json_key", "_json_key_base64"):
            return f"service account key ({user})", f"{user} (service account key)"
        if user == "AWS" and self.provider.startswith("ecr"):
            return "ECR authorization token", "AWS (ECR authorization token)"
        if user:
            return f"username {user!r} with password", f"user name {user!r}"
        return "anonymous", "none"

    def __str__(self) -> str:
        return f"<credential {self.kind} from {self.provider}>"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.identity_token, self.registry_token) if s)


class CredentialProvider(Protocol):
    """Answers with credentials for a registry host, refreshing them when asked to."""

    name: str

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        """Credentials for ``host`` valid for at least ``min_valid`` more seconds when possible.

        Return ``None`` when this provider has nothing for the host.
        """
        ...


class StaticProvider:
    """Credentials given explicitly (flags, config), by registry host."""

    name = "static"

    def __init__(self, by_host: dict[str, Credential] | None = None) -> None:
        self._by_host = dict(by_host or {})

    def add(self, host: str, credential: Credential) -> None:
        self._by_host[host] = credential

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        return self._by_host.get(host)


class ChainProvider:
    """Asks each provider in turn; the first non-anonymous answer wins."""

    name = "chain"

    def __init__(self, providers: list[CredentialProvider], clock: Clock = system_clock) -> None:
        self.providers = providers
        self.clock = clock

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        for provider in self.providers:
            cred = await provider.resolve(host, min_valid=min_valid)
            if cred is not None and not cred.anonymous:
                return cred
        return None
