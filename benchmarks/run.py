"""Run the benchmarks: mirror and its peers on the same workloads, alternating, medians and ratios.

    python -m benchmarks.run [--scenario NAME ...] [--quick] [--runs N] [--json FILE]

Scenarios (default: all but ``multi-tb``):

- ``fleet``: tens of repositories x several tags sharing base layers, registry to registry.
  Cold (empty destination) and warm (the same again, nothing to do), ``mirror sync --once`` vs
  ``skopeo sync``.
- ``fan-out``: the fleet to three destination registries at once: one ``mirror sync`` job with
  three destinations vs three ``skopeo sync`` runs.
- ``big-blob``: one image with a 2 GiB+ layer: ``mirror copy`` vs ``skopeo copy`` vs a raw
  ``curl GET | curl PUT`` pipe between the same two registries.
- ``intrinsic``: ``mirror copy`` from a synthetic source server to a discarding sink (real
  HTTP on loopback, the same client code path) at 1, 8 and 64 GiB: mirror's own ceiling.
- ``scale``: ``mirror sync --once`` over a generated fleet of tiny images (10,000, 30,000 and
  100,000 tags) served by the synthetic registry, warm (the destination holds the same content)
  and cold (an empty discarding sink): peak RSS against tags, requests per tag, tags per second
  (:mod:`benchmarks.scale`).
- ``events``: a resident ``mirror sync`` notified of every push by the source registry: the lag
  from push to copy under a push storm (p50/p99), and how soon everything is there when one
  event in five is lost (:mod:`benchmarks.events`).
- ``resume``: ``mirror copy`` of a 2 GiB blob from the synthetic source, whose connection is
  reset at 90%, 50%, 25%, and twice (25% and 75%), into a verifying sink: source bytes read, PUTs
  (:mod:`benchmarks.resume`).
- ``multi-tb``: the synthetic path once at ``--tb-size`` (default 1 TiB) with short-lived
  tokens; long, so never part of the default set. Its latest result is kept in
  ``results/multitb.json`` and shown with every table.

Every run of a tool gets a fresh destination registry. Requests and source bytes are counted
from the registries' access logs, identically for every tool. Results go to
``benchmarks/results/latest.json`` and ``latest.md`` (and ``--json FILE``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.events import events_table, events_targets, scenario_events
from benchmarks.measure import GNU_TIME, ProcessStats, Traffic, TrafficWatch, run_measured, terminate
from benchmarks.registries import Registries, Registry
from benchmarks.resume import resume_table, resume_targets, scenario_resume
from benchmarks.scale import scenario_scale

GiB = 1024**3
MiB = 1024**2
RESULTS = w.RESULTS
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SKOPEO_CACHE = Path("/var/lib/containers/cache")  # skopeo's blob-info cache when run as root


# -- machine and bookkeeping ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "missing"

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem / GiB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "skopeo": version(["skopeo", "--version"]),
        "docker_registry": version(["docker-registry", "--version"]),
        "curl": version(["curl", "--version"]),
    }


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One run of one tool."""

    tool: str
    wall: float
    peak_rss: int
    cpu: float
    ok: bool
    traffic: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    load: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "wall": round(self.wall, 3),
            "peak_rss": self.peak_rss,
            "cpu": round(self.cpu, 3),
            "ok": self.ok,
            "traffic": self.traffic,
            "extra": self.extra,
            "load": self.load,
        }


def sample(
    tool: str, stats: ProcessStats, traffic: Traffic | None = None, ok: bool | None = None, **extra: Any
) -> Sample:
    good = stats.returncode == 0 if ok is None else ok
    if not good:
        say(f"    {tool} FAILED (exit {stats.returncode}): {stats.stderr[-800:]}")
    return Sample(
        tool,
        stats.wall,
        stats.peak_rss,
        stats.cpu,
        good,
        traffic.as_dict() if traffic else {},
        extra,
        loadavg(),
    )


def medians(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per tool: medians of wall, RSS, CPU and every numeric traffic/extra field."""
    out: dict[str, dict[str, Any]] = {}
    for tool in dict.fromkeys(s.tool for s in samples):
        mine = [s for s in samples if s.tool == tool]
        row: dict[str, Any] = {
            "runs": len(mine),
            "ok": all(s.ok for s in mine),
            "wall": round(statistics.median(s.wall for s in mine), 3),
            "wall_min": round(min(s.wall for s in mine), 3),
            "wall_max": round(max(s.wall for s in mine), 3),
            "peak_rss": int(statistics.median(s.peak_rss for s in mine)),
            "peak_rss_max": max(s.peak_rss for s in mine),
            "cpu": round(statistics.median(s.cpu for s in mine), 3),
        }
        for key in mine[0].traffic:
            values = [s.traffic.get(key) for s in mine]
            if all(isinstance(v, int | float) for v in values):
                row[key] = statistics.median(values)  # type: ignore[type-var]
        for key in mine[0].extra:
            values = [s.extra.get(key) for s in mine]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                row[key] = statistics.median(values)  # type: ignore[type-var]
        out[tool] = row
    return out


def alternate(tools: list[str], runs: int) -> list[str]:
    """Run order: every tool once per round, the order rotating from round to round."""
    order: list[str] = []
    for r in range(runs):
        k = r % len(tools)
        order.extend(tools[k:] + tools[:k])
    return order


# -- skopeo with a private blob-info cache ----------------------------------------------------------


class SkopeoCache:
    """Gives each skopeo trial its own blob-info cache, so trials do not feed each other.

    As root, skopeo keeps the cache in /var/lib/containers/cache; a private mount namespace
    binds a fresh directory over it for the duration of one command. Without ``unshare`` (or
    as another user) skopeo runs as is and the cache is shared (noted in the results).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.private = os.geteuid() == 0 and shutil.which("unshare") is not None and self._works()

    def _works(self) -> bool:
        probe = self.base / "probe"
        probe.mkdir(parents=True, exist_ok=True)
        SKOPEO_CACHE.mkdir(parents=True, exist_ok=True)
        cmd = ["unshare", "--mount", "sh", "-c", f'mount --bind "{probe}" "{SKOPEO_CACHE}" && true']
        try:
            return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def wrap(self, argv: list[str], trial: str) -> list[str]:
        if not self.private:
            return argv
        cache = self.base / f"cache-{trial}"
        cache.mkdir(parents=True, exist_ok=True)
        quoted = " ".join(_sh(a) for a in argv)
        return [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f"mount --bind {_sh(str(cache))} {SKOPEO_CACHE} && exec {quoted}",
        ]


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- helpers ------------------------------------------------------------------------------------------


def mirror_sync_config(
    path: Path, src: Registry, dests: list[Registry], prefix: str, *, every: str | None = None
) -> Path:
    """``every``: a schedule interval (serve mode), without jitter."""
    lines = ["version: 1", "concurrency: 64", "registries:"]
    for reg in [src, *dests]:
        lines.append(f'  "{reg.host}": {{plain_http: true, max_concurrency: 32}}')
    lines += ["jobs:", "  - name: fleet", f"    source: {src.host}/{prefix}/*", "    destinations:"]
    lines += [f'      - "{d.host}/mirror"' for d in dests]
    if every:
        lines.append(f"    schedule: {{interval: {every}, jitter: 0}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def skopeo_sync_config(path: Path, src: Registry, images: list[w.Image]) -> Path:
    repos = sorted({i.repository for i in images})
    doc = {src.host: {"tls-verify": False, "images-by-tag-regex": dict.fromkeys(repos, ".*")}}
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


def check_copied(reg: Registry, images: list[w.Image], rename: Callable[[str], str]) -> bool:
    """Every image is at the destination under its tag, with the source's digest."""
    for image in images:
        url = f"http://{reg.host}/v2/{rename(image.repository)}/manifests/{image.tag}"
        req = urllib.request.Request(
            url, method="HEAD", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.headers.get("Docker-Content-Digest") != str(image.digest):
                    return False
        except OSError:
            return False
    return True


def mirror_report(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def as_mirror_repo(repo: str) -> str:
    return "mirror/" + repo.rsplit("/", 1)[-1]


# -- scenarios -----------------------------------------------------------------------------------------


@dataclass
class Context:
    regs: Registries
    tmp: Path
    runs: int
    quick: bool
    skopeo: SkopeoCache
    tb_size: int
    intrinsic_sizes: list[int]


def fleet_spec(quick: bool) -> w.FleetSpec:
    if quick:
        return w.FleetSpec(
            repos=8, tags=2, bases=2, base_size=8 * MiB, repo_size=2 * MiB, tag_size=512 * 1024
        )
    return w.FleetSpec()


def scenario_fleet(ctx: Context) -> dict[str, Any]:
    spec = fleet_spec(ctx.quick)
    images = spec.images()
    src = ctx.regs.start()
    seeded = w.push(src.host, images)
    say(
        f"  fleet: {len(images)} images in {spec.repos} repositories, unique "
        f"{w.unique_bytes(images) / MiB:.0f} MiB, referenced {w.referenced_bytes(images) / MiB:.0f} MiB "
        f"(seeded in {seeded:.1f}s)"
    )
    skopeo_cfg = skopeo_sync_config(ctx.tmp / "skopeo-fleet.yaml", src, images)
    cold: list[Sample] = []
    warm: list[Sample] = []
    passes: list[float] = []
    for i, tool in enumerate(alternate(["mirror", "skopeo sync"], ctx.runs)):
        dst = ctx.regs.start()
        for phase, into in (("cold", cold), ("warm", warm)):
            watch = TrafficWatch(src, [dst])
            cpu0 = src.cpu_seconds() + dst.cpu_seconds()
            if tool == "mirror":
                cfg = mirror_sync_config(ctx.tmp / f"fleet-{i}.yaml", src, [dst], spec.prefix)
                report = ctx.tmp / f"fleet-{i}-{phase}.json"
                stats = run_measured(
                    [PY, "-m", "mirror", "sync", "--once", "--config", str(cfg), "--report", str(report)],
                    timeout=1800,
                    cwd=ROOT,
                )
                doc = mirror_report(report).get("totals", {})
                extra = {
                    "own_requests": doc.get("requests", 0),
                    "bytes_read_reported": doc.get("bytes_read", 0),
                }
            else:
                argv = _skopeo_sync_argv(skopeo_cfg, dst.host)
                stats = run_measured(ctx.skopeo.wrap(argv, f"fleet-{i}"), timeout=3600)
                extra = {}
            traffic = watch.collect()
            extra["registry_cpu"] = round(src.cpu_seconds() + dst.cpu_seconds() - cpu0, 2)
            ok = stats.returncode == 0 and (phase == "warm" or check_copied(dst, images, as_mirror_repo))
            into.append(sample(tool, stats, traffic, ok, **extra))
            say(
                f"    {phase} {tool}: {stats.wall:.2f}s, {traffic.requests} requests, "
                f"rss {stats.peak_rss / MiB:.0f} MiB"
            )
        if tool == "mirror":
            # The same warm pass from a resident daemon (serve mode): no start-up per pass.
            cfg = mirror_sync_config(ctx.tmp / f"fleet-{i}-serve.yaml", src, [dst], spec.prefix, every="2s")
            got = serve_passes(cfg, ctx.tmp / f"fleet-{i}-serve.json", count=4)
            passes.extend(got)
            say(f"    warm mirror (serve): passes of {', '.join(f'{p:.2f}' for p in got)}s")
        dst.destroy()
    src.destroy()
    workload = {
        "images": len(images),
        "repositories": spec.repos,
        "tags": spec.tags,
        "bases": spec.bases,
        "unique_bytes": w.unique_bytes(images),
        "referenced_bytes": w.referenced_bytes(images),
        "sizes": {"base": spec.base_size, "repo": spec.repo_size, "tag": spec.tag_size},
    }
    warm_summary = _summary(warm, workload, "skopeo sync")
    if passes:
        warm_summary["serve_passes"] = {"median": round(statistics.median(passes), 3), "passes": passes}
    return {"fleet-cold": _summary(cold, workload, "skopeo sync"), "fleet-warm": warm_summary}


def serve_passes(config: Path, report: Path, *, count: int, timeout: float = 300.0) -> list[float]:
    """Run ``mirror sync`` in serve mode until it has written ``count`` reports; each report's
    ``duration_seconds`` is one pass, timed by mirror from planning to the last manifest."""
    proc = subprocess.Popen(
        [PY, "-m", "mirror", "sync", "--config", str(config), "--report", str(report)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    durations: list[float] = []
    seen: int | None = None
    deadline = time.monotonic() + timeout
    try:
        while len(durations) < count and time.monotonic() < deadline and proc.poll() is None:
            stamp = report.stat().st_mtime_ns if report.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                doc = json.loads(report.read_text())
                if doc.get("ok"):
                    durations.append(float(doc["totals"]["duration_seconds"]))
            time.sleep(0.02)
    finally:
        terminate(proc)
    return durations


def scenario_fanout(ctx: Context) -> dict[str, Any]:
    spec = fleet_spec(ctx.quick)
    images = spec.images()
    src = ctx.regs.start()
    w.push(src.host, images)
    skopeo_cfg = skopeo_sync_config(ctx.tmp / "skopeo-fanout.yaml", src, images)
    samples: list[Sample] = []
    for i, tool in enumerate(alternate(["mirror", "skopeo sync x3"], ctx.runs)):
        dests = [ctx.regs.start() for _ in range(3)]
        watch = TrafficWatch(src, dests)
        cpu0 = sum(r.cpu_seconds() for r in [src, *dests])
        if tool == "mirror":
            cfg = mirror_sync_config(ctx.tmp / f"fanout-{i}.yaml", src, dests, spec.prefix)
            stats = run_measured(
                [PY, "-m", "mirror", "sync", "--once", "--config", str(cfg)], timeout=3600, cwd=ROOT
            )
        else:
            parts = []
            for d in dests:
                argv = _skopeo_sync_argv(skopeo_cfg, d.host)
                parts.append(" ".join(_sh(a) for a in ctx.skopeo.wrap(argv, f"fanout-{i}")))
            stats = run_measured(["sh", "-c", " && ".join(parts)], timeout=3600)
        traffic = watch.collect()
        registry_cpu = round(sum(r.cpu_seconds() for r in [src, *dests]) - cpu0, 2)
        ok = stats.returncode == 0 and all(check_copied(d, images, as_mirror_repo) for d in dests)
        samples.append(sample(tool, stats, traffic, ok, registry_cpu=registry_cpu))
        say(f"    {tool}: {stats.wall:.2f}s, source bytes {traffic.source_blob_get_bytes / MiB:.0f} MiB")
        for d in dests:
            d.destroy()
    src.destroy()
    workload = {"images": len(images), "destinations": 3, "unique_bytes": w.unique_bytes(images)}
    return {"fan-out": _summary(samples, workload, "skopeo sync x3")}


def scenario_big_blob(ctx: Context) -> dict[str, Any]:
    size = 512 * MiB if ctx.quick else 2 * GiB + 256 * MiB
    image = w.big_image(size)
    layer = image.blobs[1]
    src = ctx.regs.start()
    seeded = w.push(src.host, [image])
    say(f"  big blob: {size / GiB:.2f} GiB layer (seeded in {seeded:.1f}s)")
    samples: list[Sample] = []
    ref = f"{image.repository}:{image.tag}"
    for i, tool in enumerate(alternate(["mirror", "skopeo copy", "curl pipe"], ctx.runs)):
        dst = ctx.regs.start()
        watch = TrafficWatch(src, [dst])
        cpu0 = (src.cpu_seconds(), dst.cpu_seconds())
        extra: dict[str, Any] = {}
        if tool == "mirror":
            report = ctx.tmp / f"big-{i}.json"
            stats = run_measured(
                [
                    PY,
                    "-m",
                    "mirror",
                    "copy",
                    f"{src.host}/{ref}",
                    f"{dst.host}/{ref}",
                    "-q",
                    "--report",
                    str(report),
                ],
                timeout=1800,
                cwd=ROOT,
            )
            extra["own_requests"] = mirror_report(report).get("requests", 0)
            ok = stats.returncode == 0 and check_copied(dst, [image], lambda r: r)
        elif tool == "skopeo copy":
            argv = [
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                f"docker://{src.host}/{ref}",
                f"docker://{dst.host}/{ref}",
            ]
            stats = run_measured(ctx.skopeo.wrap(argv, f"big-{i}"), timeout=1800)
            ok = stats.returncode == 0 and check_copied(dst, [image], lambda r: r)
        else:
            location = _open_upload(dst, image.repository)
            sep = "&" if "?" in location else "?"
            put_url = f"http://{dst.host}{location}{sep}digest={layer.digest}"
            stats = run_measured(
                [
                    [
                        "curl",
                        "-sS",
                        "--fail",
                        f"http://{src.host}/v2/{image.repository}/blobs/{layer.digest}",
                    ],
                    [
                        "curl",
                        "-sS",
                        "--fail",
                        "-X",
                        "PUT",
                        "-T",
                        "-",
                        "-H",
                        f"Content-Length: {layer.size}",
                        "-H",
                        "Transfer-Encoding:",
                        "-H",
                        "Content-Type: application/octet-stream",
                        "-o",
                        "/dev/null",
                        put_url,
                    ],
                ],
                timeout=1800,
            )
            ok = stats.returncode == 0 and _has_blob(dst, image.repository, str(layer.digest))
        traffic = watch.collect()
        extra["registry_cpu"] = round(src.cpu_seconds() - cpu0[0] + dst.cpu_seconds() - cpu0[1], 2)
        samples.append(sample(tool, stats, traffic, ok, **extra))
        say(
            f"    {tool}: {stats.wall:.2f}s ({size / stats.wall / 1e6:.0f} MB/s), "
            f"rss {stats.peak_rss / MiB:.0f} MiB"
        )
        dst.destroy()
    src.destroy()
    return {"big-blob": _summary(samples, {"layer_bytes": size}, "curl pipe")}


def _open_upload(reg: Registry, repository: str) -> str:
    req = urllib.request.Request(f"http://{reg.host}/v2/{repository}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Location"]).replace(f"http://{reg.host}", "")


def _has_blob(reg: Registry, repository: str, digest: str) -> bool:
    req = urllib.request.Request(f"http://{reg.host}/v2/{repository}/blobs/{digest}", method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status == 200
    except OSError:
        return False


class SyntheticServer:
    """A synthetic registry process (see :mod:`benchmarks.synthetic_server`)."""

    def __init__(
        self, seed: str, size: int, *, token_ttl: float | None = None, stop_after: float = 6 * 3600
    ) -> None:
        digest = w.cached_digest(seed, size)
        self.digest = digest
        argv = [
            PY,
            "-m",
            "benchmarks.synthetic_server",
            "--seed",
            seed,
            "--size",
            str(size),
            "--digest",
            str(digest),
            "--stop-after",
            str(stop_after),
        ]
        if token_ttl:
            argv += ["--token-ttl", str(token_ttl)]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            terminate(self.proc)
            raise RuntimeError("synthetic server did not start")
        self.port = int(line.split()[1])
        self.host = f"127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.host}/_stats", timeout=30) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        terminate(self.proc)


class RssSampler:
    """Samples a process's resident memory every ``interval`` seconds (for long runs)."""

    def __init__(self, pid: int, interval: float = 5.0, *, child: bool = False) -> None:
        self.pid, self.interval, self.child = pid, interval, child
        self.values: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                pid = self.pid
                if self.child:  # the process started by the one we launched (under GNU time)
                    pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.values.append(int(line.split()[1]) * 1024)
            except (IndexError, ValueError):
                continue  # not started yet
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _synthetic_copy(
    source: SyntheticServer, sink: SyntheticServer, tag: str, report: Path, timeout: float
) -> tuple[ProcessStats, dict[str, Any]]:
    stats = run_measured(
        [
            PY,
            "-m",
            "mirror",
            "copy",
            f"{source.host}/synthetic/blob:latest",
            f"{sink.host}/sink/{tag}:v1",
            "-q",
            "--report",
            str(report),
        ],
        timeout=timeout,
        cwd=ROOT,
    )
    return stats, mirror_report(report)


def scenario_intrinsic(ctx: Context) -> dict[str, Any]:
    samples: list[Sample] = []
    for size in ctx.intrinsic_sizes:
        source = SyntheticServer("intrinsic", size)
        sink = SyntheticServer("sink", 1)
        try:
            for i in range(ctx.runs):
                c0 = source.cpu_seconds() + sink.cpu_seconds()
                stats, doc = _synthetic_copy(
                    source, sink, f"i{size}-{i}", ctx.tmp / "intrinsic.json", timeout=max(600, size / 50e6)
                )
                seconds = float(doc.get("duration_seconds") or 0) or stats.wall
                rate = doc.get("bytes_read", 0) / seconds if seconds else 0.0
                ok = stats.returncode == 0 and doc.get("status") == "copied"
                s = sample(
                    f"{size // GiB} GiB",
                    stats,
                    None,
                    ok,
                    bytes_per_second=round(rate),
                    copy_seconds=round(seconds, 3),
                    requests=doc.get("requests", 0),
                    servers_cpu=round(source.cpu_seconds() + sink.cpu_seconds() - c0, 2),
                )
                samples.append(s)
                say(
                    f"    {size // GiB} GiB: {rate / 1e6:.0f} MB/s, rss {stats.peak_rss / MiB:.1f} MiB, "
                    f"cpu {stats.cpu:.1f}s"
                )
        finally:
            source.close()
            sink.close()
    rows = medians(samples)
    rss = [r["peak_rss"] for r in rows.values()]
    return {
        "intrinsic": {
            "workload": {
                "sizes": ctx.intrinsic_sizes,
                "path": "synthetic source -> mirror copy -> discarding sink",
            },
            "tools": rows,
            "samples": [s.as_dict() for s in samples],
            "rss_spread": max(rss) - min(rss) if rss else 0,
            "best_rate": max((r.get("bytes_per_second", 0) for r in rows.values()), default=0),
        }
    }


def scenario_multi_tb(ctx: Context) -> dict[str, Any]:
    size = ctx.tb_size
    ttl = 600.0
    say(f"  multi-TB: {size / 2**40:.2f} TiB through the synthetic path, token TTL {ttl:.0f}s")
    source = SyntheticServer("multitb", size, token_ttl=ttl, stop_after=24 * 3600)
    sink = SyntheticServer("sink", 1, token_ttl=ttl, stop_after=24 * 3600)
    report = ctx.tmp / "multitb.json"
    load_start = loadavg()
    try:
        timing = ctx.tmp / "multitb.time"
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", str(timing)]  # see measure.py on peak RSS
        argv += [PY, "-m", "mirror", "copy", f"{source.host}/synthetic/blob:latest"]
        argv += [f"{sink.host}/sink/multitb:v1", "-q", "--report", str(report)]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = RssSampler(proc.pid, interval=10.0, child=True)
        began = time.monotonic()
        proc.wait()
        wall = time.monotonic() - began
        sampler.stop()
        stderr = proc.stderr.read() if proc.stderr else ""
        rss_kib, user, system = timing.read_text().strip().splitlines()[-1].split()
        doc = mirror_report(report)
        src_stats, sink_stats = source.stats(), sink.stats()
    finally:
        source.close()
        sink.close()
    seconds = float(doc.get("duration_seconds") or 0) or wall
    rate = doc.get("bytes_read", 0) / seconds if seconds else 0.0
    performed = src_stats["tokens_issued"] + sink_stats["tokens_issued"]
    # The fewest token fetches this request sequence allows: one per scope at the start (source
    # pull; sink pull for HEADs; sink push for POST/PUT) and one more for the sink push scope
    # when the manifest PUT comes after that token has expired.
    minimum = 3 + (1 if seconds > ttl else 0)
    rss = sampler.values
    result = {
        "size": size,
        "ok": proc.returncode == 0 and doc.get("status") == "copied",
        "error": stderr[-500:] if proc.returncode else "",
        "seconds": round(seconds, 1),
        "wall": round(wall, 1),
        "bytes_per_second": round(rate),
        "peak_rss": int(rss_kib) * 1024,
        "rss_samples": len(rss),
        "rss_min": min(rss) if rss else 0,
        "rss_max": max(rss) if rss else 0,
        "cpu": round(float(user) + float(system), 1),
        "requests": doc.get("requests", 0),
        "token_ttl": ttl,
        "token_fetches_performed": performed,
        "token_fetches_minimum": minimum,
        "token_scopes": {
            **src_stats["token_scopes"],
            **{f"sink {k}": v for k, v in sink_stats["token_scopes"].items()},
        },
        "expired_tokens_presented": src_stats["expired_rejected"] + sink_stats["expired_rejected"],
        "projected_5tb_seconds": round(5e12 / rate) if rate else None,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "load_start_end": [load_start, loadavg()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multitb.json").write_text(json.dumps(result, indent=1) + "\n")
    return {"multi-tb": result}


def _summary(samples: list[Sample], workload: dict[str, Any], peer: str) -> dict[str, Any]:
    rows = medians(samples)
    ratios: dict[str, float] = {}
    base = rows.get(peer)
    if base:
        for tool, row in rows.items():
            if tool != peer and base["wall"]:
                ratios[f"{tool} / {peer} wall"] = round(row["wall"] / base["wall"], 3)
    return {"workload": workload, "tools": rows, "ratios": ratios, "samples": [s.as_dict() for s in samples]}


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "fleet": scenario_fleet,
    "fan-out": scenario_fanout,
    "big-blob": scenario_big_blob,
    "intrinsic": scenario_intrinsic,
    "multi-tb": scenario_multi_tb,
    "scale": lambda ctx: scenario_scale(ctx.tmp, ctx.quick, say, loadavg),
    "resume": lambda ctx: scenario_resume(ctx.tmp, ctx.quick, say),
    "events": lambda ctx: scenario_events(ctx.regs, ctx.quick, say),
}
DEFAULT = ["fleet", "fan-out", "big-blob", "intrinsic"]


# -- targets and the table ------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, want: str, got: str, met: bool) -> None:
        out.append({"target": name, "want": want, "got": got, "met": met})

    def tool(scn: str, name: str) -> dict[str, Any]:
        return results.get(scn, {}).get("tools", {}).get(name, {})

    cold = results.get("fleet-cold")
    if cold:
        m, s = tool("fleet-cold", "mirror"), tool("fleet-cold", "skopeo sync")
        r = m["wall"] / s["wall"]
        add("fleet cold: wall vs skopeo sync", "<= 0.33", f"{r:.2f}", r <= 0.33)
        add(
            "fleet cold: duplicate source blob GETs",
            "0",
            str(m.get("duplicate_source_blob_gets")),
            m.get("duplicate_source_blob_gets") == 0,
        )
    if results.get("fleet-warm"):
        m, s = tool("fleet-warm", "mirror"), tool("fleet-warm", "skopeo sync")
        r = m["wall"] / s["wall"]
        add("fleet warm: wall vs skopeo sync", "<= 0.2", f"{r:.2f}", r <= 0.2)
        add("fleet warm one-shot: wall vs skopeo sync", "<= 0.5", f"{r:.2f}", r <= 0.5)
    fan = results.get("fan-out")
    if fan:
        m = tool("fan-out", "mirror")
        unique = fan["workload"]["unique_bytes"]
        got = m.get("source_blob_get_bytes", -1)
        add("fan-out: source bytes == unique bytes", str(unique), str(int(got)), got == unique)
    big = results.get("big-blob")
    if big:
        m, c = tool("big-blob", "mirror"), tool("big-blob", "curl pipe")
        r = m["wall"] / c["wall"]
        add("big blob: wall vs curl pipe", "<= 1.10", f"{r:.2f}", r <= 1.10)
        add(
            "big blob: mirror peak RSS",
            "<= 100 MiB",
            f"{m['peak_rss'] / MiB:.1f} MiB",
            m["peak_rss"] <= 100 * MiB,
        )
    intr = results.get("intrinsic")
    if intr:
        best = intr["best_rate"]
        add("intrinsic: throughput", ">= 800 MB/s", f"{best / 1e6:.0f} MB/s", best >= 800e6)
        spread = intr["rss_spread"]
        sizes = ", ".join(f"{s // GiB}" for s in intr["workload"]["sizes"])
        add(
            f"intrinsic: peak RSS flat over {sizes} GiB",
            "<= 20 MiB spread",
            f"{spread / MiB:.1f} MiB",
            spread <= 20 * MiB,
        )
    out.extend(scale_targets(results.get("scale")))
    out.extend(resume_targets(results.get("resume")))
    out.extend(events_targets(results.get("events")))
    return out


def scale_targets(scale: dict[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not scale:
        return out
    for phase, limit in (("warm", 150), ("cold", 250)):
        rows = [r for r in scale["rows"] if r["phase"] == phase]
        if not rows:
            continue
        big = max(rows, key=lambda r: r["tags"])
        rss = big["peak_rss"] / MiB
        ok = big["ok"] and rss <= limit
        got = f"{rss:.0f} MiB{'' if big['ok'] else ' (FAILED)'}"
        out.append(
            {
                "target": f"scale {phase} {big['tags']} tags: peak RSS",
                "want": f"<= {limit} MiB",
                "got": got,
                "met": ok,
            }
        )
        if phase == "warm":
            heads = big["source_manifest_heads"], big["destination_manifest_heads"], big["other_requests"]
            ok = heads[0] <= big["tags"] and heads[1] <= big["tags"] and heads[2] == 0
            out.append(
                {
                    "target": f"scale warm {big['tags']} tags: requests",
                    "want": f"<= {big['tags']} HEADs per side + listings",
                    "got": f"{heads[0]} + {heads[1]} HEADs, {big['listings']} listings, {heads[2]} other",
                    "met": ok,
                }
            )
    return out


def scale_table(scale: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| scale (synthetic fleet, `mirror sync --once`) | tags | wall s | tags/s | peak RSS | CPU s "
        "| requests | source HEADs | destination HEADs | listings | other | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in scale["rows"]:
        load = r.get("load_start_end", [0, 0])
        lines.append(
            f"| {r['phase']}{'' if r['ok'] else ' (FAILED)'} | {r['tags']} | {r['wall']:.1f} | "
            f"{r['tags_per_second']:.0f} | {r['peak_rss'] / MiB:.0f} MiB | {r['cpu']:.1f} | "
            f"{r['requests']} | "
            f"{r['source_manifest_heads']} | {r['destination_manifest_heads']} | {r['listings']} | "
            f"{r['other_requests']} | {load[0]:.1f} -> {load[1]:.1f} |"
        )
    slopes = scale.get("slopes", {})
    if slopes:
        lines += [
            "",
            "peak RSS slope: " + ", ".join(f"{k} {v / 1024:.2f} KiB per tag" for k, v in slopes.items()),
        ]
    return lines


def _mb(n: float) -> str:
    return f"{n / MiB:.0f} MiB"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"Run {doc['date']} on {m['nproc']} x {m['cpu']}, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; {m['skopeo']}; {m['docker_registry']}; commit {doc['commit']}; "
        f"{doc['runs']} alternating runs per tool, medians{' (quick sizes)' if doc['quick'] else ''}; "
        f"load average {doc['load_start']:.1f} at start, {doc['load_end']:.1f} at end.",
        *(
            f"Re-run into these results: {', '.join(m['scenarios'])} on {m['date']} at commit "
            f"{m['commit']}, {m['runs']} runs per tool, load average {m['load_start']:.1f} -> "
            f"{m['load_end']:.1f}."
            for m in doc.get("merged", [])
        ),
    ]
    res = doc["results"]
    if any(res.get(scn) for scn in ("fleet-cold", "fleet-warm", "fan-out", "big-blob")):
        lines += [
            "",
            "| scenario | tool | wall s | vs peer | peak RSS | CPU s | registries CPU s | requests "
            "| source bytes read | unique bytes | dup blob GETs |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for scn in ("fleet-cold", "fleet-warm", "fan-out", "big-blob"):
        block = res.get(scn)
        if not block:
            continue
        tools = block["tools"]
        peer = list(tools)[-1]
        unique = block["workload"].get("unique_bytes") or block["workload"].get("layer_bytes", 0)
        for name, row in tools.items():
            ratio = row["wall"] / tools[peer]["wall"] if name != peer else 1.0
            lines.append(
                f"| {scn} | {name}{'' if row['ok'] else ' (FAILED)'} | {row['wall']:.2f} | {ratio:.2f} | "
                f"{_mb(row['peak_rss'])} | {row['cpu']:.1f} | {row.get('registry_cpu', 0):.1f} | "
                f"{int(row.get('requests', 0))} | "
                f"{_mb(row.get('source_blob_get_bytes', 0))} | {_mb(unique)} | "
                f"{int(row.get('duplicate_source_blob_gets', 0))} |"
            )
    serve = (res.get("fleet-warm") or {}).get("serve_passes")
    if serve:
        peer_wall = res["fleet-warm"]["tools"].get("skopeo sync", {}).get("wall") or 0.0
        share = f" = {serve['median'] / peer_wall:.2f} x skopeo sync's one-shot warm run" if peer_wall else ""
        lines += [
            "",
            f"fleet warm from a resident daemon (`mirror sync` serve mode, a pass every 2 s, median of "
            f"{len(serve['passes'])} passes, timed by mirror from planning to the end): "
            f"{serve['median']:.2f} s per pass{share}; no process start-up per pass.",
        ]
    intr = res.get("intrinsic")
    if intr:
        lines += [
            "",
            "| intrinsic (synthetic source -> mirror copy -> sink) | throughput | copy s | peak RSS | "
            "mirror CPU s | servers CPU s | requests |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in intr["tools"].items():
            lines.append(
                f"| {name} | {row['bytes_per_second'] / 1e6:.0f} MB/s | {row['copy_seconds']:.1f} | "
                f"{row['peak_rss'] / MiB:.1f} MiB | {row['cpu']:.1f} | {row['servers_cpu']:.1f} | "
                f"{int(row['requests'])} |"
            )
    if res.get("scale"):
        lines += scale_table(res["scale"])
    if res.get("resume"):
        lines += resume_table(res["resume"])
    if res.get("events"):
        lines += events_table(res["events"])
    tb = res.get("multi-tb") or _stored_multitb()
    if tb:
        proj = tb.get("projected_5tb_seconds") or 0
        lines += [
            "",
            f"multi-TB ({tb.get('date', '')}, commit {tb.get('commit', '')}): "
            f"{tb['size'] / 2**40:.2f} TiB in {tb['seconds'] / 60:.1f} min = "
            f"{tb['bytes_per_second'] / 1e6:.0f} MB/s{'' if tb['ok'] else ' (FAILED)'}; "
            f"peak RSS {tb['peak_rss'] / MiB:.1f} MiB (sampled every 10 s: "
            f"{tb['rss_min'] / MiB:.1f}-{tb['rss_max'] / MiB:.1f} MiB); token TTL {tb['token_ttl']:.0f} s: "
            f"{tb['token_fetches_performed']} token fetches performed, {tb['token_fetches_minimum']} the "
            f"minimum, {tb['expired_tokens_presented']} expired tokens presented; {tb['requests']} requests; "
            f"a 5 TB artifact at this rate: {proj / 3600:.2f} h.",
        ]
    if doc.get("targets"):
        lines += ["", "| target | want | got | met |", "|---|---|---|---|"]
        for t in doc["targets"]:
            lines.append(f"| {t['target']} | {t['want']} | {t['got']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def _stored_multitb() -> dict[str, Any] | None:
    path = RESULTS / "multitb.json"
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


# -- main ------------------------------------------------------------------------------------------------


def _size(text: str) -> int:
    from mirror.types.sizes import parse_size

    return parse_size(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default: all but multi-tb"
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes, one run each (a smoke run, not a result)"
    )
    p.add_argument("--runs", type=int, default=None, help="runs per tool (default 3, quick 1)")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    p.add_argument(
        "--tb-size", type=_size, default=2**40, help="size for multi-tb (default 1TiB; up to 5TiB)"
    )
    p.add_argument("--intrinsic-sizes", default=None, help="comma-separated GiB (default 1,8,64; quick 1,2)")
    p.add_argument("--no-save", action="store_true", help="do not overwrite results/latest.*")
    p.add_argument(
        "--merge",
        action="store_true",
        help="replace only the scenarios run here in results/latest.* (the rest keep their run)",
    )
    args = p.parse_args(argv)
    if args.merge and (args.quick or args.no_save):
        p.error("--merge replaces scenarios in the saved full results: not with --quick or --no-save")
    if args.tb_size > 5 * 2**40:
        p.error("--tb-size: at most 5TiB")
    scenarios = args.scenario or DEFAULT
    runs = args.runs or (1 if args.quick else 3)
    sizes_text = args.intrinsic_sizes or ("1,2" if args.quick else "1,8,64")
    intrinsic_sizes = [int(float(x) * GiB) for x in sizes_text.split(",")]
    if not shutil.which("skopeo") and any(s in scenarios for s in ("fleet", "fan-out", "big-blob")):
        p.error("skopeo is needed (apt-get install skopeo)")
    # An installed mirror has its bytecode (pip compiles it); a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would recompile every module at each start. Measure the former.
    compileall.compile_dir(str(ROOT / "mirror"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-run-"))
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": machine(),
        "runs": runs,
        "quick": args.quick,
        "scenarios": scenarios,
        "load_start": loadavg(),
        "results": {},
    }
    began = time.monotonic()
    try:
        with Registries() as regs:
            ctx = Context(
                regs, tmp, runs, args.quick, SkopeoCache(tmp / "skopeo"), args.tb_size, intrinsic_sizes
            )
            doc["skopeo_private_cache"] = ctx.skopeo.private
            for name in scenarios:
                say(f"== {name}")
                doc["results"].update(SCENARIOS[name](ctx))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc["load_end"] = loadavg()
    doc["seconds"] = round(time.monotonic() - began, 1)
    if args.merge and (RESULTS / "latest.json").exists():
        doc = merge_into(json.loads((RESULTS / "latest.json").read_text()), doc)
    doc["targets"] = targets(doc["results"])
    table = markdown(doc)
    print(table)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "latest.json").write_text(json.dumps(doc, indent=1) + "\n")
        (RESULTS / "latest.md").write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def merge_into(base: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a saved run) with the scenarios of ``run`` replaced, and a note saying so."""
    merged = dict(base)
    merged["results"] = {**base["results"], **run["results"]}
    note = {k: run[k] for k in ("scenarios", "date", "commit", "runs", "load_start", "load_end")}
    merged["merged"] = [
        m for m in base.get("merged", []) if not set(m["scenarios"]) <= set(run["scenarios"])
    ] + [note]
    return merged


def _skopeo_sync_argv(config: Path, host: str) -> list[str]:
    """`skopeo sync` of the repositories listed in ``config`` into ``host``/mirror."""
    return [
        "skopeo",
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        str(config),
        f"{host}/mirror",
    ]


if __name__ == "__main__":
    sys.exit(main())
