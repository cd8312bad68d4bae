"""The JSON report of a run and its one-line human summary."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mirror import __version__
from mirror.copy.results import ImageResult, RunStats
from mirror.types.sizes import human_bytes


def build_report(command: str, images: list[ImageResult], stats: RunStats, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "mirror_version": __version__,
        "command": command,
        "ok": all(i.ok for i in images),
        **extra,
        "totals": asdict(stats),
        "images": [i.to_dict() for i in images],
    }
    if command == "copy" and len(images) == 1 and len(images[0].destinations) == 1:
        image, dest = images[0], images[0].destinations[0]
        doc.update(
            source=image.source,
            destination=dest.destination,
            digest=dest.digest or image.digest,
            status=dest.status,
            error=dest.error or image.error,
            bytes_read=stats.bytes_read,
            bytes_written=dest.bytes_written,
            blobs_pushed=dest.blobs_pushed,
            blobs_mounted=dest.blobs_mounted,
            blobs_skipped=dest.blobs_skipped,
            requests=stats.requests,
            duration_seconds=round(stats.duration_seconds, 3),
        )
    return doc


def write_report(path: str | Path, doc: dict[str, Any], redact: Any = None) -> None:
    """Write atomically; ``redact`` (text -> text) scrubs secrets from the serialised form."""
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if redact is not None:
        text = redact(text)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, target)


def summary_lines(images: list[ImageResult], stats: RunStats) -> list[str]:
    lines = []
    for image in images:
        if image.error:
            lines.append(f"{'FAILED':9}{image.source}: {image.error}")
        for dest in image.destinations:
            if image.error and dest.error == image.error:
                continue  # said once, on the image's line
            line = f"{dest.status.upper():9}{image.source} -> {dest.destination}"
            if dest.digest:
                line += f" ({dest.digest[:19]})"
            if dest.error:
                line += f": {dest.error}"
            lines.append(line)
        if image.note:
            lines.append(f"{'':9}note: {image.note}")
    lines.append(
        f"read {human_bytes(stats.bytes_read)} in {stats.blobs_read} blobs, wrote "
        f"{human_bytes(stats.bytes_written)}; blobs pushed {stats.blobs_pushed}, mounted "
        f"{stats.blobs_mounted}, skipped {stats.blobs_skipped}; manifests {stats.manifests_pushed}; "
        f"{stats.requests} requests in {stats.duration_seconds:.2f}s"
        + (f"; {stats.blob_resumes} source reads resumed" if stats.blob_resumes else "")
    )
    return lines
