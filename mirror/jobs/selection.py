"""Which references of a source repository a job copies, and which destination tags it covers. Pure.

A pass, ``mirror verify`` and prune agree on these two answers:

- :func:`select_references`: the tags a job copies from a listing: those its tag filter keeps.
  With ``referrers``, the tags of the referrers fallback scheme (``sha256-<hex>[.suffix]``:
  signatures, SBOMs and attestations) follow the subjects they name, once those are copied
  (:mod:`.referrers`): a signature of a tag the filter excluded is not copied;
- :func:`covers_tag`: whether a tag is one the job could copy (the filter's patterns and semver
  range, without ``latest``, which depends on the other tags). A destination tag the job covers
  whose source tag is gone is *extra*: ``mirror verify`` reports it, prune may delete it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mirror.jobs.filters import TagFilter, select_tags
from mirror.types.referrers import REFERRERS_TAG

FALLBACK_TAG = re.compile(rf"^{REFERRERS_TAG}(?:\.[A-Za-z0-9_.-]+)?$")
"""Tags of the referrers fallback scheme: ``sha256-<hex>`` (a sha512 digest's hex truncated to 64
characters) with an optional suffix (``.sig``, ...)."""


def select_references(all_tags: Iterable[str], tag_filter: TagFilter) -> list[str]:
    """The tags a job's filter selects from a repository listing ``all_tags``, in a stable order
    (referrers' fallback tags come later, with their subjects: :mod:`.referrers`)."""
    return select_tags(list(all_tags), tag_filter)


def covers_tag(tag: str, tag_filter: TagFilter, referrers: bool) -> bool:
    """Whether ``tag`` is a tag the job could copy (its filter's patterns and range allow it)."""
    return tag_filter.matches(tag) or (referrers and FALLBACK_TAG.match(tag) is not None)
