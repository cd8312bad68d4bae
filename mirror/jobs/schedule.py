"""When a job runs next. Pure: every time is an argument (epoch seconds), nothing sleeps.

Two kinds of schedule:

- :class:`Interval` -- the first run is due at once (plus jitter). Later runs fall on
  ``last_start + k * interval`` for the smallest ``k >= 1`` that is not in the past, so a slot that
  passes while the job is still running is skipped, never queued.
- :class:`Cron` -- five fields (minute, hour, day of month, month, day of week) or one of
  ``@hourly @daily @midnight @weekly @monthly @yearly @annually``, evaluated in UTC or in an IANA
  time zone (``Europe/Paris``: ``0 3 * * *`` is 03:00 local time, summer and winter; a fire time
  that the spring change skips fires once, right after the gap, and one that the autumn change
  repeats fires at both occurrences). A run is due at the first fire time
  that is not before ``now`` and is after the last start; fire times that pass while the job is
  still running are skipped.

Jitter spreads jobs that share a schedule. A job's offset is ``fraction * period`` scaled by a
number in ``[0, 1)`` derived from a hash of the job's name, so it is the same across restarts and
replicas; tests and callers that want randomness inject ``rand``. An interval job takes its offset
once, on its first run, and keeps its spacing after that; a cron job takes it at every fire time.
:func:`next_start` combines :func:`next_run` and :func:`jitter` that way.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from mirror.types.errors import ConfigError

if TYPE_CHECKING:  # croniter is imported by the cron paths only: most schedules are intervals
    from croniter import croniter

__all__ = [
    "CRON_MACROS",
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "Cron",
    "Interval",
    "Schedule",
    "format_duration",
    "jitter",
    "next_run",
    "next_start",
    "parse_cron",
    "parse_duration",
    "parse_timezone",
    "period",
]

MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 86400.0
CRON_MACROS = frozenset({"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"})

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
# Any fire time of a valid expression is found within this many years of a base time.
_CRON_PROBE_BASE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Interval:
    """Every ``seconds`` seconds; ``jitter`` is the fraction of the interval used for spreading."""

    seconds: float
    jitter: float = 0.0

    def __str__(self) -> str:
        return f"every {format_duration(self.seconds)}"


@dataclass(frozen=True)
class Cron:
    """A cron expression in ``timezone`` (an IANA name); ``jitter`` is the fraction of the gap
    between fire times."""

    expression: str
    jitter: float = 0.0
    timezone: str = "UTC"

    def __str__(self) -> str:
        return f"cron {self.expression!r} ({self.timezone})"


Schedule = Interval | Cron


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90"``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1.5h"``, ``"2d"``.

    Raise :class:`ConfigError` (without a path) saying what is accepted.
    """
    hint = "write a number of seconds or a duration like 90s, 15m, 1h30m, 2d"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"expected a duration, got {type(value).__name__}; {hint}")
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ConfigError(f"{value!r} is not a duration; {hint}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{value!r} is not a duration; {hint}")
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``; fractions of a second are kept as ``"1.5s"``."""
    if seconds <= 0:
        return "0s"
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    rest = seconds - int(seconds) + whole
    if rest:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def parse_cron(expression: object, jitter: float = 0.0) -> Cron:
    """A validated :class:`Cron`; raise :class:`ConfigError` saying what is wrong and the form."""
    form = (
        "five fields: minute hour day-of-month month day-of-week, e.g. '*/15 * * * *', "
        f"or one of {', '.join(sorted(CRON_MACROS))}"
    )
    if not isinstance(expression, str):
        raise ConfigError(f"expected a cron expression (a string), got {type(expression).__name__}; {form}")
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in CRON_MACROS:
            raise ConfigError(f"cron expression {expression!r} is not valid; {form}")
        text = text.lower()
    elif len(text.split(" ")) != 5:
        raise ConfigError(f"cron expression {expression!r} has {len(text.split())} fields, not 5; {form}")
    from croniter import croniter

    try:
        croniter(text, _CRON_PROBE_BASE).get_next(float)
    except (ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
        reason = str(exc) or type(exc).__name__
        if "failed to find next date" in reason:
            reason = "it never fires (no such date)"
        raise ConfigError(f"cron expression {expression!r} is not valid: {reason}; {form}") from None
    return Cron(text, jitter)


def parse_timezone(name: object) -> str:
    """A valid IANA time zone name (``UTC``, ``Europe/Paris``); raise :class:`ConfigError`."""
    hint = "use an IANA time zone name such as 'UTC', 'Europe/Paris' or 'America/New_York'"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"expected a time zone name (text); {hint}")
    text = name.strip()
    try:
        _zone(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as 'Europe'
        import difflib

        close = difflib.get_close_matches(text, sorted(available_timezones()), n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown time zone {text!r}{suggestion}; {hint}") from None
    return text


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def _cron_fires_after(schedule: Cron, base: float) -> croniter:
    # croniter yields fire times strictly after its start; one second back lets a fire time equal
    # to ``base`` through, and callers skip anything earlier than they want. An aware start in
    # the schedule's zone makes croniter evaluate the fields in local time; get_next(float) still
    # answers epoch seconds.
    from croniter import croniter

    start = datetime.fromtimestamp(math.floor(base) - 1, _zone(schedule.timezone))
    return croniter(schedule.expression, start)


def next_run(schedule: Schedule, last_start: float | None, now: float) -> float:
    """When the job is next due, without jitter: never before ``now``.

    ``last_start`` is when the previous run started (``None`` before the first run).
    """
    if isinstance(schedule, Interval):
        if last_start is None:
            return now
        step = schedule.seconds
        slot = last_start + step
        if slot >= now:
            return slot
        return last_start + math.ceil((now - last_start) / step) * step
    floor = now if last_start is None else max(now, last_start)
    fires = _cron_fires_after(schedule, floor)
    while True:
        t = float(fires.get_next(float))
        if t >= now and (last_start is None or t > last_start):
            return t


def period(schedule: Schedule, now: float) -> float:
    """The spacing of runs around ``now``: the interval, or the gap between the next two fires."""
    if isinstance(schedule, Interval):
        return schedule.seconds
    fires = _cron_fires_after(schedule, now)
    first = float(fires.get_next(float))
    return float(fires.get_next(float)) - first


def jitter(
    job_name: str, fraction: float, period: float, *, rand: Callable[[], float] | None = None
) -> float:
    """An offset from 0 up to ``fraction * period``: stable per job name unless ``rand`` is given.

    ``rand`` returns a number in ``[0, 1)``, like ``random.random``.
    """
    if fraction <= 0 or period <= 0:
        return 0.0
    if rand is not None:
        unit = min(max(rand(), 0.0), math.nextafter(1.0, 0.0))
    else:
        digest = hashlib.sha256(f"mirror-jitter\0{job_name}".encode()).digest()
        unit = int.from_bytes(digest[:8], "big") / 2.0**64
    return unit * fraction * period


def next_start(
    schedule: Schedule,
    job_name: str,
    last_start: float | None,
    now: float,
    *,
    rand: Callable[[], float] | None = None,
) -> float:
    """When to start the job next, jitter included; never before ``now``.

    Interval: the first run waits for its offset, later runs keep the spacing of the first.
    Cron: each fire time is shifted by the offset.
    """
    if isinstance(schedule, Interval):
        if last_start is None:
            return now + jitter(job_name, schedule.jitter, schedule.seconds, rand=rand)
        return next_run(schedule, last_start, now)
    if schedule.jitter <= 0:
        return next_run(schedule, last_start, now)
    offset = jitter(job_name, schedule.jitter, period(schedule, now), rand=rand)
    # Fire times are looked up in time shifted back by the offset, so a start that was itself
    # delayed by the offset counts as the run of the fire time before it.
    shifted_last = None if last_start is None else last_start - offset
    return next_run(schedule, shifted_last, now - offset) + offset
