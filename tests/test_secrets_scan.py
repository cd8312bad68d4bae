"""A run's logs, report, metrics and status page never contain the secrets it used."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from mirror.jobs.config import load_config
from mirror.service.daemon import Daemon, redactor_for
from mirror.service.logs import setup_logging
from mirror.service.statuspage import render_status
from tests.support.images import push_image


async def test_no_secret_in_logs_report_metrics_or_status_page(
    registry_factory: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    src = registry_factory.start(auth="htpasswd")
    dst = registry_factory.start(auth="token", token_ttl=5)
    push_image(src, "apps/web", "v1", creds=src.seed_creds)
    push_image(src, "apps/api", "v1", creds=src.seed_creds)
    (tmp_path / "dst-password").write_text(dst.password + "\n")
    monkeypatch.setenv("SRC_PASSWORD", src.password)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(f"""
version: 1
log: {{format: json, level: debug}}
registries:
  "{src.host}": {{username: {src.username}, password: "${{SRC_PASSWORD}}"}}
  "{dst.host}": {{username: {dst.username}, password_file: dst-password}}
jobs:
  - name: good
    source: {src.host}/apps/*
    destinations: [{dst.host}/mirror]
  - name: denied
    source: {src.host}/apps/web:v1
    destinations: [{dst.host}/forbidden]
""")
    # The token server refuses pushes to forbidden/*, so one job fails and its errors are logged.
    dst.token_server.policy = lambda user, access: () if "forbidden" in access.name else access.actions
    config = load_config(config_path)
    stream = io.StringIO()
    redactor = redactor_for(config)
    setup_logging("json", "debug", redactor=redactor, stream=stream)
    report = tmp_path / "report.json"
    daemon = Daemon(config, list(config.jobs), report_path=str(report), redactor=redactor)
    result = await daemon.once()
    by_name = {j.name: j for j in result.jobs}
    assert by_name["good"].ok and not by_name["denied"].ok
    body, _ = daemon.metrics.render()
    outputs = {"logs": stream.getvalue(), "report": report.read_text(), "metrics": body.decode()}
    outputs["status.json"] = json.dumps(daemon.status())
    outputs["status page"] = render_status(daemon.status())
    tokens = [t.token for t in dst.token_server.issued]
    assert tokens, "the destination issued no token"
    secrets = [src.password, dst.password, *tokens]
    for user, password in ((src.username, src.password), (dst.username, dst.password)):
        secrets.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    for name, text in outputs.items():
        assert text, name
        for secret in secrets:
            assert secret not in text, f"a secret appears in the {name}"
    assert '"level": "warning"' in outputs["logs"]  # the denied copy was logged, with its error
    json.loads(outputs["report"])
    denied = next(j for j in daemon.status()["jobs"] if j["name"] == "denied")
    assert denied["verdict"] == "failing" and denied["last_pass"]["problems"]
