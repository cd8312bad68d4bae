"""Profile mirror on the benchmark workloads; the evidence behind the README's analysis.

    pip install py-spy pyinstrument     # not dependencies of mirror
    python -m benchmarks.profile intrinsic [--size 2GiB]
    python -m benchmarks.profile big-blob [--size 2GiB]
    python -m benchmarks.profile fleet-cold
    python -m benchmarks.profile fleet-warm

Writes to ``benchmarks/results/``: ``profile-NAME.svg`` (a py-spy flame graph of the mirror
process: every thread, sampled at 100 Hz), ``profile-NAME.txt`` (the heaviest frames, own and
inclusive, from the same samples; for fleet-warm a pyinstrument tree, whose start-up imports
are the point) and, when Linux ``perf`` is present, ``perf-NAME.txt`` (CPU by library and
kernel, which a Python profiler cannot see: hashing in libcrypto, copies in the kernel).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import workload as w
from benchmarks.intrinsic import SyntheticServer
from benchmarks.registries import Registries, Registry
from benchmarks.tools import mirror_sync_config

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
RESULTS = w.RESULTS


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(PY).parent / name)
    if not Path(found).exists():
        sys.exit(f"{name} is not installed: pip install {name}")
    return found


def summarize(raw: Path, out: Path, title: str) -> None:
    """Own and inclusive shares of the heaviest frames in py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            incl[frame] += n
    lines = [
        f"# {title}",
        f"# {total} samples at 100 Hz (py-spy, all threads, idle excluded)",
        "",
        "## threads",
    ]
    lines += [f"{v / total:6.1%}  {k}" for k, v in threads.most_common(6)]
    lines += ["", "## own time (top 25)"]
    lines += [f"{v / total:6.1%}  {k}" for k, v in own.most_common(25)]
    lines += ["", "## inclusive time (top 40)"]
    lines += [f"{v / total:6.1%}  {k}" for k, v in incl.most_common(40)]
    out.write_text("\n".join(lines) + "\n")


def pyspy(name: str, make_argv: Callable[[], list[str]]) -> None:
    """Profile the command ``make_argv()`` returns; it is called once per recording (three runs)."""
    spy = _tool("py-spy")
    svg, raw = RESULTS / f"profile-{name}.svg", RESULTS / f"profile-{name}.raw"
    for fmt, path in (("flamegraph", svg), ("raw", raw)):
        argv = make_argv()
        subprocess.run(
            [
                spy,
                "record",
                "-r",
                "100",
                "--threads",
                "--nonblocking",
                *(["--nolineno"] if fmt == "flamegraph" else []),  # a smaller SVG
                "-f",
                fmt,
                "-o",
                str(path),
                "--",
                *argv,
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    summarize(raw, RESULTS / f"profile-{name}.txt", f"{name}: mirror {' '.join(argv[3:4])}")
    raw.unlink()
    if not shutil.which("perf"):
        return
    data = Path(tempfile.mkdtemp()) / "perf.data"
    subprocess.run(
        ["perf", "record", "-F", "499", "-o", str(data), "--", *make_argv()],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    keep: list[str] = []
    for sort, count in (("dso", 12), ("dso,sym", 30)):
        out = subprocess.run(
            ["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio"],
            capture_output=True,
            text=True,
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        keep += [*lines[:count], ""]
    title = f"# perf: {name}, CPU samples of the mirror process by library, then by symbol\n"
    (RESULTS / f"perf-{name}.txt").write_text(title + "\n".join(keep))
    shutil.rmtree(data.parent, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    p.add_argument("what", choices=["intrinsic", "big-blob", "fleet-cold", "fleet-warm"])
    p.add_argument("--size", default="2GiB")
    args = p.parse_args()
    from mirror.types.sizes import parse_size

    size = parse_size(args.size)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.what == "intrinsic":
        source, sink = SyntheticServer("intrinsic", size), SyntheticServer("sink", 1)
        runs = iter(range(1000))
        try:
            pyspy(
                "intrinsic",
                lambda: [
                    PY,
                    "-m",
                    "mirror",
                    "copy",
                    f"{source.host}/synthetic/blob:latest",
                    f"{sink.host}/sink/p{next(runs)}:v1",
                    "-q",
                ],
            )
        finally:
            source.close()
            sink.close()
        return 0
    with Registries() as regs:
        src = regs.start()
        dests: list[Registry] = []

        def fresh() -> Registry:
            for old in dests:
                old.destroy()
            dests[:] = [regs.start()]
            return dests[0]

        if args.what == "big-blob":
            image = w.big_image(size)
            w.push(src.host, [image])
            ref = f"{image.repository}:{image.tag}"
            pyspy(
                "big-blob",
                lambda: [PY, "-m", "mirror", "copy", f"{src.host}/{ref}", f"{fresh().host}/{ref}", "-q"],
            )
            return 0
        w.push(src.host, w.FleetSpec().images())
        tmp = Path(tempfile.mkdtemp())

        def sync() -> list[str]:
            cfg = mirror_sync_config(tmp / "fleet.yaml", src, [fresh()], "fleet")
            return [PY, "-m", "mirror", "sync", "--once", "--config", str(cfg)]

        if args.what == "fleet-cold":
            pyspy("fleet-cold", sync)
            return 0
        argv = sync()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)  # the destination is now warm
        out = RESULTS / "profile-fleet-warm.txt"
        subprocess.run(
            [_tool("pyinstrument"), "-o", str(out), "-m", "mirror", *argv[3:]],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
