"""A failing image never cancels blob transfers that other images need.

Two tags share a slow base layer; one of them also has a layer its source cannot serve. That
image fails (with the missing layer as its reason) while the shared layer is still moving; the
shared transfer goes on to its end, once, and the other image is copied complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirror.cli.main import main
from tests.support.check import check_complete
from tests.support.faults import ErrorBurst, SlowBody
from tests.support.images import layer, push_image

KiB = 1024


def test_a_failing_image_leaves_the_shared_transfer_running(
    registry_pair: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, dst = registry_pair
    base = layer(768 * KiB, "shared-base")
    lost = layer(4 * KiB, "lost").digest
    # v1's first layer cannot be read: it fails at once, while the shared layer still moves.
    push_image(src, "apps/web", "v1", (), seed="broken", base_layers=[layer(4 * KiB, "lost"), base])
    whole = push_image(src, "apps/web", "v2", (4 * KiB,), seed="whole", base_layers=[base])
    sp, dp = proxy_factory.start(src), proxy_factory.start(dst)
    slow = sp.add_fault(SlowBody(512 * KiB, times=None, method="GET", path=base.digest))
    missing = sp.add_fault(ErrorBurst(404, times=None, method="GET", path=lost))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
version: 1
registries:
  "{sp.host}": {{plain_http: true}}
  "{dp.host}": {{plain_http: true}}
jobs:
  - name: apps
    source: {sp.host}/apps/web
    destinations: [{dp.host}/mirror/web]
"""
    )
    report = tmp_path / "r.json"
    assert main(["sync", "--config", str(config), "--once", "--report", str(report)]) == 1
    doc = json.loads(report.read_text())
    status = {i["source"].rsplit(":", 1)[1]: i for i in doc["images"]}
    assert status["v1"]["status"] == "failed" and missing.fired >= 1
    assert status["v1"]["destinations"][0]["error_kind"] == "not_found"
    assert status["v2"]["status"] == "copied", status["v2"]
    # The shared layer was read once, slowly, and its one upload was never cut off, although
    # v1 had failed before it was done.
    [base_get] = sp.select("GET", base.digest)
    assert slow.fired == 1 and min(r.finished for r in sp.select("GET", lost)) < base_get.finished
    puts = [r for r in dp.select("PUT", "/blobs/uploads/") if base.digest.split(":")[1] in r.query]
    assert [(p.status, p.client_disconnected) for p in puts] == [(201, False)]
    assert check_complete(dst, "mirror/web") == []
    assert whole.digest in {i["digest"] for i in doc["images"] if i["status"] == "copied"}
