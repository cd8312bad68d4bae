"""Error messages that name the field: pydantic's validation errors turned into one ConfigError.

A problem is reported with its field path (``jobs[0].tags.include[1]``,
``registries["127.0.0.1:5002"].password``) and a message saying what is wrong and how to fix it:
an unknown key suggests the closest known one, a missing field says what to add, a wrong type
names the expected one. Several problems found at once are listed one per line (the first ten).
Secret values never appear in messages.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from mirror.jobs.config.fields import kind_of
from mirror.jobs.config.models import Job, JobSettings
from mirror.types.errors import ConfigError

Loc = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)
_MAX_LISTED_PROBLEMS = 10
_SECRET_KEYS = frozenset({"password", "token", "identity_token"})


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
        return kind_of(value)
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


def validate(model: type[_M], data: Any, context: dict[str, Any], prefix: Loc = ()) -> _M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        _raise(_problems(exc, model, prefix))
        raise AssertionError("unreachable") from exc
