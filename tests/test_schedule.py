"""Schedules: durations, cron validation, next_run, jitter; all with explicit times."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.jobs.schedule import (
    Cron,
    Interval,
    format_duration,
    jitter,
    next_run,
    next_start,
    parse_cron,
    parse_duration,
    parse_timezone,
    period,
)
from mirror.types.errors import ConfigError


def ts(text: str) -> float:
    """``"2024-01-01 00:15:30"`` (UTC) as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("1d2h3m4s", 93784.0),
        (" 15M ", 900.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "5 minutes", "15x", "m", "1h 30m", "-5s", "-5", "h1", True, None, [1], float("nan"), float("inf")],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (1.5, "1.5s"), (93784, "1d2h3m4s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("*/15 * * * *", "*/15 * * * *"),
        ("  0   2 * * 1-5 ", "0 2 * * 1-5"),
        ("@daily", "@daily"),
        ("@HOURLY", "@hourly"),
        ("0 0 29 2 *", "0 0 29 2 *"),
    ],
)
def test_parse_cron(expression: str, normalised: str) -> None:
    assert parse_cron(expression) == Cron(normalised)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "out of range"),
        ("* * * *", "4 fields, not 5"),
        ("*/15 * * * * *", "6 fields, not 5"),
        ("0 0 30 2 *", "never fires"),
        ("@sometimes", "not valid"),
        ("", "0 fields"),
        ("a b c d e", "not valid"),
    ],
)
def test_parse_cron_rejects(expression: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        parse_cron(expression)
    assert "minute hour day-of-month month day-of-week" in str(info.value)


def test_parse_cron_rejects_non_text() -> None:
    with pytest.raises(ConfigError, match="expected a cron expression"):
        parse_cron(15)


EVERY_15M = Interval(900.0)


@pytest.mark.parametrize(
    ("last_start", "now", "expected"),
    [
        (None, 1000.0, 1000.0),  # first run: at once
        (1000.0, 1000.0, 1900.0),  # just started: one interval later
        (1000.0, 1500.0, 1900.0),
        (1000.0, 1900.0, 1900.0),  # exactly due
        (1000.0, 1901.0, 2800.0),  # a run overran one slot: that slot is skipped
        (1000.0, 5000.0, 5500.0),  # several slots passed
        (5000.0, 1000.0, 5900.0),  # clock went back: never before last_start + interval
    ],
)
def test_next_run_interval(last_start: float | None, now: float, expected: float) -> None:
    assert next_run(EVERY_15M, last_start, now) == expected


CRON_15 = Cron("*/15 * * * *")


@pytest.mark.parametrize(
    ("last_start", "now", "expected"),
    [
        (None, "2024-01-01 00:00:00", "2024-01-01 00:00:00"),  # a fire time equal to now is due
        (None, "2024-01-01 00:00:01", "2024-01-01 00:15:00"),
        (None, "2024-01-01 00:14:59.5", "2024-01-01 00:15:00"),
        ("2024-01-01 00:00:00", "2024-01-01 00:00:00", "2024-01-01 00:15:00"),  # not twice per fire
        ("2024-01-01 00:00:00", "2024-01-01 00:20:00", "2024-01-01 00:30:00"),  # 00:15 passed while running
        ("2024-01-01 00:00:00", "2024-01-01 00:30:00", "2024-01-01 00:30:00"),
        ("2024-01-01 00:45:00", "2024-01-01 00:10:00", "2024-01-01 01:00:00"),  # clock went back
    ],
)
def test_next_run_cron(last_start: str | None, now: str, expected: str) -> None:
    last = None if last_start is None else ts(last_start)
    assert next_run(CRON_15, last, ts(now)) == ts(expected)


def test_next_run_cron_is_utc() -> None:
    daily = parse_cron("0 2 * * *")
    assert next_run(daily, None, ts("2024-06-01 03:00:00")) == ts("2024-06-02 02:00:00")


def test_cron_in_a_time_zone_keeps_local_time_across_daylight_saving() -> None:
    paris = Cron("0 3 * * *", 0.0, "Europe/Paris")
    assert next_run(paris, None, ts("2024-01-10 00:00:00")) == ts("2024-01-10 02:00:00")  # CET, UTC+1
    assert next_run(paris, None, ts("2024-07-10 00:00:00")) == ts("2024-07-10 01:00:00")  # CEST, UTC+2
    assert str(paris) == "cron '0 3 * * *' (Europe/Paris)"


def test_cron_fire_time_skipped_by_the_spring_change_fires_once_after_the_gap() -> None:
    # 2024-03-31 in Paris: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night.
    nightly = Cron("30 2 * * *", 0.0, "Europe/Paris")
    fires, last, now = [], None, ts("2024-03-30 12:00:00")
    for _ in range(3):
        last = now = next_run(nightly, last, now)
        fires.append(now)
    assert fires == [ts("2024-03-31 01:00:00"), ts("2024-04-01 00:30:00"), ts("2024-04-02 00:30:00")]


def test_cron_frequent_schedule_keeps_its_spacing_through_the_autumn_change() -> None:
    # 2024-10-27 in Paris: 03:00 CEST goes back to 02:00 CET; a half-hourly job keeps firing
    # every 30 real minutes through the repeated hour.
    half_hourly = Cron("*/30 * * * *", 0.0, "Europe/Paris")
    fires, last, now = [], None, ts("2024-10-27 00:10:00")
    for _ in range(4):
        last = now = next_run(half_hourly, last, now)
        fires.append(now)
    assert [b - a for a, b in itertools.pairwise(fires)] == [1800.0] * 3


def test_parse_timezone() -> None:
    assert parse_timezone(" Europe/Paris ") == "Europe/Paris"
    assert parse_timezone("UTC") == "UTC"
    with pytest.raises(
        ConfigError, match=r"unknown time zone 'Europe/Pariss' \(did you mean 'Europe/Paris'\?\)"
    ):
        parse_timezone("Europe/Pariss")
    for bad in ("", 3, "../../etc/passwd", "Europe", "America/Argentina"):  # folders are not zones
        with pytest.raises(ConfigError, match="IANA time zone name"):
            parse_timezone(bad)


def test_period() -> None:
    assert period(EVERY_15M, 0.0) == 900.0
    assert period(CRON_15, ts("2024-01-01 00:07:00")) == 900.0
    assert period(parse_cron("@daily"), ts("2024-01-01 12:00:00")) == 86400.0


def test_jitter_is_stable_per_name_and_bounded() -> None:
    a = jitter("apps", 0.1, 900.0)
    assert a == jitter("apps", 0.1, 900.0)
    assert 0.0 <= a < 90.0
    values = {jitter(f"job-{i}", 0.1, 900.0) for i in range(50)}
    assert len(values) == 50  # names spread out


@pytest.mark.parametrize(
    ("fraction", "span", "rand", "expected"),
    [(0.0, 900.0, 0.5, 0.0), (0.1, 0.0, 0.5, 0.0), (0.1, 900.0, 0.5, 45.0), (0.5, 100.0, 0.0, 0.0)],
)
def test_jitter_with_injected_random(fraction: float, span: float, rand: float, expected: float) -> None:
    assert jitter("x", fraction, span, rand=lambda: rand) == expected


def test_jitter_clamps_a_random_source_outside_unit_interval() -> None:
    assert jitter("x", 0.1, 100.0, rand=lambda: 5.0) <= 10.0
    assert jitter("x", 0.1, 100.0, rand=lambda: -1.0) == 0.0


def test_next_start_interval_delays_only_the_first_run() -> None:
    schedule = Interval(900.0, jitter=0.1)
    first = next_start(schedule, "apps", None, 1000.0, rand=lambda: 0.5)
    assert first == 1045.0
    assert next_start(schedule, "apps", first, first + 10, rand=lambda: 0.5) == first + 900.0


def test_next_start_cron_shifts_every_fire_time() -> None:
    schedule = Cron("*/15 * * * *", jitter=0.2)  # offset up to 180 s; here 90 s
    # The job's effective fire times are 00:01:30, 00:16:30, 00:31:30, ...
    first = next_start(schedule, "apps", None, ts("2024-01-01 00:01:00"), rand=lambda: 0.5)
    assert first == ts("2024-01-01 00:01:30")
    # The run started at 00:01:30 belongs to the 00:00 fire: the next is 00:15 shifted.
    second = next_start(schedule, "apps", first, first + 60, rand=lambda: 0.5)
    assert second == ts("2024-01-01 00:16:30")
    # A run still going at 00:20 skips the 00:16:30 start.
    assert next_start(schedule, "apps", second, ts("2024-01-01 00:20:00"), rand=lambda: 0.5) == ts(
        "2024-01-01 00:31:30"
    )


def test_next_start_cron_without_jitter_is_next_run() -> None:
    now = ts("2024-01-01 00:01:00")
    assert next_start(CRON_15, "apps", None, now) == next_run(CRON_15, None, now)


@given(
    seconds=st.floats(min_value=1, max_value=86400 * 366),
    last=st.none() | st.floats(min_value=0, max_value=2e9),
    now=st.floats(min_value=0, max_value=2e9),
)
def test_interval_next_run_properties(seconds: float, last: float | None, now: float) -> None:
    due = next_run(Interval(seconds), last, now)
    assert due >= now
    if last is not None:
        assert due >= last + seconds * (1 - 1e-9)
        assert due - max(now, last) <= seconds * (1 + 1e-9) + 1e-3


@given(
    minute=st.integers(min_value=0, max_value=59),
    last=st.none() | st.integers(min_value=1_600_000_000, max_value=1_900_000_000),
    now=st.integers(min_value=1_600_000_000, max_value=1_900_000_000),
)
def test_cron_next_run_properties(minute: int, last: int | None, now: int) -> None:
    hourly = Cron(f"{minute} * * * *")
    due = next_run(hourly, last, now)
    assert due >= now
    assert last is None or due > last
    assert datetime.fromtimestamp(due, UTC).minute == minute
    assert due - max(now, last or now) <= 3600


@given(name=st.text(max_size=40), fraction=st.floats(min_value=0, max_value=0.99), span=st.floats(0, 1e7))
def test_jitter_bounds(name: str, fraction: float, span: float) -> None:
    value = jitter(name, fraction, span)
    assert 0.0 <= value <= fraction * span
