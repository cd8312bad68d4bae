"""`mirror sync` against real registries: prefix jobs, fan-out, dedup, incremental runs, immutability."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from mirror.cli.main import main
from tests.support.images import fetch_manifest, layer, manifest_exists, push_image, push_index

KiB = 1024


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sync(config: Path, *args: str) -> int:
    return main(["sync", "--config", str(config), *args])


def seed_fleet(src: Any, repos: int = 6) -> dict[str, str]:
    """Repositories under apps/ sharing two base layers; returns repo:tag -> digest."""
    base = [layer(200 * KiB, "base-os"), layer(120 * KiB, "base-runtime")]
    digests: dict[str, str] = {}
    for i in range(repos):
        repo = f"apps/svc{i}"
        for tag in ("v1.0.0", "v1.1.0", "dev"):
            img = push_image(
                src, repo, tag, layer_sizes=(3 * KiB + i,), seed=f"{repo}:{tag}", base_layers=base
            )
            digests[f"{repo}:{tag}"] = img.digest
    push_index(src, "apps/multi", "v2", ["linux/amd64", "linux/arm64"], base_layers=base)
    digests["apps/multi:v2"] = fetch_manifest(src, "apps/multi", "v2").digest
    push_image(src, "other/ignored", "v1")
    return digests


def test_prefix_job_fans_out_and_reads_each_blob_once(
    registry_factory: Any, proxy_factory: Any, tmp_path: Path
) -> None:
    src, d1, d2 = registry_factory.start(), registry_factory.start(), registry_factory.start()
    digests = seed_fleet(src)
    proxy = proxy_factory.start(src)
    config = write_config(
        tmp_path / "c.yaml",
        f"""
version: 1
registries:
  "{proxy.host}": {{plain_http: true}}
jobs:
  - name: apps
    source: {proxy.host}/apps/*
    destinations: [{d1.host}/mirror, {d2.host}/dr/copy]
    tags: {{include: ["^v"]}}
""",
    )
    report = tmp_path / "r.json"
    assert sync(config, "--once", "--report", str(report)) == 0
    for key, digest in digests.items():
        repo, tag = key.split(":")
        suffix = repo.split("/", 1)[1]
        for dst, prefix in ((d1, "mirror"), (d2, "dr/copy")):
            if tag == "dev":
                assert not manifest_exists(dst, f"{prefix}/{suffix}", tag)
                continue
            got = fetch_manifest(dst, f"{prefix}/{suffix}", tag)
            assert got.digest == digest and got.data == fetch_manifest(src, repo, tag).data
    assert not manifest_exists(d1, "mirror/ignored", "v1")
    # Each blob was read from the source once, although 13 images x 2 destinations want it.
    blob_gets = [r.path for r in proxy.select("GET", "/blobs/sha256:")]
    assert len(blob_gets) == len(set(p.rsplit("/", 1)[1] for p in blob_gets)), "a blob was read twice"
    doc = json.loads(report.read_text())
    assert doc["ok"] and doc["totals"]["blobs_read"] == len(blob_gets)
    assert doc["totals"]["bytes_read"] == doc["totals"]["unique_blob_bytes"]
    # Shared base layers were pushed once per destination registry, then mounted.
    assert doc["totals"]["blobs_mounted"] > 0

    # Second run: nothing to copy; one HEAD per source tag and per destination tag.
    proxy.clear()
    dproxies = [proxy_factory.start(d1), proxy_factory.start(d2)]
    config2 = write_config(
        tmp_path / "c2.yaml",
        config.read_text().replace(d1.host, dproxies[0].host).replace(d2.host, dproxies[1].host),
    )
    assert sync(config2, "--once", "--report", str(report)) == 0
    doc = json.loads(report.read_text())
    assert doc["totals"]["bytes_read"] == 0 and doc["totals"]["manifests_pushed"] == 0
    selected = [k for k in digests if ":v" in k]
    src_heads = proxy.select("HEAD", "/manifests/")
    assert len(src_heads) == len(selected)
    assert not proxy.select("GET", "/manifests/") and not proxy.select("GET", "/blobs/")
    for dp in dproxies:
        methods = {(r.method, "/manifests/" in r.path) for r in dp.records if r.path != "/v2/"}
        assert methods == {("HEAD", True)}
        assert len(dp.select("HEAD", "/manifests/")) == len(selected)


def test_tag_conflict_left_untouched_then_overwritten(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "apps/web", "v1", seed="new")
    theirs = push_image(dst, "mirror/web", "v1", seed="theirs")
    push_image(src, "apps/web", "v2", seed="v2")
    text = f"""
version: 1
jobs:
  - name: web
    source: {src.host}/apps/web
    destinations: [{dst.host}/mirror]
    overwrite: OVERWRITE
"""
    report = tmp_path / "r.json"
    config = write_config(tmp_path / "c.yaml", text.replace("OVERWRITE", "false"))
    assert sync(config, "--once", "--report", str(report)) == 1
    doc = json.loads(report.read_text())
    statuses = {i["source"].rsplit(":", 1)[1]: i["status"] for i in doc["images"]}
    assert statuses == {"v1": "conflict", "v2": "copied"}
    assert fetch_manifest(dst, "mirror/web", "v1").digest == theirs.digest
    config = write_config(tmp_path / "c.yaml", text.replace("OVERWRITE", "true"))
    assert sync(config, "--once") == 0
    assert fetch_manifest(dst, "mirror/web", "v1").digest == fetch_manifest(src, "apps/web", "v1").digest


def test_failing_job_does_not_stop_others(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "good/app", "v1")
    config = write_config(
        tmp_path / "c.yaml",
        f"""
version: 1
jobs:
  - name: broken
    source: 127.0.0.1:9/nothing/here
    destinations: [{dst.host}/x]
  - name: good
    source: {src.host}/good/app:v1
    destinations: [{dst.host}/mirror]
""",
    )
    report = tmp_path / "r.json"
    assert sync(config, "--once", "--report", str(report)) == 1
    doc = json.loads(report.read_text())
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert not jobs["broken"]["ok"] and jobs["broken"]["error"]
    assert jobs["good"]["ok"]
    assert fetch_manifest(dst, "mirror/app", "v1").status == 200


def test_dry_run_writes_nothing(registry_pair: Any, tmp_path: Path, capsys: Any) -> None:
    src, dst = registry_pair
    push_index(src, "apps/a", "v1", ["linux/amd64", "linux/arm64"])
    config = write_config(
        tmp_path / "c.yaml",
        f"""
version: 1
jobs:
  - name: a
    source: {src.host}/apps/*
    destinations: [{dst.host}/m1, {dst.host}/m2]
""",
    )
    assert sync(config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "plan: 1 of 1 images to copy" in out and "to mount" in out
    assert not manifest_exists(dst, "m1/a", "v1")


def test_config_errors_exit_2(tmp_path: Path, capsys: Any) -> None:
    job = "jobs:\n  - name: a\n    source: h.io/a\n    destinations: [h.io/b]\n"
    cases = {
        "unknown key": f"version: 1\n{job}    tagz: {{}}\n",
        "regular expression": f"version: 1\n{job}    tags: {{include: ['(']}}\n",
        "cron": f"version: 1\n{job}    schedule: {{cron: '61 * * * *'}}\n",
        "MISSING_PASSWORD_VAR": (
            "version: 1\nregistries:\n  h.io: {username: u, password: '${MISSING_PASSWORD_VAR}'}\n" + job
        ),
    }
    for expected, text in cases.items():
        config = write_config(tmp_path / "bad.yaml", text)
        assert sync(config, "--once") == 2, expected
        err = capsys.readouterr().err
        assert expected.lower() in err.lower(), err
        assert err.count("\n") <= 3, err


def test_serve_runs_cycles_exposes_metrics_and_stops_on_sigterm(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "apps/web", "v1")
    config = write_config(
        tmp_path / "c.yaml",
        f"""
version: 1
log: {{format: json}}
metrics: {{address: "127.0.0.1:9"}}
jobs:
  - name: web
    source: {src.host}/apps/*
    destinations: [{dst.host}/mirror]
    schedule: {{interval: 1s}}
""",
    )
    from tests.support.net import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mirror",
            "sync",
            "--config",
            str(config),
            "--metrics-address",
            f"127.0.0.1:{port}",
            "--grace",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        runs = 0.0
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1].decode()
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            runs = sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("mirror_job_runs_total{")
            )
            if runs >= 3:
                break
            time.sleep(0.3)
        assert runs >= 3, "the job did not run three times"
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
        assert "mirror_manifests_pushed_total" in text or "mirror_images" in text
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        messages = [json.loads(line)["msg"] for line in err.decode().splitlines() if line.startswith("{")]
        # After the signal no pass starts: at most the one already running ends (a job never runs
        # twice at once), then the daemon stops.
        after = messages[messages.index("SIGTERM: stopping; moving blobs may finish within 5s") + 1 :]
        assert len([m for m in after if m.startswith("job web")]) <= 1, after
        assert after[-1] == "stopped", after
        assert fetch_manifest(dst, "mirror/web", "v1").status == 200
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_referrers_fallback_tags_follow_their_images(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    img = push_image(src, "apps/signed", "v1", seed="signed")
    sig_tag = "sha256-" + img.digest.split(":", 1)[1] + ".sig"
    push_image(src, "apps/signed", sig_tag, layer_sizes=(300,), seed="signature")
    text = f"""
version: 1
jobs:
  - name: signed
    source: {src.host}/apps/signed
    destinations: [{dst.host}/m]
    tags: {{include: ["^v"]}}
    referrers: REFERRERS
"""
    config = write_config(tmp_path / "c.yaml", text.replace("REFERRERS", "false"))
    assert sync(config, "--once") == 0
    assert manifest_exists(dst, "m/signed", "v1") and not manifest_exists(dst, "m/signed", sig_tag)
    config = write_config(tmp_path / "c.yaml", text.replace("REFERRERS", "true"))
    assert sync(config, "--once") == 0
    assert manifest_exists(dst, "m/signed", sig_tag)


async def test_long_transfers_log_progress(registry_pair: Any, proxy_factory: Any, tmp_path: Path) -> None:
    import io

    from mirror.jobs.config import load_config
    from mirror.service.daemon import Daemon
    from mirror.service.logs import setup_logging
    from tests.support.faults import Delay

    src, dst = registry_pair
    push_image(src, "apps/slow", "v1", layer_sizes=(2 * 1024 * 1024,))
    proxy = proxy_factory.start(dst)
    proxy.add_fault(Delay(1.0, times=None, method="PUT", path=r"/blobs/uploads/"))
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            f"""
version: 1
jobs:
  - name: slow
    source: {src.host}/apps/slow:v1
    destinations: [{proxy.host}/m]
""",
        )
    )
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)
    daemon = Daemon(config, list(config.jobs), progress_interval=0.2)
    result = await daemon.once()
    assert result.ok
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    progress = [entry for entry in lines if entry["msg"].startswith("progress:")]
    assert progress and progress[-1]["in_flight"] >= 1


def test_tagless_repository_in_the_catalog_is_not_a_job_error(registry_pair: Any, tmp_path: Path) -> None:
    """A repository that _catalog lists but that has no tag (blobs left by an interrupted push)
    has nothing to copy; before, its 404 tag list failed the whole prefix job on every run."""
    from tests.support.images import push_blob

    src, dst = registry_pair
    push_blob(src, "apps/interrupted", layer(2 * KiB, "orphan"))
    web = push_image(src, "apps/web", "v1", seed="web")
    config = write_config(
        tmp_path / "c.yaml",
        f"""
version: 1
jobs:
  - name: apps
    source: {src.host}/apps/*
    destinations: [{dst.host}/mirror]
""",
    )
    report = tmp_path / "r.json"
    assert sync(config, "--once", "--report", str(report)) == 0
    doc = json.loads(report.read_text())
    [job] = doc["jobs"]
    assert job["ok"] and not job["error"] and job["images"] == 1
    assert fetch_manifest(dst, "mirror/web", "v1").digest == web.digest
