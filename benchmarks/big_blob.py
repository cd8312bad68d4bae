"""The ``big-blob`` scenario: one image with a 2 GiB+ layer, ``mirror copy`` vs ``skopeo copy``
vs a raw ``curl GET | curl PUT`` pipe between the same two registries."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.measure import TrafficWatch, run_measured
from benchmarks.registries import Registry
from benchmarks.tools import check_copied, mirror_report
from benchmarks.trials import Context, Sample, alternate, sample, say, summary

GiB = 1024**3
MiB = 1024**2
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


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
    return {"big-blob": summary(samples, {"layer_bytes": size}, "curl pipe")}


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
