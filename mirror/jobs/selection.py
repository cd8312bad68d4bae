"""Which references of a source repository a job copies, and which destination tags it covers. Pure.

A pass, ``mirror verify`` and prune agree on these two answers:

- :func:`select_references`: the tags a job copies from a listing: those its tag filter keeps,
  plus, with ``referrers``, the tags of the referrers fallback scheme (``sha256-<hex>[.suffix]``:
  signatures, SBOMs and attestations of registries without the referrers API);
- :func:`covers_tag`: whether a tag is one the job could copy (the filter's patterns and semver
  range, without ``latest``, which depends on the other tags). A destination tag the job covers
  whose source tag is gone is *extra*: ``mirror verify`` reports it, prune may delete it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mirror.jobs.filters import TagFilter, select_tags

FALLBACK_TAG = re.compile(r"^sha256-[a-f0-9]{64}(?:\.[A-Za-z0-9_.-]+)?$")
"""Tags of the referrers fallback scheme: ``sha256-<hex>`` with an optional suffix (``.sig``, ...)."""


def select_references(all_tags: Iterable[str], tag_filter: TagFilter, referrers: bool) -> list[str]:
    """The tags a job copies from a repository listing ``all_tags``, in a stable order."""
    tags = list(all_tags)
    references = select_tags(tags, tag_filter)
    if referrers:
        chosen = set(references)
        references.extend(sorted({t for t in tags if FALLBACK_TAG.match(t) and t not in chosen}))
    return references


def covers_tag(tag: str, tag_filter: TagFilter, referrers: bool) -> bool:
    """Whether ``tag`` is a tag the job could copy (its filter's patterns and range allow it)."""
    return tag_filter.matches(tag) or (referrers and FALLBACK_TAG.match(tag) is not None)
