"""The daemon's YAML config: models, loading, and error messages that name the field.

A config is versioned (``version: 1``) and has ``registries`` (per-host connection options and
credentials), ``defaults`` (job fields merged into every job; a field the job sets replaces the
default's whole value) and ``jobs``; plus ``concurrency``, ``metrics`` and ``log``. Every field is
described in ``config/README.md``; ``config/example.yaml`` shows them in use.

Loading, in order:

1. YAML is parsed; a key repeated in one mapping is an error.
2. ``version`` must be ``1``.
3. ``${NAME}`` in any string (values and keys) is replaced by the environment variable ``NAME``;
   ``${NAME:-fallback}`` uses ``fallback`` when ``NAME`` is unset; ``$${`` stands for a literal
   ``${``. An unset variable without fallback is an error.
4. ``password_file``, ``token_file`` and ``identity_token_file`` of a registry are read (relative
   paths from the config file's directory); trailing newlines are dropped.
5. ``defaults`` is validated, then merged into each job. A ``tags`` default is not applied to a
   job whose source is a single image.
6. Everything is validated, then checked across fields (unique job names, destinations that
   would write into their own source).

Every failure is one :class:`~mirror.types.errors.ConfigError` whose ``path`` names the field
(``jobs[0].tags.include[1]``, ``registries["127.0.0.1:5002"].password``) and whose message says
what is wrong and how to fix it; several problems found at once are listed one per line.
Secret values never appear in messages.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mirror.auth.credentials import Credential
from mirror.daemon.filters import TagFilter, compile_pattern, parse_range
from mirror.daemon.mapping import (
    DestinationSpec,
    SourceKind,
    SourceSpec,
    map_repository,
    overlaps,
    parse_destination,
    parse_source,
)
from mirror.daemon.schedule import (
    MAX_INTERVAL,
    MIN_INTERVAL,
    Cron,
    Interval,
    Schedule,
    format_duration,
    parse_cron,
    parse_duration,
    parse_timezone,
)
from mirror.registry.multipart import MAX_PART_SIZE, MIN_PART_SIZE
from mirror.transport.client import HostOptions
from mirror.types import sizes
from mirror.types.errors import ConfigError, InvalidReference
from mirror.types.manifest import Platform
from mirror.types.reference import DOCKER_HUB, DOCKER_HUB_API, LayoutRef, Ref, parse_reference, validate_host

__all__ = [
    "CONFIG_VERSION",
    "Config",
    "Job",
    "JobSettings",
    "LogConfig",
    "MetricsConfig",
    "RegistryConfig",
    "ScheduleConfig",
    "TagsConfig",
    "format_path",
    "load_config",
    "parse_config",
    "parse_size",
]

CONFIG_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20
MAX_SECRET_BYTES = 64 * 1024
DEFAULT_INTERVAL_JITTER = 0.1
_MAX_VALUES = 100_000
_MAX_DEPTH = 50
_MAX_LISTED_PROBLEMS = 10
_SECRET_KEYS = frozenset({"password", "token", "identity_token"})
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})

Loc = tuple[str | int, ...]
_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Field paths


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(loc: Sequence[str | int]) -> str:
    """``("jobs", 0, "tags", "include", 1)`` -> ``jobs[0].tags.include[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


# ---------------------------------------------------------------------------------------------
# YAML


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """The safe loader (libyaml's when available), refusing a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                mark = key_node.start_mark
                raise ConfigError(
                    f"line {mark.line + 1}, column {mark.column + 1}: key {key_node.value!r} appears "
                    "twice in the same mapping; keep one"
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "cannot be parsed"
        raise ConfigError(f"invalid YAML{where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"invalid YAML: nested more than {_MAX_DEPTH} levels deep") from None
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError, IndexError) as exc:
        # PyYAML builds dates, numbers and explicitly tagged values with Python code that raises
        # these on malformed text (``!!timestamp 2020-99-99`` fails with an AttributeError).
        raise ConfigError(f"invalid YAML value ({exc}); quote it to keep it as text") from None


# ---------------------------------------------------------------------------------------------
# Environment variables and plain-data checks


_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


def expand_env(text: str, env: Mapping[str, str], loc: Loc = ()) -> str:
    """Replace ``${NAME}`` / ``${NAME:-fallback}``; ``$${`` is a literal ``${``."""
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        whole, name, fallback = match.group(0), match.group(1), match.group(2)
        if whole == "$${":
            return "${"
        if name is None:
            raise ConfigError(
                "'${' must start a variable reference such as ${NAME} or ${NAME:-fallback}; "
                "write $${ for a literal '${'",
                format_path(loc),
            )
        value = env.get(name)
        if value is None:
            if fallback is not None:
                return fallback
            raise ConfigError(
                f"environment variable {name} is not set; export it, write ${{{name}:-fallback}}, "
                "or write $${ for a literal '${'",
                format_path(loc),
            )
        return value

    return _REFERENCE.sub(replace, text)


def _describe_key(key: object) -> str:
    if isinstance(key, bool) or key is None:
        return f"key {key!r} is not text (YAML reads unquoted yes/no/on/off/true/false/null specially)"
    return f"key {key!r} is not text"


def _plain(node: Any, env: Mapping[str, str], loc: Loc, budget: list[int]) -> Any:
    """A copy of the YAML data with ``${...}`` expanded; refuse what a config cannot contain."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"the config holds more than {_MAX_VALUES} values (are aliases repeating?)")
    if len(loc) > _MAX_DEPTH:
        raise ConfigError(f"nested more than {_MAX_DEPTH} levels deep", format_path(loc[:_MAX_DEPTH]))
    if node is None or isinstance(node, bool | int | float):
        return node
    if isinstance(node, str):
        return expand_env(node, env, loc)
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise ConfigError(f"{_describe_key(key)}; quote it", format_path(loc))
            name = expand_env(key, env, (*loc, key))
            if name in out:
                raise ConfigError(f"key {name!r} appears twice after expanding variables", format_path(loc))
            out[name] = _plain(value, env, (*loc, name), budget)
        return out
    if isinstance(node, list):
        return [_plain(value, env, (*loc, i), budget) for i, value in enumerate(node)]
    if isinstance(node, _dt.date | _dt.datetime):
        raise ConfigError("YAML read this as a date; quote it to keep it as text", format_path(loc))
    raise ConfigError(
        f"unsupported YAML value ({type(node).__name__}); use text, numbers, true/false, lists and mappings",
        format_path(loc),
    )


# ---------------------------------------------------------------------------------------------
# Value parsers used by the models


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"512MB"`` (10^6), ``"512MiB"`` (2^20), ``"5TB"``, ``"5TiB"``."""
    return sizes.parse_size(value, error=ConfigError)


def _kind(value: object) -> str:
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
        raise InvalidReference(f"expected a source (text), got {_kind(value)}")
    return parse_source(value)


def _destination(value: object) -> DestinationSpec:
    if not isinstance(value, str):
        raise InvalidReference(f"expected a destination (text), got {_kind(value)}")
    return parse_destination(value)


def _platform(value: object) -> Platform:
    if not isinstance(value, str):
        raise InvalidReference(f"expected a platform such as linux/amd64 (text), got {_kind(value)}")
    return Platform.parse(value.strip())


def _interval(value: object) -> float:
    seconds = parse_duration(value)
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ConfigError(
            f"interval {value!r} is out of range: from {format_duration(MIN_INTERVAL)} "
            f"to {format_duration(MAX_INTERVAL)}"
        )
    return seconds


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
    path = _resolve(value, info.context)
    if not path.is_file():
        raise ConfigError(f"file {value!r} not found (looked for {path}); {_RELATIVE_NOTE}")
    return str(path)


_RELATIVE_NOTE = "relative paths are read from the config file's directory"
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


def _one_or_more(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _resolve(value: str, context: object) -> Path:
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
CronField = Annotated[str, PlainValidator(_as_value_error(_cron))]
TimezoneField = Annotated[str, PlainValidator(_as_value_error(_timezone))]
SizeField = Annotated[int, PlainValidator(_as_value_error(parse_size))]
RegexField = Annotated[str, AfterValidator(_as_value_error(_regex))]
SemverField = Annotated[str, AfterValidator(_as_value_error(_semver))]
FileField = Annotated[str, AfterValidator(_as_value_error_with_info(_existing_file))]
JobName = Annotated[str, AfterValidator(_as_value_error(_job_name))]
AddressField = Annotated[str, AfterValidator(_as_value_error(_address))]


# ---------------------------------------------------------------------------------------------
# Models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    extra_keys: ClassVar[tuple[str, ...]] = ()
    """Keys accepted in the file besides the fields (consumed before validation)."""


class RegistryConfig(_Model):
    """How to reach one registry host, and the credentials to use there."""

    extra_keys: ClassVar[tuple[str, ...]] = ("password_file", "token_file", "identity_token_file")

    plain_http: bool = False
    ca_file: FileField | None = None
    client_cert: FileField | None = None
    client_key: FileField | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    identity_token: SecretStr | None = None
    max_concurrency: int = Field(default=16, ge=1, le=4096)
    requests_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_blob_size: SizeField | None = None

    @model_validator(mode="after")
    def _check_credentials(self) -> RegistryConfig:
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert (the certificate the key belongs to)")
        if self.token and (self.username or self.password or self.identity_token):
            raise ValueError(
                "token (a bearer token sent as is) cannot be combined with username, password or "
                "identity_token; keep one kind of credential"
            )
        if self.identity_token and self.password:
            raise ValueError("set password or identity_token, not both")
        if self.password and not self.username:
            raise ValueError("password without username: add username")
        if self.username and not (self.password or self.identity_token):
            raise ValueError(
                f'username {self.username!r} has no password: set password (e.g. "${{REGISTRY_PASSWORD}}") '
                "or password_file, or remove username for anonymous access"
            )
        return self

    def host_options(self) -> HostOptions:
        return HostOptions(
            plain_http=self.plain_http,
            ca_file=self.ca_file,
            client_cert=self.client_cert,
            client_key=self.client_key,
            max_concurrency=self.max_concurrency,
            requests_per_second=self.requests_per_second,
        )

    def credential(self) -> Credential | None:
        """The configured credential, or ``None`` for anonymous access."""
        if self.token:
            return Credential(registry_token=self.token.get_secret_value(), provider="config")
        if self.identity_token:
            return Credential(
                username=self.username or "",
                identity_token=self.identity_token.get_secret_value(),
                provider="config",
            )
        if self.username and self.password:
            return Credential(
                username=self.username, password=self.password.get_secret_value(), provider="config"
            )
        return None


class TagsConfig(_Model):
    """Which tags to copy; see :mod:`mirror.daemon.filters` for the order the steps apply in."""

    include: tuple[RegexField, ...] = ()
    exclude: tuple[RegexField, ...] = ()
    semver: SemverField | None = None
    latest: int | None = Field(default=None, ge=1)

    def filter(self) -> TagFilter:
        return TagFilter.build(self.include, self.exclude, self.semver, self.latest)


class ScheduleConfig(_Model):
    """``interval`` (a duration) or ``cron`` (five fields, in ``timezone``: an IANA name, UTC by
    default); ``jitter`` a fraction in [0, 1)."""

    interval: IntervalField | None = None
    cron: CronField | None = None
    timezone: TimezoneField | None = None
    jitter: float | None = Field(default=None, ge=0, lt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        if self.interval is not None and self.cron is not None:
            raise ValueError("set interval or cron, not both")
        if self.interval is None and self.cron is None:
            raise ValueError("set interval (e.g. 15m) or cron (e.g. '*/15 * * * *')")
        if self.timezone is not None and self.cron is None:
            raise ValueError("timezone applies to cron schedules only; an interval has none")
        return self

    @property
    def spec(self) -> Schedule:
        if self.cron is not None:
            return Cron(self.cron, self.jitter or 0.0, self.timezone or "UTC")
        assert self.interval is not None
        return Interval(self.interval, DEFAULT_INTERVAL_JITTER if self.jitter is None else self.jitter)


class JobSettings(_Model):
    """The job fields that ``defaults`` may set."""

    tags: TagsConfig = TagsConfig()
    platforms: tuple[PlatformField, ...] = ()
    referrers: bool = False
    schedule: ScheduleConfig = ScheduleConfig(interval=3600.0)
    overwrite: bool = False
    create_repositories: bool = False


class _JobTarget(_Model):
    name: JobName
    source: SourceField
    destinations: Annotated[tuple[DestinationField, ...], BeforeValidator(_one_or_more)] = Field(min_length=1)


class Job(JobSettings, _JobTarget):
    """One mirroring job: a name, a source, its destinations, and the :class:`JobSettings`."""

    @property
    def tag_filter(self) -> TagFilter:
        return self.tags.filter()

    def targets(self, repository: str | None = None) -> tuple[Ref, ...]:
        """The destination repositories of a source repository (the source's own by default)."""
        repo = self.source.path if repository is None else repository
        return tuple(map_repository(self.source, repo, dest) for dest in self.destinations)


class ObjectStorageConfig(_Model):
    """How to reach one S3 bucket (or prefix) and upload to it. Unset fields come from the
    environment (``MIRROR_S3_*``, ``AWS_*``) and the AWS defaults; credentials always come from
    the standard AWS chain (``profile``, environment, web identity, instance or task roles)."""

    endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    profile: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    part_size: SizeField | None = None
    concurrency: int | None = Field(default=None, ge=1, le=64)
    conditional_writes: bool | None = None

    @field_validator("part_size")
    @classmethod
    def _part_size_in_range(cls, value: int | None) -> int | None:
        if value is not None and not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
            raise ValueError(
                f"{value} bytes is out of range: S3 parts are 5MiB to 5GiB (a blob over 10,000 "
                "parts gets larger parts by itself)"
            )
        return value

    def overrides(self) -> dict[str, Any]:
        """The fields set here, as ``S3Options`` keyword arguments."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class MetricsConfig(_Model):
    address: AddressField


class LogConfig(_Model):
    format: Literal["text", "json"] = "text"
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"


class Config(_Model):
    """A validated config. Models are frozen; look registries up with :meth:`registry`."""

    version: Literal[1]
    concurrency: int = Field(default=8, ge=1, le=4096)
    metrics: MetricsConfig | None = None
    log: LogConfig = LogConfig()
    registries: dict[str, RegistryConfig] = {}
    object_storage: dict[str, ObjectStorageConfig] = {}
    defaults: JobSettings = JobSettings()
    jobs: tuple[Job, ...] = Field(min_length=1)

    def registry(self, host: str) -> RegistryConfig:
        """The settings for ``host``; an anonymous HTTPS default when it is not configured."""
        return self.registries.get(_canonical_host(host)) or RegistryConfig()

    def host_options(self) -> dict[str, HostOptions]:
        """Per-host transport options; Docker Hub's are also keyed by its API host."""
        return _by_transport_host({h: r.host_options() for h, r in self.registries.items()})

    def credentials(self) -> dict[str, Credential]:
        """Per-host credentials for a static provider; Docker Hub's also keyed by its API host."""
        creds = {h: c for h, r in self.registries.items() if (c := r.credential()) is not None}
        return _by_transport_host(creds)

    def s3_settings(self, location: str) -> dict[str, Any]:
        """S3 option overrides for ``BUCKET[/PREFIX]``: those of the longest configured
        ``s3://`` key that is the location itself or a parent of it (whole path components)."""
        best: ObjectStorageConfig | None = None
        best_len = -1
        for key, settings in self.object_storage.items():
            prefix = key.removeprefix("s3://")
            if (location == prefix or location.startswith(prefix + "/")) and len(prefix) > best_len:
                best, best_len = settings, len(prefix)
        return best.overrides() if best is not None else {}

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)


def _by_transport_host(values: dict[str, _T]) -> dict[str, _T]:
    out = dict(values)
    if DOCKER_HUB in values:
        out.setdefault(DOCKER_HUB_API, values[DOCKER_HUB])
    return out


def _canonical_host(host: str) -> str:
    return DOCKER_HUB if host.lower() in _HUB_ALIASES else host


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into ConfigError


_REQUIRED = {
    "version": "add 'version: 1' at the top",
    "jobs": "add a jobs: list; each job has a name, a source and destinations",
    "name": "every job needs a unique name, e.g. name: apps",
    "source": (
        "every job needs a source: an image (HOST/PATH:TAG or @sha256:...), a repository (HOST/PATH), "
        "a prefix (HOST/PATH/*) or a layout (oci:DIR, s3://BUCKET/PREFIX)"
    ),
    "destinations": (
        "every job needs destinations: a list of repository prefixes, e.g. [registry.example.com/mirror]"
    ),
    "address": "set the HOST:PORT to listen on, e.g. address: 127.0.0.1:9090",
}
_TYPE_NAMES = {
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (list, tuple) and get_args(tp):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict and len(get_args(tp)) == 2:
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unknown_key(root: type[BaseModel], loc: Loc) -> tuple[str, str | None]:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unknown key {key!r}", None
    known = [*model.model_fields, *getattr(model, "extra_keys", ())]
    if model is JobSettings and key in Job.model_fields:
        return f"{key!r} belongs in each job, not in defaults", None
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?", close[0]
    return f"unknown key {key!r}; valid keys here: {', '.join(sorted(known))}", None


def _got(value: object, loc: Loc) -> str:
    """The offending value for a message: shown when short and not a secret, else its kind."""
    if any(part in _SECRET_KEYS for part in loc) or not isinstance(value, str | int | float):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: Any, root: type[BaseModel], loc: Loc) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        hint = _REQUIRED.get(str(loc[-1]) if loc else "", "add it")
        return f"missing; {hint}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind in _TYPE_NAMES:
        extra = ""
        if kind == "string_type" and isinstance(value, int | float | bool):
            extra = "; quote the value"
        elif kind in ("list_type", "tuple_type"):
            extra = "; write [a, b] or one '- item' per line"
        return f"expected {_TYPE_NAMES[kind]}, got {_got(value, loc)}{extra}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[kind]} {limit}, got {_got(value, loc)}"
    if kind == "too_short":
        hint = _REQUIRED.get(str(loc[-1]) if loc else "", f"add at least {ctx.get('min_length', 1)}")
        return f"is empty; {hint}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the listed values')}, got {_got(value, loc)}"
    return str(error.get("msg", "is not valid"))


def _problems(exc: ValidationError, root: type[BaseModel], prefix: Loc = ()) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    suggested: set[Loc] = set()
    errors = exc.errors(include_url=False)
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            message, suggestion = _unknown_key(root, loc)
            if suggestion is not None:
                suggested.add((*loc[:-1], suggestion))
            out.append((format_path(prefix + loc), message))
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden" or (error["type"] == "missing" and loc in suggested):
            continue
        if error["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other in (tuple(e["loc"]) for e in errors)
        ):
            continue  # the list is short only because some of its entries are invalid
        out.append((format_path(prefix + loc), _message(error, root, loc)))
    unique: list[tuple[str, str]] = []
    for problem in out:
        if problem not in unique:
            unique.append(problem)
    return unique


def _raise(problems: list[tuple[str, str]]) -> None:
    if not problems:
        return
    (path, message), rest = problems[0], problems[1:]
    lines = [f"{p}: {m}" if p else m for p, m in rest[: _MAX_LISTED_PROBLEMS - 1]]
    if len(rest) > _MAX_LISTED_PROBLEMS - 1:
        lines.append(f"... and {len(rest) - _MAX_LISTED_PROBLEMS + 1} more")
    raise ConfigError("\n".join([message, *lines]), path)


def _validate(model: type[_M], data: Any, context: dict[str, Any], prefix: Loc = ()) -> _M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        _raise(_problems(exc, model, prefix))
        raise AssertionError("unreachable") from exc


# ---------------------------------------------------------------------------------------------
# Steps before and after validation


def _check_version(raw: Any) -> None:
    if raw is None:
        raise ConfigError("the config is empty; start it with 'version: 1'")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"the config must be a mapping with version:, registries: and jobs:, got {_kind(raw)}"
        )
    if "version" not in raw:
        raise ConfigError("missing; add 'version: 1' at the top", "version")
    version = raw["version"]
    if isinstance(version, bool) or version != CONFIG_VERSION:
        raise ConfigError(
            f"unsupported config version {version!r}: this mirror reads version {CONFIG_VERSION}; "
            f"write version: {CONFIG_VERSION} and the fields described in config/README.md",
            "version",
        )


def _read_secret(value: object, base_dir: Path, loc: Loc) -> str:
    where = format_path(loc)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected a file path (text), got {_kind(value)}", where)
    try:
        path = _resolve(value, {"base_dir": base_dir})
    except ConfigError as exc:
        raise ConfigError(exc.message, where) from None
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"file {value!r} not found (looked for {path}); {_RELATIVE_NOTE}", where) from None
    except IsADirectoryError:
        raise ConfigError(f"{value!r} is a directory; name the file holding the secret", where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {value!r}: {exc.strerror or exc}", where) from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(
            f"file {value!r} is larger than {MAX_SECRET_BYTES // 1024} KiB; is it the right file?", where
        )
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"file {value!r} is not UTF-8 text", where) from None
    if not text:
        raise ConfigError(f"file {value!r} is empty; write the secret into it", where)
    return text


def _prepare_section(
    raw: dict[str, Any],
    section: str,
    name_of: Callable[[object, str], str],
    entry_of: Callable[[Any, Loc], Any] = lambda entry, _loc: entry,
) -> None:
    """Normalise the keys of a mapping section (``name_of`` raises ConfigError for a bad one),
    refuse two keys that mean the same, and let ``entry_of`` prepare each entry."""
    mapping = raw.get(section)
    if mapping is None:
        raw.pop(section, None)
        return
    if not isinstance(mapping, dict):
        return  # validation reports the type
    out: dict[str, Any] = {}
    for key, entry in mapping.items():
        loc: Loc = (section, key)
        name = name_of(key, format_path(loc))
        if name in out:
            raise ConfigError(f"{name} is configured more than once; merge the entries", format_path(loc))
        out[name] = entry_of({} if entry is None else entry, loc)
    raw[section] = out


def _registry_host(key: object, where: str) -> str:
    try:
        return _canonical_host(validate_host(str(key).strip()))
    except InvalidReference as exc:
        raise ConfigError(
            f"{exc.message}; a registries key is HOST or HOST:PORT, e.g. registry.example.com, "
            "127.0.0.1:5000",
            where,
        ) from None


def _registry_entry(entry: Any, loc: Loc, base_dir: Path) -> Any:
    if not isinstance(entry, dict):
        return entry  # validation reports the type
    entry = dict(entry)
    for secret in ("password", "token", "identity_token"):
        file_key = f"{secret}_file"
        if file_key in entry:
            if secret in entry:
                raise ConfigError(f"set {secret} or {file_key}, not both", format_path((*loc, file_key)))
            entry[secret] = _read_secret(entry.pop(file_key), base_dir, (*loc, file_key))
    return entry


def _s3_location(key: object, where: str) -> str:
    hint = "an object_storage key is s3://BUCKET or s3://BUCKET/PREFIX, without a tag"
    text = key.strip() if isinstance(key, str) else ""
    if not text.startswith("s3://") or any(c in text[5:] for c in ":@"):
        raise ConfigError(f"{key!r} is not an S3 location; {hint}", where)
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise ConfigError(f"{exc.message}; {hint}", where) from None
    assert isinstance(ref, LayoutRef)
    return f"s3://{ref.location}"


def _is_image_source(value: object) -> bool:
    try:
        return isinstance(value, str) and parse_source(value).kind is SourceKind.IMAGE
    except InvalidReference:
        return False


def _merge_defaults(raw: dict[str, Any], context: dict[str, Any]) -> None:
    defaults = raw.get("defaults")
    if defaults is None:
        raw.pop("defaults", None)
        return
    if not isinstance(defaults, dict):
        return  # validation reports the type
    _validate(JobSettings, defaults, context, ("defaults",))
    jobs = raw.get("jobs")
    if not isinstance(jobs, list):
        return
    merged: list[Any] = []
    for job in jobs:
        if isinstance(job, dict):
            job = dict(job)
            for key, value in defaults.items():
                if key not in job and not (key == "tags" and _is_image_source(job.get("source"))):
                    job[key] = value
        merged.append(job)
    raw["jobs"] = merged


def _cross_check(config: Config) -> None:
    seen: dict[str, int] = {}
    for i, job in enumerate(config.jobs):
        if job.name in seen:
            raise ConfigError(
                f"job name {job.name!r} is already used by jobs[{seen[job.name]}]; names must be unique",
                format_path(("jobs", i, "name")),
            )
        seen[job.name] = i
        if job.source.kind is SourceKind.IMAGE and "tags" in job.model_fields_set:
            raise ConfigError(
                f"source {job.source} names one image, so there are no tags to filter; remove tags:, "
                "or drop the :TAG/@DIGEST to mirror the repository's tags that pass the filter",
                format_path(("jobs", i, "tags")),
            )
        targets: set[str] = set()
        for j, dest in enumerate(job.destinations):
            where = format_path(("jobs", i, "destinations", j))
            if str(dest) in targets:
                raise ConfigError(f"destination {dest} is listed twice; keep one", where)
            targets.add(str(dest))
            if overlaps(job.source, dest):
                raise ConfigError(
                    f"destination {dest} lies inside source {job.source}: the job would copy onto "
                    "itself or copy its own copies again; choose a prefix outside the source",
                    where,
                )
            if job.source.kind is not SourceKind.PREFIX:
                try:
                    map_repository(job.source, job.source.path, dest)
                except InvalidReference as exc:
                    raise ConfigError(f"cannot name the mirrored repository: {exc.message}", where) from None


# ---------------------------------------------------------------------------------------------
# Entry points


def parse_config(
    text: str,
    *,
    env: Mapping[str, str] = os.environ,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Validate config text; raise :class:`ConfigError` (with the field path) on any problem.

    ``env`` supplies ``${NAME}`` values; ``base_dir`` is where relative file paths are read from
    (the current directory when ``None``).
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    raw = _load_yaml(text)
    _check_version(raw)
    data = _plain(raw, env, (), [_MAX_VALUES])
    assert isinstance(data, dict)
    context: dict[str, Any] = {"base_dir": base}
    _prepare_section(data, "registries", _registry_host, lambda entry, loc: _registry_entry(entry, loc, base))
    _prepare_section(data, "object_storage", _s3_location)
    _merge_defaults(data, context)
    config = _validate(Config, data, context)
    _cross_check(config)
    return config


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate a config file; relative paths inside it are read from its directory."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(file)!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(file)!r} is not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, env=env, base_dir=file.resolve().parent)
