"""The ``events`` scenario: replication lag under a push storm, and convergence when events are lost.

A source ``docker-registry`` notifies a resident ``mirror sync`` (serve mode, ``events:``) of
every push (distribution's ``notifications.endpoints``, with the bearer token):

- *storm*: 50 pushes spread over 30 s across 5 repositories (quick: 10 over 5 s), with a
  schedule of one hour, so every copy is an event's. The lag of each copy is measured by mirror
  itself, from the event's push time to the destination tag being written, and read from
  ``/status.json`` (p50, p99, max over the 50); the harness also checks every image arrived with
  the pushed digest.
- *lossy*: the same pushes through a relay that loses one manifest event in five (the relay
  answers 200 itself, as a lossy queue in between would), with a schedule of 10 s (quick: 5 s):
  the time from the last push until every image is at the destination, against the interval.

Nothing is compared with a peer: skopeo has no event mode. Registries run on loopback; the lag
is then mostly mirror's own (event intake, coalescing, one copy through the engine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import terminate
from benchmarks.registries import Registries, Registry
from tests.support.images import manifest_exists, push_image
from tests.support.net import free_port
from tests.support.relay import EventRelay, notifications

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TOKEN = "benchmark-events-token-0123456789"


@dataclass(frozen=True)
class Handle:
    """What the seeding helpers need of a benchmark registry."""

    url: str
    auth: str = "none"
    seed_creds: tuple[str, str] | None = None


def _handle(reg: Registry) -> Handle:
    return Handle(f"http://{reg.host}")


class Daemon:
    """``mirror sync`` in serve mode, with events, on a free port."""

    def __init__(self, tmp: Path, src: Registry, dst: Registry, port: int, interval: str) -> None:
        self.port = port
        config = tmp / f"events-{port}.yaml"
        config.write_text(f"""
version: 1
concurrency: 16
metrics: {{address: "127.0.0.1:{port}"}}
events: {{token: "{TOKEN}"}}
log: {{format: json, level: warning}}
registries:
  "{src.host}": {{plain_http: true, max_concurrency: 32}}
  "{dst.host}": {{plain_http: true, max_concurrency: 32}}
jobs:
  - name: storm
    source: {src.host}/storm/*
    destinations: [{dst.host}/mirror]
    schedule: {{interval: {interval}, jitter: 0}}
""")
        self.proc = subprocess.Popen(
            [PY, "-m", "mirror", "sync", "--config", str(config), "--grace", "5"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status.json", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def job(self) -> dict[str, Any]:
        jobs = self.status()["jobs"]
        return next(j for j in jobs if j["name"] == "storm")  # type: ignore[no-any-return]

    def wait_first_pass(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mirror sync exited at start-up")
            try:
                if self.job().get("last_pass"):
                    return
            except (OSError, ValueError, StopIteration):
                pass
            time.sleep(0.1)
        raise TimeoutError("mirror's first pass did not end")

    def close(self) -> None:
        terminate(self.proc)


def _storm(src: Registry, count: int, seconds: float, tag: str) -> list[tuple[str, str, str]]:
    """``count`` pushes spread evenly over ``seconds``: (repository, tag, digest) each."""
    pushed = []
    began = time.monotonic()
    for i in range(count):
        repo, name = f"storm/app{i % 5}", f"{tag}{i // 5}"
        image = push_image(_handle(src), repo, name, seed=f"{tag}-{i}", layer_sizes=(64 * 1024, 2048))
        pushed.append((repo, name, image.digest))
        time.sleep(max(0.0, began + (i + 1) * seconds / count - time.monotonic()))
    return pushed


def _all_present(dst: Registry, pushed: list[tuple[str, str, str]]) -> Callable[[], bool]:
    handle = _handle(dst)

    def check() -> bool:
        return all(manifest_exists(handle, "mirror/" + repo.split("/", 1)[1], tag) for repo, tag, _ in pushed)

    return check


def _wait(check: Callable[[], bool], timeout: float) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic() - began
        time.sleep(0.1)
    return None


def scenario_events(regs: Registries, quick: bool, say: Callable[[str], None]) -> dict[str, Any]:
    count, seconds, interval = (10, 5.0, 5) if quick else (50, 30.0, 10)
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-events-"))
    out: dict[str, Any] = {"workload": {"pushes": count, "over_seconds": seconds, "repositories": 5}}

    # -- storm: every copy is an event's ------------------------------------------------------
    port = free_port()
    dst = regs.start()
    src = regs.start(notifications(f"http://127.0.0.1:{port}/events/distribution", TOKEN))
    daemon = Daemon(tmp, src, dst, port, "1h")
    try:
        daemon.wait_first_pass()
        say(f"events storm: {count} pushes over {seconds:.0f} s")
        pushed = _storm(src, count, seconds, "v")
        arrived = _wait(_all_present(dst, pushed), 120) is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and daemon.job()["lag"]["count"] < count:
            time.sleep(0.1)
        lag = daemon.job()["lag"]
        out["storm"] = {"ok": arrived and lag["count"] == count, "lag": lag, "images": len(pushed)}
        say(f"  lag p50 {lag['p50_seconds']} s, p99 {lag['p99_seconds']} s over {lag['count']} copies")
    finally:
        daemon.close()

    # -- lossy: one manifest event in five lost, a short schedule ------------------------------
    port = free_port()
    relay = EventRelay([f"http://127.0.0.1:{port}"], drop_every=5).start()
    dst = regs.start()
    src = regs.start(notifications(f"{relay.url}/events/distribution", TOKEN))
    daemon = Daemon(tmp, src, dst, port, f"{interval}s")
    try:
        daemon.wait_first_pass()
        say(f"events lossy: {count} pushes, 1 manifest event in 5 lost, a pass every {interval} s")
        pushed = _storm(src, count, seconds, "w")
        converged = _wait(_all_present(dst, pushed), 10 * interval + 60)
        lag = daemon.job()["lag"]
        out["lossy"] = {
            "ok": converged is not None,
            "interval_seconds": interval,
            "converged_seconds": None if converged is None else round(converged, 2),
            "events_lost": relay.dropped,
            "events_delivered": relay.forwarded,
            "copied_by_events": lag["count"],
            "lag": lag,
        }
        say(f"  converged {converged and round(converged, 1)} s after the last push (interval {interval} s)")
    finally:
        daemon.close()
        relay.stop()
    return {"events": out}


def events_targets(events: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not events:
        return []
    out = []
    storm, lossy = events.get("storm") or {}, events.get("lossy") or {}
    if storm:
        p99 = storm["lag"]["p99_seconds"]
        out.append(
            {
                "target": f"events: lag p99 over {storm['lag']['count']} pushes (loopback)",
                "want": "< 3 s",
                "got": f"{p99} s",
                "met": bool(storm["ok"] and p99 is not None and p99 < 3),
            }
        )
    if lossy:
        got = lossy["converged_seconds"]
        limit = lossy["interval_seconds"]
        out.append(
            {
                "target": "events: 20% lost, converged after the last push",
                "want": f"within one interval ({limit} s) + a pass",
                "got": "never" if got is None else f"{got} s",
                "met": got is not None and got <= 2 * limit,
            }
        )
    return out


def events_table(events: dict[str, Any]) -> list[str]:
    storm, lossy = events.get("storm") or {}, events.get("lossy") or {}
    lines = ["", "| events | pushes | lag p50 | lag p99 | lag max | notes |", "|---|---:|---:|---:|---:|---|"]
    if storm:
        lag = storm["lag"]
        arrived = "all arrived" if storm["ok"] else "**missing images**"
        lines.append(
            f"| storm (schedule 1 h: every copy an event's) | {storm['images']} | {lag['p50_seconds']} s | "
            f"{lag['p99_seconds']} s | {lag['max_seconds']} s | {arrived} |"
        )
    if lossy:
        lag = lossy["lag"]
        lines.append(
            f"| lossy (1 manifest event in 5 lost, a pass every {lossy['interval_seconds']} s) | "
            f"{lossy['copied_by_events']} by events | {lag['p50_seconds']} s | {lag['p99_seconds']} s | "
            f"{lag['max_seconds']} s | {lossy['events_lost']} events lost; all images there "
            f"{lossy['converged_seconds']} s after the last push |"
        )
    return lines
