"""The config's models: what a validated config holds.

Models are frozen pydantic models that refuse unknown keys; their field types parse and check
values (:mod:`.fields`). Every field is described in ``config/README.md``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from mirror.auth.credentials import Credential
from mirror.copy.stall import DEFAULT_STALL_TIMEOUT
from mirror.jobs.config.fields import (
    AddressField,
    CronField,
    DestinationField,
    FileField,
    IntervalField,
    JobName,
    PlatformField,
    RegexField,
    SemverField,
    SizeField,
    SourceField,
    StallTimeoutField,
    TimezoneField,
    lower,
    one_or_more,
)
from mirror.jobs.filters import TagFilter
from mirror.jobs.mapping import map_repository
from mirror.jobs.schedule import Cron, Interval, Schedule
from mirror.registry.multipart import MAX_PART_SIZE, MIN_PART_SIZE
from mirror.registry.profiles import RegistryProfile, profile_for
from mirror.transport.client import HostOptions
from mirror.types.errors import ConfigError
from mirror.types.reference import DOCKER_HUB, DOCKER_HUB_API, Ref

DEFAULT_INTERVAL_JITTER = 0.1
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})
_T = TypeVar("_T")


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
    kind: Literal["artifact-registry", "docker-hub", "ecr", "ecr-public", "distribution"] | None = None
    location: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$")
    api_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")

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

    def profile(self, host: str) -> RegistryProfile:
        """The registry profile of ``host``: this entry's ``kind`` (else the host name's kind)."""
        return profile_for(host, self.kind, location=self.location, api_endpoint=self.api_endpoint)

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
    """Which tags to copy; see :mod:`mirror.jobs.filters` for the order the steps apply in."""

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
    oci_media_types: bool = False  # oci:/s3:// destinations get OCI media types (new digests)
    prune: bool = False
    prune_max: int | None = Field(default=None, ge=0)


class _JobTarget(_Model):
    name: JobName
    source: SourceField
    destinations: Annotated[tuple[DestinationField, ...], BeforeValidator(one_or_more)] = Field(min_length=1)


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


class EventsConfig(_Model):
    """Event triggers on the metrics listener: ``token`` (every request must carry it as
    ``Authorization: Bearer``), and with ``--shard``, ``peer_url``: where replica ``{index}`` is
    reached to hand it the events of the repositories it owns."""

    extra_keys: ClassVar[tuple[str, ...]] = ("token_file",)

    token: SecretStr
    peer_url: str | None = None

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("the events token must be at least 16 characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("peer_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and (not re.match(r"^https?://[^\s/]+", value) or "{index}" not in value):
            raise ValueError(
                f"{value!r} is not a replica URL template: write http(s)://HOST:PORT with {{index}} where "
                "the replica's ordinal goes, e.g. http://mirror-{index}.mirror-peers:9090"
            )
        return value

    def peer(self, index: int) -> str | None:
        """The base URL of replica ``index`` (``peer_url`` with ``{index}`` filled in)."""
        return None if self.peer_url is None else self.peer_url.replace("{index}", str(index)).rstrip("/")


class LogConfig(_Model):
    format: Literal["text", "json"] = "text"
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(lower)] = "info"


class Config(_Model):
    """A validated config. Models are frozen; look registries up with :meth:`registry`."""

    version: Literal[1]
    concurrency: int = Field(default=8, ge=1, le=4096)
    stall_timeout: StallTimeoutField = DEFAULT_STALL_TIMEOUT
    metrics: MetricsConfig | None = None
    events: EventsConfig | None = None
    log: LogConfig = LogConfig()
    registries: dict[str, RegistryConfig] = {}
    object_storage: dict[str, ObjectStorageConfig] = {}
    defaults: JobSettings = JobSettings()
    jobs: tuple[Job, ...] = Field(min_length=1)

    def registry(self, host: str) -> RegistryConfig:
        """The settings for ``host``; an anonymous HTTPS default when it is not configured."""
        return self.registries.get(canonical_host(host)) or RegistryConfig()

    def profile(self, host: str) -> RegistryProfile:
        """The registry profile of ``host``, with what the config says of it."""
        return self.registry(host).profile(canonical_host(host))

    def host_options(self) -> dict[str, HostOptions]:
        """Per-host transport options of every configured host and every registry a job names,
        completed by each registry's profile (e.g. Artifact Registry's request rate under its
        quotas); Docker Hub's are also keyed by its API host."""
        hosts = set(self.registries)
        for job in self.jobs:
            if not job.source.scheme:
                hosts.add(canonical_host(job.source.host))
            hosts.update(canonical_host(d.host) for d in job.destinations if not d.scheme)
        return _by_transport_host(
            {h: self.profile(h).host_options(self.registry(h).host_options()) for h in sorted(hosts)}
        )

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

    def select_jobs(self, names: list[str]) -> list[Job]:
        """The jobs named (every job when ``names`` is empty); an unknown name is an error."""
        if not names:
            return list(self.jobs)
        known = {j.name for j in self.jobs}
        missing = [n for n in names if n not in known]
        if missing:
            raise ConfigError(f"no job named {', '.join(missing)}; jobs are: {', '.join(sorted(known))}")
        return [j for j in self.jobs if j.name in names]

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


def canonical_host(host: str) -> str:
    return DOCKER_HUB if host.lower() in _HUB_ALIASES else host
