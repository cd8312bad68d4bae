"""The status page of a running daemon, as a person sees it in headless Chromium.

Three jobs against real registries: ``web`` copies cleanly (current); ``api`` meets a tag
conflict, a destination that refuses one manifest with a hostile error text quoting a configured
password, and an extra destination tag (failing, with drift); ``big`` has a 4 MiB layer whose
source read is held part-way by the proxy, so a transfer stays in flight while the page is read.
Passes are serialised with holds so that the report written after each pass can be compared with
the page and ``/status.json``.

Set ``MIRROR_SCREENSHOT_DIR`` to keep the screenshots (``docs/status-page.png`` comes from here).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mirror.jobs.config import load_config
from mirror.service.daemon import Daemon, redactor_for
from mirror.service.passes import SHOWN_STATUSES
from tests.support.browser import Browser, chromium_or_skip
from tests.support.faults import ErrorReply, Hold
from tests.support.images import push_image
from tests.support.net import free_port

SECRET = "status-page-secret-pw"
HOSTILE = (
    f'<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> "quoted" \'single\' & {SECRET}'
)
MiB = 1024 * 1024


async def until(predicate: Any, what: str, seconds: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


def passed(daemon: Daemon, name: str) -> bool:
    job = daemon.state.job(name)
    return job.last_pass is not None and job.drift is not None


def report_view(report: dict[str, Any], name: str) -> dict[str, Any]:
    """What the page should say of job ``name``, computed from the run report alone."""
    images = [i for i in report["images"] if i["job"] == name]
    statuses = Counter(i["status"] for i in images)
    problems = []
    for image in images:
        if image["error"]:
            problems.append((image["source"], "", image["status"], image["error"]))
        for dest in image["destinations"]:
            if dest["status"] not in ("copied", "skipped"):
                problems.append((image["source"], dest["destination"], dest["status"], dest["error"]))
    (job,) = [j for j in report["jobs"] if j["name"] == name]
    return {
        "statuses": {s: statuses.get(s, 0) for s in {*SHOWN_STATUSES, *statuses}},
        "bytes_written": sum(d["bytes_written"] for i in images for d in i["destinations"]),
        "problems": sorted(problems),
        "images": job["images"],
        "failed": job["failed"],
        "ok": job["ok"],
    }


def page_view(job: dict[str, Any]) -> dict[str, Any]:
    last = job["last_pass"]
    return {
        "statuses": last["statuses"],
        "bytes_written": last["bytes_written"],
        "problems": sorted((p["image"], p["destination"], p["status"], p["error"]) for p in last["problems"]),
        "images": last["images"],
        "failed": last["failed"],
        "ok": last["ok"],
    }


COUNTS_JS = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('section.job')].map(
  s => [s.querySelector('h2').firstChild.textContent.trim(),
        [...s.querySelectorAll('ul.counts li')].map(li => li.innerText.trim())])))"""


@pytest.mark.registry
async def test_the_page_shows_a_running_daemon(
    registry_factory: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    chromium_or_skip()
    src, dst = registry_factory.start(), registry_factory.start()
    src_proxy, dst_proxy = proxy_factory.start(src), proxy_factory.start(dst)
    for tag in ("v1", "v2"):
        push_image(src, "apps/web", tag, seed=f"web-{tag}")
    for tag in ("v1", "v2", "v3"):
        push_image(src, "apps/api", tag, seed=f"api-{tag}")
    big = push_image(src, "apps/big", "v1", layer_sizes=(4 * MiB,), seed="big")
    push_image(dst, "m/api", "v3", seed="other-v3")  # conflict, then different_digest
    push_image(dst, "m/api", "old", seed="old")  # extra: the source has no such tag

    api_hold = src_proxy.add_fault(Hold(0, path=r"^/v2/apps/api/blobs/"))
    big_hold = src_proxy.add_fault(Hold(1 * MiB, path=rf"^/v2/apps/big/blobs/{big.layers[0].digest}$"))
    dst_proxy.add_fault(ErrorReply(403, "DENIED", HOSTILE, method="PUT", path=r"^/v2/m/api/manifests/v2$"))

    port = free_port()
    config = tmp_path / "mirror.yaml"
    config.write_text(f"""
version: 1
metrics: {{address: "127.0.0.1:{port}"}}
registries:
  "{dst_proxy.host}": {{username: robot, password: "{SECRET}"}}
defaults:
  schedule: {{interval: 1h, jitter: 0}}
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst_proxy.host}/m]
  - name: api
    source: {src_proxy.host}/apps/api
    destinations: [{dst_proxy.host}/m]
  - name: big
    source: {src_proxy.host}/apps/big
    destinations: [{dst_proxy.host}/m]
""")
    loaded = load_config(config)
    report = tmp_path / "report.json"
    daemon = Daemon(loaded, list(loaded.jobs), report_path=str(report), redactor=redactor_for(loaded))
    serving = asyncio.create_task(daemon.serve())
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ["MIRROR_SCREENSHOT_DIR"]) if os.environ.get("MIRROR_SCREENSHOT_DIR") else None
    reports: dict[str, dict[str, Any]] = {}
    try:
        await until(lambda: passed(daemon, "web"), "the web pass and its drift check")
        reports["web"] = json.loads(report.read_text())
        api_hold.release()
        await until(lambda: passed(daemon, "api"), "the api pass and its drift check")
        reports["api"] = json.loads(report.read_text())
        await until(big_hold.reached.is_set, "the big blob's read to reach the hold")
        await until(lambda: any(t["done"] >= MiB for t in daemon.inflight.snapshot()), "progress events")

        async with aiohttp.ClientSession() as http, http.get(f"{base}/status.json") as answer:
            assert answer.status == 200
            raw = await answer.text()
        doc = json.loads(raw)
        assert SECRET not in raw and "<redacted>" in raw
        jobs = {j["name"]: j for j in doc["jobs"]}
        assert [j["name"] for j in doc["jobs"]] == ["web", "api", "big"]
        assert {n: j["verdict"] for n, j in jobs.items()} == {
            "web": "current",
            "api": "failing",
            "big": "pending",
        }
        assert jobs["big"]["running_since"] is not None
        (moving,) = doc["transfers"]
        assert moving["image"].endswith("/apps/big:v1") and moving["digest"] == big.layers[0].digest
        assert moving["size"] == 4 * MiB and MiB <= moving["done"] < 4 * MiB

        # The page and the JSON agree with the report of the same pass.
        for name in ("web", "api"):
            assert page_view(jobs[name]) == report_view(reports[name], name), name
        api = jobs["api"]
        assert api["last_pass"]["statuses"] == {
            "copied": 1,
            "skipped": 0,
            "failed": 1,
            "deferred": 0,
            "conflict": 1,
        }
        drift = api["drift"]
        assert {k: v for k, v in drift["counts"].items() if v} == {
            "in_sync": 1,
            "missing": 1,
            "different_digest": 1,
            "extra": 1,
        }
        assert [r["destination"].rsplit("/", 1)[-1] for r in drift["rows"]["missing"]] == ["api:v2"]
        failing = next(p for p in api["last_pass"]["problems"] if p["status"] == "failed")
        assert "HTTP 403 DENIED" in failing["error"] and "<script>" in failing["error"]

        async with Browser.launch(tmp_path) as browser:
            await browser.open(f"{base}/", width=1100)
            text = await browser.evaluate("document.body.innerText")
            # What a person sees: job names, counts, the failing image's error as plain text.
            for name in ("web", "api", "big"):
                assert name in text
            assert "2 of 3 jobs not current: 1 failing, 1 no pass yet" in text
            counts = json.loads(await browser.evaluate(COUNTS_JS))
            zero = ["0 skipped", "0 failed", "0 deferred", "0 conflict"]
            assert counts["web"] == ["2 copied", *zero, "2 images"]
            api_counts = ["1 copied", "0 skipped", "1 failed", "0 deferred", "1 conflict", "3 images"]
            assert counts["api"] == api_counts
            assert counts["big"] == []
            shown_error = failing["error"]
            assert shown_error in text, "the failing image's error is shown verbatim, as text"
            assert SECRET not in text and "<redacted>" in text
            assert "Missing (1)" in text and "Different digest (1)" in text and "Extra (1)" in text
            assert "Transfers in flight (1)" in text and "4.0 MiB" in text
            # The hostile text stayed text: no script ran, no element came from it.
            assert await browser.evaluate("typeof window.pwned") == "undefined"
            assert await browser.evaluate("document.scripts.length + document.images.length") == 0
            assert await browser.evaluate("document.querySelectorAll('progress').length") == 1
            await browser.screenshot(tmp_path / "status-page.png", width=1100)

            # A phone: nothing wider than the screen, the same words.
            await browser.open(f"{base}/", width=390, height=844, mobile=True)
            overflow = await browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page is {overflow}px wider than a 390px screen"
            assert shown_error in await browser.evaluate("document.body.innerText")
            await browser.screenshot(tmp_path / "status-page-phone.png", width=390)

            # The full drift list behind the link.
            await browser.open(f"{base}{drift['url']}", width=390, height=844, mobile=True)
            listing = await browser.evaluate("document.body.innerText")
            assert "Missing (1)" in listing and "Extra (1)" in listing and "api:old" in listing
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            for png in ("status-page.png", "status-page-phone.png"):
                shutil.copy(tmp_path / png, shots / png)

        big_hold.release()
        await until(lambda: passed(daemon, "big"), "the big pass")
        reports["big"] = json.loads(report.read_text())
        async with aiohttp.ClientSession() as http, http.get(f"{base}/status.json") as answer:
            after = await answer.json()
        jobs = {j["name"]: j for j in after["jobs"]}
        assert after["transfers"] == [] and jobs["big"]["verdict"] == "current"
        assert page_view(jobs["big"]) == report_view(reports["big"], "big")
        assert jobs["big"]["last_pass"]["bytes_written"] >= 4 * MiB
    finally:
        api_hold.release()
        big_hold.release()
        daemon.request_stop()
        await asyncio.wait_for(serving, 30)
