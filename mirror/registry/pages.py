"""``Link: <...>; rel="next"`` pagination (tag lists, ``_catalog``, referrers) that always ends.

A registry that repeats a ``next`` URL it already gave, or keeps sending pages that add nothing
new, would otherwise be asked again and again (and its answers would pile up in memory): both
are refused with a RegistryError naming the listing. Names are de-duplicated as they arrive, so
a page served twice never turns into two copy tasks.
"""

from __future__ import annotations

from yarl import URL

from mirror.transport.client import Reply
from mirror.transport.urls import next_link
from mirror.types.errors import RegistryError

MAX_PAGES = 100_000
MAX_STALE_PAGES = 3  # pages in a row that add nothing new, each with yet another next link


class Pagination:
    """The state of one paginated listing of ``what`` (for messages)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.pages = 0
        self._urls: set[str] = set()
        self._names: set[str] = set()
        self._stale = 0

    def new_names(self, names: list[str]) -> list[str]:
        """``names`` not seen on an earlier page (or earlier on this one), in order."""
        fresh = []
        for name in names:
            if name not in self._names:
                self._names.add(name)
                fresh.append(name)
        return fresh

    def next_page(self, reply: Reply, *, added: int) -> URL | None:
        """The next page's URL, None after the last; ``added`` new entries came with ``reply``.

        Raises RegistryError when the registry loops: a next URL already asked, more than
        :data:`MAX_STALE_PAGES` pages in a row that add nothing, or more than :data:`MAX_PAGES`.
        """
        self.pages += 1
        self._urls.add(str(reply.url))
        link = next_link(reply.url, reply.headers.get("Link"))
        if link is None:
            return None
        if str(link) in self._urls:
            raise self._loop(f"its next link repeats a page already read ({link.path})")
        self._stale = 0 if added else self._stale + 1
        if self._stale > MAX_STALE_PAGES:
            raise self._loop(f"{self._stale} pages in a row added nothing new")
        if self.pages >= MAX_PAGES:
            raise self._loop(f"more than {MAX_PAGES} pages")
        return link

    def _loop(self, why: str) -> RegistryError:
        return RegistryError(
            f"{self.what}: the registry's pagination does not end: {why} after {self.pages} "
            f"page(s); stopped instead of asking again",
            temporary=False,
        )
