"""URL rules: resolving Location and Link, and what a redirect may do. Pure."""

from __future__ import annotations

import re

from yarl import URL

from mirror.types.errors import UnsafeRequest
from mirror.types.reference import is_loopback_host

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def host_of(url: URL) -> str:
    """``host[:port]`` as mirror names registries (default ports left out)."""
    host = url.host or ""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if url.explicit_port is not None:
        return f"{host}:{url.explicit_port}"
    return host


def ping_schemes(host: str, plain_http: bool = False) -> tuple[str, ...]:
    """The schemes tried for a registry, in order: https only; http only when plain HTTP was
    opted in for the host; https then http for a loopback host (as docker does)."""
    if plain_http:
        return ("http",)
    if is_loopback_host(host):
        return ("https", "http")
    return ("https",)


def credentials_allowed(target: URL) -> bool:
    """Whether credentials may be sent to ``target``: over https, or plain HTTP to loopback."""
    if target.scheme == "https":
        return True
    return target.scheme == "http" and is_loopback_host(host_of(target))


def _checked(url: URL, text: str) -> URL:
    try:  # yarl finds some faults (bad port, bad IPv6 literal) only when the parts are read
        str(url)
        _ = url.port, url.host
    except (ValueError, TypeError) as exc:
        raise UnsafeRequest(f"malformed URL {text[:200]!r}: {exc}") from None
    return url


def parse_url(text: str) -> URL:
    """``text`` as a URL; a malformed one (as a hostile registry may send) is refused."""
    try:
        url = URL(text, encoded=True)
    except (ValueError, TypeError) as exc:
        raise UnsafeRequest(f"malformed URL {text[:200]!r}: {exc}") from None
    return _checked(url, text)


def join_url(base: URL, text: str) -> URL:
    """``text`` (absolute or relative) resolved against ``base``; a malformed one is refused."""
    target = parse_url(text)
    try:
        joined = base.join(target)
    except (ValueError, TypeError) as exc:
        raise UnsafeRequest(f"malformed URL {text[:200]!r}: {exc}") from None
    return _checked(joined, text)


def resolve_location(base: URL, location: str) -> URL:
    """Resolve a (possibly relative) Location against the request URL, keeping its query."""
    target = join_url(base, location)
    check_same_scheme_family(base, target)
    return target


def check_same_scheme_family(base: URL, target: URL) -> None:
    if target.scheme not in ("http", "https"):
        raise UnsafeRequest(f"refusing to follow a URL with scheme {target.scheme!r}: {target}")
    if base.scheme == "https" and target.scheme == "http" and not is_loopback_host(host_of(target)):
        raise UnsafeRequest(f"refusing to downgrade from https to http: {target.with_query(None)}")


def with_digest(url: URL, digest: str) -> URL:
    """Add ``digest=`` to a URL, keeping its existing query (e.g. ``_state``)."""
    return url.update_query({"digest": digest})


def next_link(base: URL, header: str | None) -> URL | None:
    """The ``rel="next"`` target of a Link header, resolved against ``base``; must stay on host."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        target, params = match.group(1), match.group(2)
        if re.search(r'rel\s*=\s*"?next"?', params):
            url = join_url(base, target)
            if host_of(url) != host_of(base) or url.scheme != base.scheme:
                raise UnsafeRequest(f"pagination link points to another host: {url.with_query(None)}")
            return url
    return None
