"""``mirror auth check HOST``: which provider answers for a host, with what kind of credential,
until when. Never the secret: a description holds no password or token, only their kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mirror.auth.credentials import Credential, CredentialProvider
from mirror.types.clock import Clock, system_clock
from mirror.types.errors import MirrorError


@dataclass(frozen=True)
class Consulted:
    """One provider asked on the way: ``outcome`` is answered, nothing, anonymous or error."""

    provider: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class AuthDescription:
    host: str
    answered_by: str | None
    """The answering credential's provider label (e.g. ``google (metadata server)``)."""
    kind: str
    """What the secret is (``OAuth2 access token``, ``identity token``, ...) or ``anonymous``."""
    username_kind: str
    expires_at: float | None
    remaining: float | None
    """Seconds of life left when described; ``None`` for a credential that does not expire."""
    consulted: tuple[Consulted, ...] = ()
    error: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.answered_by is None

    @property
    def non_expiring(self) -> bool:
        return self.answered_by is not None and self.expires_at is None


def _label(provider: CredentialProvider) -> str:
    return str(getattr(provider, "label", None) or getattr(provider, "name", type(provider).__name__))


async def describe(
    host: str, provider: CredentialProvider, *, clock: Clock = system_clock, min_valid: float = 0.0
) -> AuthDescription:
    """Ask ``provider`` for ``host`` the way the transport would, and describe the answer.

    A chain (anything with a ``providers`` list) is walked in order, recording each provider's
    outcome until the first non-anonymous answer or the first error, as the chain itself would.
    Errors are reported in ``error`` rather than raised.
    """
    members: list[CredentialProvider] = list(getattr(provider, "providers", None) or [provider])
    consulted: list[Consulted] = []
    answer: Credential | None = None
    error: str | None = None
    for member in members:
        try:
            cred = await member.resolve(host, min_valid=min_valid)
        except MirrorError as exc:
            error = exc.message
            consulted.append(Consulted(_label(member), "error", exc.message))
            break
        if cred is None:
            consulted.append(Consulted(_label(member), "nothing"))
        elif cred.anonymous:
            consulted.append(Consulted(_label(member), "anonymous"))
        else:
            consulted.append(Consulted(_label(member), "answered", cred.kind))
            answer = cred
            break
    if answer is None:
        return AuthDescription(host, None, "anonymous", "none", None, None, tuple(consulted), error)
    remaining = None if answer.expires_at is None else answer.remaining(clock())
    return AuthDescription(
        host=host,
        answered_by=answer.provider,
        kind=answer.kind,
        username_kind=answer.username_kind,
        expires_at=answer.expires_at,
        remaining=remaining,
        consulted=tuple(consulted),
        error=None,
    )


def human_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def format_description(d: AuthDescription) -> str:
    """Lines for a terminal: provider, credential kind, user name kind, expiry, providers asked."""
    lines = [f"host:        {d.host}"]
    if d.error is not None:
        lines.append(f"error:       {d.error}")
    if d.answered_by is None:
        lines.append("credential:  none (anonymous access)")
    else:
        lines.append(f"provider:    {d.answered_by}")
        lines.append(f"credential:  {d.kind}")
        lines.append(f"user name:   {d.username_kind}")
        if d.expires_at is None:
            lines.append("expires:     never (non-expiring)")
        else:
            when = datetime.fromtimestamp(d.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            remaining = d.remaining if d.remaining is not None else 0.0
            relation = (
                f"expired {human_duration(-remaining)} ago"
                if remaining <= 0
                else f"in {human_duration(remaining)}"
            )
            lines.append(f"expires:     {when} ({relation})")
    if d.consulted:
        asked = "; ".join(
            f"{c.provider}: {c.outcome}" + (f" ({c.detail})" if c.detail and c.outcome != "error" else "")
            for c in d.consulted
        )
        lines.append(f"asked:       {asked}")
    return "\n".join(lines)
