"""Will a credential or token outlive a request? The arithmetic of proactive refresh. Pure."""

from __future__ import annotations

from mirror.types.errors import TokenLifetimeError
from mirror.types.sizes import human_bytes


def human_seconds(s: float) -> str:
    if s == float("inf"):
        return "unbounded"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def refresh_margin(lifetime: float) -> float:
    """Spare life a token must keep beyond a request's expected end: 10% of its lifetime,
    at least half a second and at most 30 seconds."""
    return min(30.0, max(0.5, lifetime * 0.1))


def expected_seconds(size: int, bytes_per_second: float) -> float:
    """How long moving ``size`` bytes takes at the measured rate (0 for no body)."""
    if size <= 0:
        return 0.0
    return size / max(bytes_per_second, 1.0)


def check_lifetime(
    *,
    host: str,
    size: int,
    rate: float,
    expected: float,
    remaining: float,
    what: str,
) -> None:
    """Raise TokenLifetimeError, before anything is sent, when ``remaining`` < ``expected``.

    ``what`` names the credential ("OAuth2 access token from google"); never a secret.
    """
    if remaining >= expected:
        return
    raise TokenLifetimeError(
        f"{host}: a transfer of {human_bytes(size)} is expected to take {human_seconds(expected)} "
        f"at {human_bytes(rate)}/s, but the {what} stays valid for only "
        f"{human_seconds(max(0.0, remaining))} even when refreshed; nothing was sent. Fix: "
        "configure a credential that does not expire during the transfer for this registry "
        "(a service account key as _json_key_base64 for Artifact Registry), or move the "
        "artifact over a faster route"
    )
