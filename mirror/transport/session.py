"""The aiohttp session a transport sends every request through, and the TLS context per host.

One session per transport: no connection limit of its own (the transport bounds requests per
host), DNS answers kept five minutes, bodies passed through as sent (no decompression), read
in 1 MiB buffers. Creating it also tunes glibc's allocator for streamed blobs, once per process.
"""

from __future__ import annotations

import ssl
import sys

import aiohttp

from mirror import __version__

USER_AGENT = f"mirror/{__version__}"
READ_CHUNK = 1024 * 1024


def new_session(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    keep_buffers_in_heap()
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        read_bufsize=READ_CHUNK,
        headers={"User-Agent": USER_AGENT},
        skip_auto_headers=("Content-Type",),
    )


def ssl_context(
    ca_file: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext | bool:
    """``True`` (the default verification) unless a CA file or a client certificate is set."""
    if not (ca_file or client_cert):
        return True
    ctx = ssl.create_default_context(cafile=ca_file)
    if client_cert:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


_heap_tuned = False


def keep_buffers_in_heap() -> None:
    """Let glibc keep freed stream buffers instead of returning them to the OS (once per process).

    A streamed blob allocates and frees a ~256 KiB chunk for every network read; with glibc's
    adaptive mmap/trim thresholds that memory keeps going back to the OS and is faulted in
    again. Fixed thresholds (blocks up to 8 MiB from the heap, trim only above 32 MiB free)
    cut the page-fault churn. Peak memory is unchanged: it is what the transfer holds anyway.
    """
    global _heap_tuned
    if _heap_tuned or not sys.platform.startswith("linux"):
        return
    _heap_tuned = True
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-1, 32 * 1024 * 1024)  # M_TRIM_THRESHOLD
    mallopt(-3, 8 * 1024 * 1024)  # M_MMAP_THRESHOLD
