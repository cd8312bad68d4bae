"""Measuring a tool run: wall time, peak RSS and CPU of its processes, and the requests it caused.

Peak RSS and CPU come from each process's rusage as its parent reaps it (``wait4``). Linux
starts an exec'd process's peak-RSS record at its parent's resident size at fork, so a tool
started directly by this (large) Python process would report at least the harness's own RSS.
Each command is therefore started under GNU ``time`` (a tiny parent) which reports the
command's rusage; without it, ``os.wait4`` here is used and peaks are floored at our size.
Requests are counted on the server side, identically for every tool: the access logs of the
docker-registry servers involved (one line per request), read from an offset taken before the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.registries import AccessRecord, Registry

GNU_TIME = "/usr/bin/time"

_BLOB_GET = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")


@dataclass
class ProcessStats:
    wall: float
    peak_rss: int  # bytes; for a pipeline, the sum of its processes' peaks
    cpu: float  # user + system seconds
    returncode: int
    stdout: str = ""
    stderr: str = ""


def run_measured(
    argv: list[str] | list[list[str]],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ProcessStats:
    """Run a command (or a pipeline: a list of commands, stdout to stdin) and measure it."""
    pipeline: list[list[str]] = argv if argv and isinstance(argv[0], list) else [argv]  # type: ignore[list-item]
    procs: list[subprocess.Popen[bytes]] = []
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.monotonic_ns()}"
    stdout = open(f"{out_path}.out", "wb")  # noqa: SIM115 - closed below
    stderr = open(f"{out_path}.err", "wb")  # noqa: SIM115
    began = time.monotonic()
    try:
        prev = None
        timed = os.access(GNU_TIME, os.X_OK)
        for i, cmd in enumerate(pipeline):
            last = i == len(pipeline) - 1
            if timed:
                cmd = [GNU_TIME, "-f", "%M %U %S", "-o", f"{out_path}.{i}.time", *cmd]
            proc = subprocess.Popen(
                cmd,
                stdin=prev.stdout if prev else subprocess.DEVNULL,
                stdout=stdout if last else subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=cwd,
                start_new_session=(i == 0),
            )
            if prev is not None and prev.stdout is not None:
                prev.stdout.close()  # the next process owns the read end now
            procs.append(proc)
            prev = proc
        waiting = {p.pid: p for p in procs}
        rss = 0
        cpu = 0.0
        codes: dict[int, int] = {}
        deadline = began + timeout
        while waiting:
            reaped = False
            for pid in list(waiting):
                got, status, usage = os.wait4(pid, os.WNOHANG)  # only our own children
                if got == 0:
                    continue
                reaped = True
                proc = waiting.pop(pid)
                proc.returncode = os.waitstatus_to_exitcode(status)
                codes[pid] = proc.returncode
                rss += usage.ru_maxrss * 1024
                cpu += usage.ru_utime + usage.ru_stime
            if waiting and not reaped:
                if time.monotonic() > deadline:
                    for p in waiting.values():
                        p.kill()
                    raise TimeoutError(f"{pipeline[0][0]} took more than {timeout}s")
                time.sleep(0.002)
        wall = time.monotonic() - began
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                p.wait()
        stdout.close()
        stderr.close()
    if timed:
        rss, cpu = 0, 0.0
        for i in range(len(pipeline)):
            path = Path(f"{out_path}.{i}.time")
            try:
                fields = path.read_text().strip().splitlines()[-1].split()
                rss += int(fields[0]) * 1024
                cpu += float(fields[1]) + float(fields[2])
            except (OSError, IndexError, ValueError):
                pass
            path.unlink(missing_ok=True)
    out = Path(f"{out_path}.out").read_text(errors="replace")
    err = Path(f"{out_path}.err").read_text(errors="replace")
    Path(f"{out_path}.out").unlink()
    Path(f"{out_path}.err").unlink()
    code = next((c for c in (codes[p.pid] for p in procs) if c != 0), 0)
    return ProcessStats(wall, rss, cpu, code, out[-20000:], err[-20000:])


@dataclass
class Traffic:
    """What the registries saw during one run."""

    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    source_blob_gets: int = 0
    source_blob_get_bytes: int = 0
    duplicate_source_blob_gets: int = 0
    errors: int = 0  # 5xx answers

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_method": dict(self.by_method),
            "source_blob_gets": self.source_blob_gets,
            "source_blob_get_bytes": self.source_blob_get_bytes,
            "duplicate_source_blob_gets": self.duplicate_source_blob_gets,
            "server_errors": self.errors,
        }


class TrafficWatch:
    """Marks the registries' access logs before a run; ``collect`` reads what came after."""

    def __init__(self, source: Registry | None, others: list[Registry]) -> None:
        self.source = source
        self.others = others
        self._offsets = {id(r): r.log_offset() for r in self._all()}

    def _all(self) -> list[Registry]:
        return ([self.source] if self.source else []) + self.others

    def collect(self, settle: float = 0.05) -> Traffic:
        time.sleep(settle)  # the registry writes its access line just after the answer
        t = Traffic()
        for reg in self._all():
            records = reg.access_since(self._offsets[id(reg)])
            _count(t, records, is_source=reg is self.source)
        return t


def _count(t: Traffic, records: list[AccessRecord], *, is_source: bool) -> None:
    digests: Counter[str] = Counter()
    for rec in records:
        t.requests += 1
        t.by_method[rec.method] += 1
        if rec.status >= 500:
            t.errors += 1
        if is_source and rec.method == "GET" and rec.status == 200:
            m = _BLOB_GET.match(rec.path)
            if m:
                t.source_blob_gets += 1
                t.source_blob_get_bytes += rec.bytes
                digests[m.group("digest")] += 1
    t.duplicate_source_blob_gets += sum(n - 1 for n in digests.values())


def terminate(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
