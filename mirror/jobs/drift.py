"""Drift: where each destination stands against its source. Pure.

What was read of one source repository and one of its destination repositories is a
:class:`RepoState`; :func:`classify` turns it into :class:`DriftEntry` rows, one per image the
job copies and one per extra destination tag, each in one state:

==========================  ========================================================================
state                       meaning
==========================  ========================================================================
``in_sync``                 the destination reference names the digest the job would write there
``missing``                 the destination has no such tag (or digest)
``different_digest``        the destination tag names another digest
``incomplete``              the destination tag names the right digest, but the layout (``oci:``,
                            ``s3://``) lacks content it names (removed or cut short outside
                            mirror); looked for by ``mirror verify`` only
``extra``                   a destination tag the job covers (see :func:`~.selection.covers_tag`)
                            whose source tag is gone (a referrers tag whose subject is still
                            present is not: see :attr:`RepoState.kept`)
``source_unreadable``       the source could not be listed, or this image of it could not be read
``destination_unreadable``  the destination could not be listed, or this reference not be read
==========================  ========================================================================

The digest "the job would write" is the source's, or, for a job with ``platforms`` and a
multi-platform source, the digest of the filtered index. Extras are only counted when both
listings were read: a source that cannot be listed says nothing about what is gone.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mirror.jobs.places import place_of
from mirror.jobs.report import brief
from mirror.types.digest import is_digest

IN_SYNC = "in_sync"
MISSING = "missing"
DIFFERENT = "different_digest"
INCOMPLETE = "incomplete"
EXTRA = "extra"
SOURCE_UNREADABLE = "source_unreadable"
DESTINATION_UNREADABLE = "destination_unreadable"
STATES = (IN_SYNC, MISSING, DIFFERENT, INCOMPLETE, EXTRA, SOURCE_UNREADABLE, DESTINATION_UNREADABLE)
GAPS_SHOWN = 3  # what an incomplete row names of what is missing


@dataclass(frozen=True)
class Listing:
    """A tag listing: the tags, or why there are none (``tags`` is None when not read)."""

    tags: frozenset[str] | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.tags is not None and not self.error


@dataclass(frozen=True)
class Lookup:
    """One manifest lookup: the digest found, ``None`` when there is none, or an error."""

    digest: str | None = None
    error: str = ""


@dataclass(frozen=True)
class Pair:
    """An image the job copies: read ``source`` (a tag or digest), write ``destination``."""

    source: str
    destination: str


@dataclass(frozen=True)
class RepoState:
    """What was read of one source repository and one destination repository of a job.

    ``source_listing`` is ``None`` for a source naming one image (nothing is listed then).
    """

    job: str
    source: str  # display name of the source repository (host/path, oci:DIR, s3://...)
    destination: str  # display name of the destination repository
    pairs: tuple[Pair, ...]
    source_listing: Listing | None
    dest_listing: Listing
    source_digests: Mapping[str, Lookup] = field(default_factory=dict)  # by Pair.source
    dest_digests: Mapping[str, Lookup] = field(default_factory=dict)  # by destination reference
    # Destination tags that are not extra though the source has no such tag: the referrers tags
    # (``sha256-<hex>``) a store without the referrers API keeps for a subject still present.
    kept: frozenset[str] = frozenset()
    dest_gaps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # what a reference lacks


@dataclass(frozen=True)
class DriftEntry:
    job: str
    state: str
    source: str  # repository:tag, repository@digest, or the repository alone
    destination: str
    source_digest: str = ""
    destination_digest: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ref(repository: str, reference: str) -> str:
    if not reference:
        return repository
    return f"{repository}@{reference}" if is_digest(reference) else f"{repository}:{reference}"


def extras(state: RepoState, covers: Callable[[str], bool]) -> list[str]:
    """Destination tags the job covers whose source tag is gone; empty unless both sides listed."""
    if state.source_listing is None or not state.source_listing.ok or not state.dest_listing.ok:
        return []
    assert state.source_listing.tags is not None and state.dest_listing.tags is not None
    gone = state.dest_listing.tags - state.source_listing.tags - state.kept
    return sorted(tag for tag in gone if covers(tag))


def classify(state: RepoState, covers: Callable[[str], bool]) -> list[DriftEntry]:
    """The drift rows of one source/destination repository pair (see the module docs)."""
    rows: list[DriftEntry] = []
    src, dst = state.source, state.destination
    if state.source_listing is not None and not state.source_listing.ok:
        rows.append(DriftEntry(state.job, SOURCE_UNREADABLE, src, dst, error=state.source_listing.error))
    if not state.dest_listing.ok:
        rows.append(DriftEntry(state.job, DESTINATION_UNREADABLE, src, dst, error=state.dest_listing.error))
    for pair in state.pairs:
        rows.append(_image_row(state, pair))
    for tag in extras(state, covers):
        found = state.dest_digests.get(tag, Lookup())
        rows.append(DriftEntry(state.job, EXTRA, _ref(src, tag), _ref(dst, tag), "", found.digest or ""))
    return rows


def _image_row(state: RepoState, pair: Pair) -> DriftEntry:
    source_ref, dest_ref = _ref(state.source, pair.source), _ref(state.destination, pair.destination)
    want = state.source_digests.get(pair.source, Lookup(error="not read"))
    have = state.dest_digests.get(pair.destination, Lookup(error="not read"))
    row = DriftEntry(state.job, IN_SYNC, source_ref, dest_ref, want.digest or "", have.digest or "")
    if want.error or want.digest is None:
        error = want.error or "the source has no such image"
        return dataclasses.replace(row, state=SOURCE_UNREADABLE, error=error)
    if have.error:
        return dataclasses.replace(row, state=DESTINATION_UNREADABLE, error=have.error)
    if have.digest is None:
        return dataclasses.replace(row, state=MISSING)
    if have.digest != want.digest:
        return dataclasses.replace(row, state=DIFFERENT)
    gaps = state.dest_gaps.get(pair.destination, ())
    if gaps:
        return dataclasses.replace(row, state=INCOMPLETE, error=brief(gaps, GAPS_SHOWN))
    return row


def counts(rows: Iterable[DriftEntry]) -> dict[str, int]:
    """Rows per state, every state present (zero when none)."""
    found = Counter(row.state for row in rows)
    return {state: found.get(state, 0) for state in STATES}


def in_sync(rows: Iterable[DriftEntry]) -> bool:
    """True when every row is ``in_sync`` (no drift, nothing unreadable)."""
    return all(row.state == IN_SYNC for row in rows)


def claimed_elsewhere(states: Iterable[RepoState]) -> Callable[[RepoState, str], bool]:
    """Whether a destination tag of ``state`` is the source tag of another job or source writing
    into the same destination repository (then it is that one's image, not an extra). The same
    repository is the same place (:mod:`.places`: a layout directory spelled two ways is one)."""
    place = functools.cache(place_of)  # one layout directory spelled two ways is one place
    by_destination: dict[str, list[RepoState]] = {}
    for state in states:
        by_destination.setdefault(place(state.destination), []).append(state)

    def claimed(state: RepoState, tag: str) -> bool:
        for other in by_destination.get(place(state.destination), ()):
            if (other.job, other.source) == (state.job, state.source):
                continue
            listing = other.source_listing
            if listing is None:
                if any(p.destination == tag for p in other.pairs):
                    return True
            elif listing.tags is not None and tag in listing.tags:
                return True
        return False

    return claimed
