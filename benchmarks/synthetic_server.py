"""A registry-API-shaped HTTP/1.1 server on loopback: a synthetic source and a discarding sink.

    python -m benchmarks.synthetic_server --seed S --size BYTES --digest sha256:... [--token-ttl SECONDS]

*Source*: the repository ``--source-repo`` (default ``synthetic/blob``) holds one image (any
tag answers) whose single layer is the synthetic blob (seed, size), generated while it is sent,
with its Content-Length: no Range, nothing stored. Its digest is given on the command line (the
harness computes it once and caches it).

*Fleet* (``--fleet REPOSxTAGS``): a generated fleet of tiny images
(:mod:`benchmarks.fleet_content`) under each ``--fleet-prefix``, with ``_catalog`` and tag
listings (``n``/``last`` pagination with ``Link``): the source of a scale benchmark, or, under the
destination's prefix, a destination already holding the same content.

The source layer answers ``Range: bytes=N-`` with ``206`` and ``Content-Range`` (honouring
``If-Range`` against its ``ETag``, the digest); ``--reset-at OFFSET[,OFFSET]`` makes the layer
reads break: a read that reaches the next unused offset is cut there (the connection aborted, as
a reset), once per offset, so a client that resumes meets each reset once.

*Sink*: every other repository accepts monolithic uploads (POST, then one PUT) and discards the
bytes while counting them. A PUT must carry Content-Length and must not be chunked (400
otherwise); with ``--verify`` the sink also hashes what it receives and refuses a wrong digest.
Manifests are kept (small) and listed; blobs are remembered per repository by digest and size only, and a
mount of a known blob answers 201.

With ``--token-ttl`` every request needs a bearer token from ``/token`` (distribution's token
flow); a token presented after it expired is refused with 401 and counted: a client that
refreshes ahead of expiry never sees one after its first challenge.

The server is a small HTTP/1.1 implementation on an asyncio buffered protocol rather than a web
framework, so that measuring a client's ceiling costs the server as little CPU as possible:
upload bodies are received into one reused buffer and never become Python objects, and the
source writes each generated 4 MiB piece once. ``GET /_stats`` answers counters as JSON (requests
by method and by route, such as ``HEAD manifest`` or ``GET tags``). The
first line on stdout is ``READY <port>``.

This module is the command line; the HTTP/1.1 plumbing is :mod:`benchmarks.synthetic_http`, the
registry API (source, fleet, sink, tokens, counters) :mod:`benchmarks.synthetic_registry`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from benchmarks.fleet_content import Fleet
from benchmarks.synthetic_http import serve
from benchmarks.synthetic_registry import SyntheticRegistry
from mirror.types.digest import Digest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.synthetic_server")
    p.add_argument("--seed", default="synthetic")
    p.add_argument("--size", type=int, default=0, help="the synthetic source blob's size (0: none)")
    p.add_argument("--digest", default="", help="its digest (needed with --size)")
    p.add_argument("--fleet", default="", metavar="REPOSxTAGS", help="serve a generated fleet of tiny images")
    p.add_argument(
        "--fleet-prefix", action="append", default=[], help="repository prefix of the fleet (repeatable)"
    )
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--source-repo", default="synthetic/blob")
    p.add_argument("--token-ttl", type=float, default=None)
    p.add_argument(
        "--reset-at",
        default="",
        metavar="OFFSET[,OFFSET]",
        help="cut layer reads at these byte offsets, once each",
    )
    p.add_argument("--verify", action="store_true", help="hash received blobs and refuse a wrong digest")
    p.add_argument("--stop-after", type=float, default=6 * 3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    if args.size and not args.digest:
        p.error("--size needs --digest")
    fleet = None
    if args.fleet:
        repos, _, tags = args.fleet.partition("x")
        fleet = Fleet(int(repos), int(tags), prefixes=tuple(args.fleet_prefix or ["fleet"]))
    server = SyntheticRegistry(
        args.seed,
        args.size,
        Digest.parse(args.digest) if args.size else None,
        source_repo=args.source_repo,
        token_ttl=args.token_ttl,
        verify=args.verify,
        fleet=fleet,
        reset_at=[int(x) for x in args.reset_at.split(",") if x],
    )
    try:
        import uvloop

        uvloop.run(serve(server, args.port, args.stop_after))
    except ImportError:
        asyncio.run(serve(server, args.port, args.stop_after))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
