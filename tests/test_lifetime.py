"""Proactive refresh arithmetic and long-transfer planning, 1 MiB to 5 TB, with no clock needed."""

from __future__ import annotations

import pytest

from mirror.transport.lifetime import check_lifetime, expected_seconds, refresh_margin
from mirror.types.errors import TokenLifetimeError

MiB = 1024 * 1024
RATE = 200 * 1000 * 1000  # 200 MB/s
HOUR = 3600.0


@pytest.mark.parametrize(
    ("size", "fits_in_an_hour"),
    [
        (MiB, True),
        (1024 * MiB, True),
        (100 * 1024 * MiB, True),
        (700 * 10**9, True),
        (800 * 10**9, False),
        (5 * 10**12, False),
    ],
)
def test_planning_against_a_60_minute_token(size: int, fits_in_an_hour: bool) -> None:
    expected = expected_seconds(size, RATE)
    if fits_in_an_hour:
        check_lifetime(host="h", size=size, rate=RATE, expected=expected, remaining=HOUR, what="token")
        return
    with pytest.raises(TokenLifetimeError) as info:
        check_lifetime(
            host="europe-west1-docker.pkg.dev",
            size=size,
            rate=RATE,
            expected=expected,
            remaining=HOUR,
            what="OAuth2 access token from google",
        )
    text = str(info.value)
    assert "europe-west1-docker.pkg.dev" in text
    assert "GiB" in text or "TiB" in text  # the size
    assert " min at " in text or " h at " in text  # the expected duration
    assert "60 min" in text  # the token lifetime
    assert "_json_key_base64" in text and "nothing was sent" in text


def test_five_terabytes_need_a_non_expiring_credential() -> None:
    expected = expected_seconds(5 * 10**12, RATE)
    assert 6.9 * HOUR < expected < 7 * HOUR
    check_lifetime(
        host="h",
        size=5 * 10**12,
        rate=RATE,
        expected=expected,
        remaining=float("inf"),
        what="service account key",
    )


def test_margins_and_zero_sizes() -> None:
    assert expected_seconds(0, RATE) == 0.0
    assert refresh_margin(5) == 0.5
    assert refresh_margin(300) == 30.0
    assert refresh_margin(3600) == 30.0
    assert refresh_margin(60) == 6.0
