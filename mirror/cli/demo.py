"""``mirror demo``: the main job on an embedded default, with no network and no registry.

A small three-platform image is written to an OCI layout on local disk, copied to another
layout with the same engine ``mirror copy`` uses, verified digest for digest, and listed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mirror.cli.copy import CopyOptions, finish, run_copy
from mirror.cli.ls import list_images, render_table
from mirror.copy.synthetic import push_demo_image
from mirror.registry.ocilayout import OciLayout


async def run_demo(directory: str) -> int:
    root = Path(directory)
    shutil.rmtree(root, ignore_errors=True)
    source_dir, copy_dir = root / "source", root / "copy"
    source = OciLayout(source_dir, create=True)
    digest = await push_demo_image(source, "demo")
    print(f"made oci:{source_dir}:demo  {digest}  (3 platforms)", file=sys.stderr)
    opts = CopyOptions(
        f"oci:{source_dir}:demo", f"oci:{copy_dir}:demo", quiet=False, report=str(root / "report.json")
    )
    code, results, stats = await run_copy(opts)
    finish(opts, code, results, stats)
    if code:
        return code
    copy = OciLayout(copy_dir)
    rows = await list_images(copy)
    same = [row.digest for row in rows] == [str(digest)]
    print(f"\n$ mirror ls oci:{copy_dir} --include-tags", file=sys.stderr)
    print(render_table(rows, include_tags=True), file=sys.stderr)
    print(f"\ndigest preserved: {'yes' if same else 'NO'}; report: {root / 'report.json'}", file=sys.stderr)
    return 0 if same else 1
