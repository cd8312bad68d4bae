"""Loading a config: YAML, environment variables, secret files, defaults, then validation.

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
5. ``defaults`` is validated, then merged into each job. ``tags``, ``prune`` and ``prune_max``
   defaults are not applied to a job whose source is a single image.
6. Everything is validated, then checked across fields (unique job names, destinations that
   would write into their own source).

Every failure is one :class:`~mirror.types.errors.ConfigError` whose ``path`` names the field
(``jobs[0].tags.include[1]``, ``registries["127.0.0.1:5002"].password``) and whose message says
what is wrong and how to fix it; several problems found at once are listed one per line.
Secret values never appear in messages.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mirror.jobs.config.fields import RELATIVE_NOTE, kind_of, resolve_path
from mirror.jobs.config.messages import Loc, format_path, validate
from mirror.jobs.config.models import Config, JobSettings, canonical_host
from mirror.jobs.mapping import SourceKind, map_repository, overlaps, parse_source
from mirror.types.errors import ConfigError, InvalidReference
from mirror.types.reference import LayoutRef, parse_reference, validate_host

CONFIG_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20
MAX_SECRET_BYTES = 64 * 1024
_MAX_VALUES = 100_000
_MAX_DEPTH = 50


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


def _check_version(raw: Any) -> None:
    if raw is None:
        raise ConfigError("the config is empty; start it with 'version: 1'")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"the config must be a mapping with version:, registries: and jobs:, got {kind_of(raw)}"
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
        raise ConfigError(f"expected a file path (text), got {kind_of(value)}", where)
    try:
        path = resolve_path(value, {"base_dir": base_dir})
    except ConfigError as exc:
        raise ConfigError(exc.message, where) from None
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"file {value!r} not found (looked for {path}); {RELATIVE_NOTE}", where) from None
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
        return canonical_host(validate_host(str(key).strip()))
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


def _events_entry(raw: dict[str, Any], base_dir: Path) -> None:
    """``events.token_file``: read the token from a file, as registries' secret files are."""
    events = raw.get("events")
    if isinstance(events, dict) and "token_file" in events:
        if "token" in events:
            raise ConfigError("set token or token_file, not both", "events.token_file")
        events = dict(events)
        events["token"] = _read_secret(events.pop("token_file"), base_dir, ("events", "token_file"))
        raw["events"] = events


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


_REPOSITORY_ONLY = ("tags", "prune", "prune_max")  # defaults that mean nothing for one image


def _merge_defaults(raw: dict[str, Any], context: dict[str, Any]) -> None:
    defaults = raw.get("defaults")
    if defaults is None:
        raw.pop("defaults", None)
        return
    if not isinstance(defaults, dict):
        return  # validation reports the type
    validate(JobSettings, defaults, context, ("defaults",))
    jobs = raw.get("jobs")
    if not isinstance(jobs, list):
        return
    merged: list[Any] = []
    for job in jobs:
        if isinstance(job, dict):
            job = dict(job)
            for key, value in defaults.items():
                if key not in job and not (key in _REPOSITORY_ONLY and _is_image_source(job.get("source"))):
                    job[key] = value
        merged.append(job)
    raw["jobs"] = merged


def _check_profiles(config: Config) -> None:
    """Each configured registry names a profile that can be built (an Artifact Registry whose
    location and API are known, no Artifact Registry setting on another kind)."""
    for host in config.registries:
        try:
            config.profile(host)
        except ConfigError as exc:  # its path names the field of the registry entry
            message = exc.message.removeprefix(f"{exc.path}: ")
            raise ConfigError(message, format_path(("registries", host, exc.path or "kind"))) from None


def _cross_check(config: Config) -> None:
    _check_profiles(config)
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
        for key in ("prune", "prune_max"):
            if job.source.kind is SourceKind.IMAGE and key in job.model_fields_set:
                raise ConfigError(
                    f"source {job.source} names one image, so no destination tag can lose its "
                    f"source tag; remove {key}:, or mirror the repository to prune what it drops",
                    format_path(("jobs", i, key)),
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
    _events_entry(data, base)
    _merge_defaults(data, context)
    config = validate(Config, data, context)
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
