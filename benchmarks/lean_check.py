"""The least a warm check of the fleet can cost a Python client built on asyncio and aiohttp.

Run as a script (``python benchmarks/lean_check.py SRC DST PREFIX DEST_PREFIX CONCURRENCY``): it
sends the requests a warm ``mirror sync --once`` sends and nothing else (``/v2/`` on each
registry, the source's catalog, one tag listing per repository, then for each tag a HEAD of the
source manifest and a HEAD of the destination's), with the same per-registry concurrency, and
compares the digests. No config, no retries, no auth, no report, no logging: what is left is the
interpreter, importing the HTTP stack and the registries' answers. Prints one JSON line.

Kept to the standard library and aiohttp so that its start-up is only theirs (it is not imported
as part of the ``benchmarks`` package).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

ACCEPT = ",".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


async def check(src: str, dst: str, prefix: str, dest_prefix: str, concurrency: int) -> dict[str, object]:
    began = time.perf_counter()
    requests = 0
    slots = {src: asyncio.Semaphore(concurrency), dst: asyncio.Semaphore(concurrency)}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as http:

        async def get(host: str, path: str) -> object:
            nonlocal requests
            async with slots[host], http.get(f"http://{host}{path}") as resp:
                requests += 1
                resp.raise_for_status()
                return await resp.json()

        async def head(host: str, path: str) -> str | None:
            nonlocal requests
            async with slots[host], http.head(f"http://{host}{path}", headers={"Accept": ACCEPT}) as resp:
                requests += 1
                return resp.headers.get("Docker-Content-Digest") if resp.status == 200 else None

        await asyncio.gather(get(src, "/v2/"), get(dst, "/v2/"))
        catalog = await get(src, "/v2/_catalog?n=1000")
        repos = [r for r in catalog["repositories"] if r.startswith(prefix + "/")]  # type: ignore[index]

        async def tags(repo: str) -> list[tuple[str, str]]:
            listing = await get(src, f"/v2/{repo}/tags/list")
            return [(repo, tag) for tag in listing["tags"] or []]  # type: ignore[index]

        async def same(repo: str, tag: str) -> bool:
            want = await head(src, f"/v2/{repo}/manifests/{tag}")
            name = dest_prefix + "/" + repo.rsplit("/", 1)[-1]
            got = await head(dst, f"/v2/{name}/manifests/{tag}")
            return want is not None and want == got

        listed = [pair for pairs in await asyncio.gather(*(tags(r) for r in repos)) for pair in pairs]
        equal = await asyncio.gather(*(same(repo, tag) for repo, tag in listed))
    return {
        "tags": len(listed),
        "equal": sum(equal),
        "requests": requests,
        "seconds": round(time.perf_counter() - began, 4),
    }


def main(argv: list[str]) -> int:
    src, dst, prefix, dest_prefix, concurrency = argv
    doc = asyncio.run(check(src, dst, prefix, dest_prefix, int(concurrency)))
    print(json.dumps(doc))
    return 0 if doc["equal"] == doc["tags"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
