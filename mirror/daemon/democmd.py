"""``mirror demo``: the main job on an embedded default, with no network and no registry.

A small three-platform image is written to an OCI layout on local disk, copied to another
layout with the same engine ``mirror copy`` uses, verified digest for digest, and listed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mirror.copy.synthetic import push_demo_image
from mirror.daemon.copycmd import CopyOptions, finish, run_copy
from mirror.registry.ocilayout import OciLayout
from mirror.types.manifest import parse_manifest


async def run_demo(directory: str) -> int:
    root = Path(directory)
    shutil.rmtree(root, ignore_errors=True)
    source_dir, copy_dir = root / "source", root / "copy"
    source = OciLayout(source_dir, create=True)
    digest = await push_demo_image(source, "demo")
    print(f"made oci:{source_dir}:demo  {digest}  (3 platforms)", file=sys.stderr)
    opts = CopyOptions(f"oci:{source_dir}:demo", f"oci:{copy_dir}:demo", quiet=False,
                       report=str(root / "report.json"))
    code, results, stats = await run_copy(opts)
    finish(opts, code, results, stats)
    if code:
        return code
    copy = OciLayout(copy_dir)
    fetched = await copy.get_manifest("demo")
    index = parse_manifest(fetched.raw, fetched.media_type)
    same = fetched.digest == digest
    print(f"\noci:{copy_dir}", file=sys.stderr)
    for tag in await copy.list_tags():
        print(f"  {tag:8} {fetched.digest}  {index.media_type}", file=sys.stderr)
    for child in index.manifests:
        print(f"    {child.platform!s:16} {child.digest}  {child.size} bytes", file=sys.stderr)
    print(f"\ndigest preserved: {'yes' if same else 'NO'}; report: {root / 'report.json'}", file=sys.stderr)
    return 0 if same else 1
