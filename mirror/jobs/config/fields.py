"""Value parsers behind the config's fields, as pydantic field types.

Each parser raises :class:`~mirror.types.errors.ConfigError` or
:class:`~mirror.types.errors.InvalidReference` with a message that says what is wrong and how to
fix it; the ``*Field`` types hand that message to pydantic so that it is reported with the
field's path (see :mod:`.messages`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, ValidationInfo

from mirror.copy.stall import check_stall_timeout
from mirror.jobs.filters import compile_pattern, parse_range
from mirror.jobs.mapping import DestinationSpec, SourceSpec, parse_destination, parse_source
from mirror.jobs.schedule import (
    MAX_INTERVAL,
    MIN_INTERVAL,
    format_duration,
    parse_cron,
    parse_duration,
    parse_timezone,
)
from mirror.types import sizes
from mirror.types.errors import ConfigError, InvalidReference
from mirror.types.manifest import Platform
from mirror.types.reference import validate_host


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"512MB"`` (10^6), ``"512MiB"`` (2^20), ``"5TB"``, ``"5TiB"``."""
    return sizes.parse_size(value, error=ConfigError)


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _as_value_error(fn: Any) -> Any:
    """Run a parser that raises ConfigError/InvalidReference so that pydantic records the location."""

    def validator(value: Any) -> Any:
        try:
            return fn(value)
        except (ConfigError, InvalidReference) as exc:
            raise ValueError(exc.message) from None

    return validator


def _as_value_error_with_info(fn: Any) -> Any:
    """:func:`_as_value_error` for a parser that also takes pydantic's ``ValidationInfo``."""

    def validator(value: Any, info: ValidationInfo) -> Any:
        try:
            return fn(value, info)
        except (ConfigError, InvalidReference) as exc:
            raise ValueError(exc.message) from None

    return validator


def _source(value: object) -> SourceSpec:
    if not isinstance(value, str):
        raise InvalidReference(f"expected a source (text), got {kind_of(value)}")
    return parse_source(value)


def _destination(value: object) -> DestinationSpec:
    if not isinstance(value, str):
        raise InvalidReference(f"expected a destination (text), got {kind_of(value)}")
    return parse_destination(value)


def _platform(value: object) -> Platform:
    if not isinstance(value, str):
        raise InvalidReference(f"expected a platform such as linux/amd64 (text), got {kind_of(value)}")
    return Platform.parse(value.strip())


def _interval(value: object) -> float:
    seconds = parse_duration(value)
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ConfigError(
            f"interval {value!r} is out of range: from {format_duration(MIN_INTERVAL)} "
            f"to {format_duration(MAX_INTERVAL)}"
        )
    return seconds


def stall_timeout(value: object) -> float:
    """Seconds of a ``stall_timeout`` (a duration from 1s to 1d); ConfigError otherwise."""
    try:
        return check_stall_timeout(parse_duration(value))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _cron(value: object) -> str:
    return parse_cron(value).expression


def _timezone(value: object) -> str:
    return parse_timezone(value)


def _regex(value: str) -> str:
    compile_pattern(value)
    return value


def _semver(value: str) -> str:
    parse_range(value)
    return value.strip()


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = resolve_path(value, info.context)
    if not path.is_file():
        raise ConfigError(f"file {value!r} not found (looked for {path}); {RELATIVE_NOTE}")
    return str(path)


RELATIVE_NOTE = "relative paths are read from the config file's directory"
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _job_name(value: str) -> str:
    if not _JOB_NAME.match(value):
        raise ConfigError(
            f"job name {value!r} is not valid: up to 63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _address(value: str) -> str:
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"address {value!r} is not HOST:PORT; e.g. 127.0.0.1:9090, or :9090 for every interface"
        )
    if host:
        validate_host(host)
    return value


def one_or_more(value: object) -> object:
    return [value] if isinstance(value, str) else value


def lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def resolve_path(value: str, context: object) -> Path:
    base = context.get("base_dir") if isinstance(context, dict) else None
    if "\0" in value:
        raise ConfigError(f"file path {value!r} contains a NUL character")
    try:
        path = Path(value).expanduser()
    except RuntimeError:
        raise ConfigError(f"cannot expand '~' in {value!r}: no such user or home directory") from None
    if not path.is_absolute():
        path = Path(base or ".") / path
    return path


SourceField = Annotated[SourceSpec, PlainValidator(_as_value_error(_source))]
DestinationField = Annotated[DestinationSpec, PlainValidator(_as_value_error(_destination))]
PlatformField = Annotated[Platform, PlainValidator(_as_value_error(_platform))]
IntervalField = Annotated[float, PlainValidator(_as_value_error(_interval))]
StallTimeoutField = Annotated[float, PlainValidator(_as_value_error(stall_timeout))]
CronField = Annotated[str, PlainValidator(_as_value_error(_cron))]
TimezoneField = Annotated[str, PlainValidator(_as_value_error(_timezone))]
SizeField = Annotated[int, PlainValidator(_as_value_error(parse_size))]
RegexField = Annotated[str, AfterValidator(_as_value_error(_regex))]
SemverField = Annotated[str, AfterValidator(_as_value_error(_semver))]
FileField = Annotated[str, AfterValidator(_as_value_error_with_info(_existing_file))]
JobName = Annotated[str, AfterValidator(_as_value_error(_job_name))]
AddressField = Annotated[str, AfterValidator(_as_value_error(_address))]
