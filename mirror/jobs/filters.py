"""Which tags of a repository a job copies. Pure.

A :class:`TagFilter` is applied in this order:

1. ``include``: when given, a tag is kept only if at least one pattern matches it.
2. ``exclude``: a tag is dropped if any pattern matches it.
3. ``semver``: when given, a tag is kept only if it is a semantic version inside the npm-style
   range (``>=1.2 <2``, ``^1.4``, ``~2.0``, ``1.x``, ``>=1 <2 || >=3``). As in npm, a pre-release
   (``1.3.0-rc.1``) only matches a range that names a pre-release of the same ``MAJOR.MINOR.PATCH``.
4. ``latest``: when given, only the ``N`` highest semantic versions left are kept; tags that are
   not semantic versions are dropped at this step, so at most ``N`` tags remain. Pre-releases and
   suffixed tags (``2.0.1-alpine``) rank by semver: below ``2.0.1``, above ``2.0.0``.

Patterns are Python regular expressions matched with ``re.search``: a pattern matches anywhere
in the tag unless anchored, so ``^v`` means "starts with v" and ``^v\\d+\\.\\d+\\.\\d+$`` a whole tag.

A tag is a semantic version when it reads ``MAJOR.MINOR.PATCH`` with an optional ``-PRERELEASE``,
optionally after a single ``v`` (``v1.2.3``, ``1.2.3-rc.1``). ``1.25``, ``latest`` or ``20240101``
are not, and neither are numbers with leading zeros.

:func:`select_tags` returns tags in one deterministic order (:func:`sort_tags`): tags that are not
semantic versions first, by name; then semantic versions from lowest to highest, ties by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mirror.types.errors import ConfigError

__all__ = ["TagFilter", "compile_pattern", "parse_range", "select_tags", "semver_of", "sort_tags"]

_SEMVER_SHAPE = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def compile_pattern(text: object) -> re.Pattern[str]:
    """Compile a tag pattern; raise :class:`ConfigError` with the position of the problem."""
    if not isinstance(text, str):
        raise ConfigError(f"expected a regular expression (a string), got {type(text).__name__}; quote it")
    try:
        return re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        reason = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        pos = getattr(exc, "pos", None)
        where = f" at position {pos}" if pos is not None else ""
        raise ConfigError(
            f"{text!r} is not a valid regular expression: {reason}{where}; "
            "escape special characters with a backslash, e.g. '\\.'"
        ) from None


def parse_range(text: object) -> Any:
    """An npm-style semver range (a ``semantic_version.NpmSpec``); raise :class:`ConfigError`."""
    example = "e.g. '>=1.2 <2', '^1.4', '~2.0' or '1.x'"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"expected a semver range (a non-empty string), {example}")
    import semantic_version  # imported where used: most configs have no semver filter

    try:
        return semantic_version.NpmSpec(text)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ConfigError(f"{text!r} is not a semver range ({exc}); {example}") from None


def semver_of(tag: str) -> Any:
    """The ``semantic_version.Version`` a tag names, or ``None`` when it is not a semantic version."""
    if not _SEMVER_SHAPE.match(tag):
        return None
    import semantic_version

    try:
        return semantic_version.Version(tag[1:] if tag.startswith("v") else tag)
    except ValueError:
        return None


def _order(tag: str) -> tuple[int, Any, str]:
    version = semver_of(tag)
    if version is None:
        return (0, "", tag)
    return (1, version, tag)


def sort_tags(tags: Iterable[str]) -> list[str]:
    """Distinct tags: non-semver by name, then semver from lowest to highest (ties by name)."""
    return sorted(set(tags), key=_order)


@dataclass(frozen=True)
class TagFilter:
    """Include/exclude patterns, a semver range and a "newest N" limit; empty keeps every tag."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    semver: Any = None  # semantic_version.NpmSpec | None
    latest: int | None = None

    @classmethod
    def build(
        cls,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        semver: str | None = None,
        latest: int | None = None,
    ) -> TagFilter:
        """From pattern and range text; raise :class:`ConfigError` for the first invalid one."""
        if latest is not None and latest < 1:
            raise ConfigError(f"latest must be at least 1, got {latest}")
        return cls(
            tuple(compile_pattern(p) for p in include),
            tuple(compile_pattern(p) for p in exclude),
            None if semver is None else parse_range(semver),
            latest,
        )

    @property
    def keeps_everything(self) -> bool:
        return not (self.include or self.exclude or self.semver is not None or self.latest is not None)

    def matches(self, tag: str) -> bool:
        """Steps 1-3 for one tag (``latest`` depends on the other tags, see :func:`select_tags`)."""
        if self.include and not any(p.search(tag) for p in self.include):
            return False
        if any(p.search(tag) for p in self.exclude):
            return False
        if self.semver is not None:
            version = semver_of(tag)
            if version is None or not self.semver.match(version):
                return False
        return True


def select_tags(tags: Iterable[str], tag_filter: TagFilter) -> list[str]:
    """The tags ``tag_filter`` keeps, distinct, in :func:`sort_tags` order."""
    kept = [tag for tag in set(tags) if tag_filter.matches(tag)]
    if tag_filter.latest is not None:
        versions = [tag for tag in kept if semver_of(tag) is not None]
        kept = sort_tags(versions)[-tag_filter.latest :]
    return sort_tags(kept)
