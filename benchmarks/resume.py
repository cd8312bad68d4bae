"""The ``resume`` scenario: ``mirror copy`` of a 2 GiB blob whose source connection is reset.

The synthetic source (:mod:`benchmarks.synthetic_server`, ranges supported) cuts the layer's
read at a fraction of its size (``--reset-at``: the connection aborted, once per offset); the
sink hashes what it receives (``--verify``) and refuses a wrong digest. Cases: no reset, a reset
at 90%, 50% and 25%, and two resets in one blob (25% and 75%). Measured on the servers: the
layer bytes the source sent (every read, whole or ranged), the layer PUTs the sink received,
whether the sink verified the digest; wall time and peak RSS under GNU time.

Side by side, in the same run: ``skopeo copy --retry-times 3`` of the same image from the same
kind of source (each case its own server, the same resets) into a ``dir:`` directory, and, when
it fails, run again as a scheduler would (up to 3 runs); measured the same way on the source:
every layer byte it sent. What is compared is what the source had to send, which does not depend
on the destination.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks import workload as w
from benchmarks.intrinsic import synthetic_copy
from benchmarks.measure import run_measured
from benchmarks.synthetic_process import SyntheticProcess
from mirror.types.digest import Digest

GiB = 1024**3
MiB = 1024**2
SIZE = 2 * GiB
QUICK_SIZE = 256 * MiB
CASES: list[tuple[str, list[float]]] = [
    ("no reset", []),
    ("reset at 90%", [0.9]),
    ("reset at 50%", [0.5]),
    ("reset at 25%", [0.25]),
    ("resets at 25% and 75%", [0.25, 0.75]),
]


def scenario_resume(tmp: Path, quick: bool, say: Any) -> dict[str, Any]:
    size = QUICK_SIZE if quick else SIZE
    skopeo = shutil.which("skopeo") is not None
    digest = w.cached_digest("resume", size)
    rows: list[dict[str, Any]] = []
    for name, fractions in CASES:
        offsets = [int(size * f) for f in fractions]
        source = resetting_source(size, digest, offsets)
        sink = SyntheticProcess(["--verify"], stop_after=3600)
        report = tmp / "resume.json"
        try:
            stats, doc = synthetic_copy(source, sink, "resume", report, timeout=1800)
            src, dst = source.stats(), sink.stats()
        finally:
            source.close()
            sink.close()
        read = sum(sent for _, sent in src["layer_gets"])
        puts = dst["received_digests"].count(str(digest))
        verified = puts == 1 and dst["digest_rejected"] == 0 and dst["blobs_received"] >= 1
        row = {
            "case": name,
            "size": size,
            "reset_offsets": offsets,
            "ok": stats.returncode == 0 and doc.get("status") == "copied" and verified,
            "wall": round(stats.wall, 2),
            "peak_rss": stats.peak_rss,
            "cpu": round(stats.cpu, 1),
            "source_layer_bytes": read,
            "read_ratio": round(read / size, 4),
            "layer_reads": src["layer_gets"],
            "resets_fired": src["resets"],
            "destination_puts": puts,
            "digest_verified": verified,
            "blob_resumes": doc.get("totals", {}).get("blob_resumes", 0),
        }
        if skopeo:
            row["skopeo"] = skopeo_case(tmp, size, digest, offsets)
        rows.append(row)
        say(
            f"    {name}: {row['read_ratio']:.3f} x the blob read, {puts} PUT, "
            f"{len(src['layer_gets'])} reads, {stats.wall:.1f}s{'' if row['ok'] else ' FAILED'}"
        )
        if skopeo:
            sk = row["skopeo"]
            say(
                f"      skopeo copy: {sk['read_ratio']:.3f} x the blob read, {sk['runs']} runs, ok={sk['ok']}"
            )
    return {"resume": {"workload": {"size": size}, "rows": rows}}


def resetting_source(size: int, digest: Digest, offsets: list[int]) -> SyntheticProcess:
    """The synthetic source of the resume image, cutting the layer's read once at each offset."""
    return SyntheticProcess(
        ["--seed", "resume", "--size", str(size), "--digest", str(digest)]
        + (["--reset-at", ",".join(map(str, offsets))] if offsets else []),
        stop_after=3600,
    )


SKOPEO_RUNS = 3


def skopeo_case(tmp: Path, size: int, digest: Digest, offsets: list[int]) -> dict[str, Any]:
    """skopeo copy from a source with the same resets, run again after a failure (up to
    :data:`SKOPEO_RUNS` runs): the layer bytes the source sent, the runs, the first error."""
    source = resetting_source(size, digest, offsets)
    out = tmp / "skopeo-resume"
    runs, errors, wall, ok = 0, [], 0.0, False
    try:
        while runs < SKOPEO_RUNS and not ok:
            runs += 1
            shutil.rmtree(out, ignore_errors=True)
            argv = [
                "skopeo",
                "copy",
                "--retry-times",
                "3",
                "--src-tls-verify=false",
                f"docker://{source.host}/synthetic/blob:latest",
                f"dir:{out}",
            ]
            stats = run_measured(argv, timeout=1800)
            wall += stats.wall
            ok = stats.returncode == 0 and _blob_in(out, digest)
            if not ok:
                errors.append(_last_line(stats.stderr))
        sent = source.stats()["layer_gets"]
    finally:
        source.close()
        shutil.rmtree(out, ignore_errors=True)
    read = sum(n for _, n in sent)
    return {
        "ok": ok,
        "runs": runs,
        "errors": errors,
        "source_layer_bytes": read,
        "read_ratio": round(read / size, 4),
        "layer_reads": sent,
        "wall": round(wall, 2),
    }


def _blob_in(directory: Path, digest: Digest) -> bool:
    """skopeo's ``dir:`` names each blob by its hex digest; it verified the digest while writing."""
    return (directory / str(digest).split(":", 1)[1]).is_file()


def _last_line(text: str) -> str:
    """The last line of stderr; of a logrus line (``time=... level=fatal msg="..."``), its message."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    _, found, msg = last.partition(' msg="')
    return (msg.rstrip('"') if found else last)[-300:]


def resume_targets(block: dict[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in (block or {}).get("rows", []):
        if not row["reset_offsets"]:
            continue
        met = (
            row["ok"]
            and row["read_ratio"] <= 1.05
            and row["destination_puts"] == 1
            and row["digest_verified"]
        )
        out.append(
            {
                "target": f"resume, {row['case']} of {row['size'] / GiB:g} GiB",
                "want": "<= 1.05 x read, 1 PUT, verified",
                "got": f"{row['read_ratio']:.3f} x, {row['destination_puts']} PUT, "
                f"{'verified' if row['digest_verified'] else 'NOT verified'}",
                "met": met,
            }
        )
    return out


def resume_table(block: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| resume (synthetic source -> `mirror copy` -> verifying sink) | source bytes read | x blob "
        "| reads (first byte: bytes) | destination PUTs | digest verified | wall s | peak RSS |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    for r in block["rows"]:
        reads = ", ".join(f"{start}: {sent}" for start, sent in r["layer_reads"])
        lines.append(
            f"| {r['case']}{'' if r['ok'] else ' (FAILED)'} | {r['source_layer_bytes']} | "
            f"{r['read_ratio']:.3f} | "
            f"{reads} | {r['destination_puts']} | {'yes' if r['digest_verified'] else 'no'} | "
            f"{r['wall']:.1f} | {r['peak_rss'] / MiB:.0f} MiB |"
        )
    if any("skopeo" in r for r in block["rows"]):
        lines += [
            "",
            "| resume side by side: `skopeo copy --retry-times 3` -> `dir:`, run again after a failure "
            "| source bytes read | x blob | mirror x blob | runs | first error | wall s |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in block["rows"]:
            sk = r.get("skopeo")
            if sk is None:
                continue
            error = sk["errors"][0].replace("|", "/") if sk["errors"] else ""
            lines.append(
                f"| {r['case']}{'' if sk['ok'] else ' (FAILED every run)'} | {sk['source_layer_bytes']} | "
                f"{sk['read_ratio']:.3f} | {r['read_ratio']:.3f} | {sk['runs']} | {error} | "
                f"{sk['wall']:.1f} |"
            )
    return lines
