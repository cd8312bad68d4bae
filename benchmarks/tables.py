"""The results as text: the targets (what each scenario should reach, met or not) and the
Markdown tables of ``results/latest.md``."""

from __future__ import annotations

import json
from typing import Any

from benchmarks import workload as w
from benchmarks.events import events_table, events_targets
from benchmarks.resume import resume_table, resume_targets
from benchmarks.scale import scale_table, scale_targets

GiB = 1024**3
MiB = 1024**2
RESULTS = w.RESULTS


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


def floor_lines(warm: dict[str, Any] | None) -> list[str]:
    """What the warm one-shot run cannot go below: the same requests from the leanest aiohttp
    program (:mod:`benchmarks.lean_check`), in the same trials."""
    floor = (warm or {}).get("floor")
    peer_wall = (warm or {}).get("tools", {}).get("skopeo sync", {}).get("wall") or 0.0
    mine = (warm or {}).get("tools", {}).get("mirror", {}).get("wall") or 0.0
    if not floor or not peer_wall:
        return []
    lean = floor["lean_check"]
    return [
        "",
        f"fleet warm floor (medians of {len(floor['runs']['lean'])} samples taken in the mirror trials): "
        f"`python -c 'import asyncio, aiohttp'` {floor['import_asyncio_aiohttp']:.2f} s; "
        f"`benchmarks/lean_check.py`, the same requests as mirror's warm pass and nothing else, "
        f"{lean:.2f} s (its requests {floor['lean_check_requests']:.2f} s) = {lean / peer_wall:.2f} x "
        f"skopeo sync; mirror's one-shot run is {mine - lean:+.2f} s from it.",
    ]


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
    lines += floor_lines(res.get("fleet-warm"))
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
