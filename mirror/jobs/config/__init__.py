"""The YAML config of ``mirror sync``, split by concern.

- ``load``: reading the file, ``${NAME}`` expansion, secret files, merging ``defaults`` into each
  job, cross-field checks; the entry points :func:`load_config` and :func:`parse_config`;
- ``models``: the validated, frozen models (:class:`Config`, :class:`Job`, ...);
- ``fields``: the value parsers behind the models' fields (sources, destinations, sizes,
  schedules, patterns, files);
- ``messages``: pydantic's errors turned into one :class:`~mirror.types.errors.ConfigError` that
  names the field path and the fix.

Every field is described in ``config/README.md``; ``config/example.yaml`` shows them in use.
"""

from mirror.jobs.config.fields import parse_size
from mirror.jobs.config.load import CONFIG_VERSION, load_config, parse_config
from mirror.jobs.config.messages import format_path
from mirror.jobs.config.models import (
    Config,
    Job,
    JobSettings,
    LogConfig,
    MetricsConfig,
    ObjectStorageConfig,
    RegistryConfig,
    ScheduleConfig,
    TagsConfig,
)

__all__ = [
    "CONFIG_VERSION",
    "Config",
    "Job",
    "JobSettings",
    "LogConfig",
    "MetricsConfig",
    "ObjectStorageConfig",
    "RegistryConfig",
    "ScheduleConfig",
    "TagsConfig",
    "format_path",
    "load_config",
    "parse_config",
    "parse_size",
]
