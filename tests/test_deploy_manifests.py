"""deploy/: manifests validate offline, the dashboard queries real metrics, commands use real flags."""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from mirror.service.labels import EVENT_KINDS
from mirror.service.metrics import Metrics
from mirror.types import events as ev
from mirror.types.events import Event

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
DASHBOARD = DEPLOY / "grafana" / "mirror-dashboard.json"
KUBE_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
METRICS_PORT = 9090

# Flags the manifests may pass to `mirror sync`.
SYNC_FLAGS = {"--config", "--once", "--shard"}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}", doc))
    return found


MANIFESTS = manifests()


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in MANIFESTS if doc["kind"] == kind]


def one(kind: str) -> dict[str, Any]:
    (doc,) = by_kind(kind)
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container_args(doc: dict[str, Any]) -> list[str]:
    (container,) = pod_spec(doc)["containers"]
    return [str(arg) for arg in container.get("command", []) + container.get("args", [])]


WORKLOADS = [pytest.param(doc, id=name) for name, doc in MANIFESTS if doc["kind"] in
             ("Deployment", "StatefulSet", "CronJob")]  # fmt: skip
DAEMONS = [
    pytest.param(doc, id=name) for name, doc in MANIFESTS if doc["kind"] in ("Deployment", "StatefulSet")
]


# -- schema validation ---------------------------------------------------------------------------


def test_kubernetes_validate_is_offline_and_strict() -> None:
    """The schemas ship with the package; an unknown field or a wrong type is an error."""
    doc = json.loads(json.dumps(one("Deployment")))
    doc["spec"]["replicass"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)
    doc = json.loads(json.dumps(one("Deployment")))
    doc["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize(("name", "doc"), MANIFESTS, ids=[name for name, _ in MANIFESTS])
def test_manifest_validates(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_expected_manifests_exist() -> None:
    kinds = sorted(doc["kind"] for _, doc in MANIFESTS)
    assert kinds == sorted(
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "Service",
            "Service",
            "Service",
            "ServiceAccount",
            "StatefulSet",
        ]
    )


def test_kustomization_lists_existing_files() -> None:
    kust = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    for resource in kust["resources"]:
        assert (KUBE / resource).is_file(), resource
    # One daemon mode at a time.
    assert not {"statefulset.yaml", "cronjob.yaml"} & set(kust["resources"])


# -- shape of the workloads ----------------------------------------------------------------------


@pytest.mark.parametrize("doc", WORKLOADS)
def test_workload_security_and_volumes(doc: dict[str, Any]) -> None:
    spec = pod_spec(doc)
    assert spec["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = volumes[mounts["/etc/mirror"]["name"]]
    assert config["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert mounts["/etc/mirror"]["readOnly"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert any(ref["secretRef"]["name"] == "mirror-credentials" for ref in container["envFrom"])


@pytest.mark.parametrize("doc", DAEMONS)
def test_daemon_probes_port_and_scrape_annotations(doc: dict[str, Any]) -> None:
    (container,) = pod_spec(doc)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    annotations = doc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    labels = doc["spec"]["template"]["metadata"]["labels"]
    assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_selectors_do_not_overlap() -> None:
    deployment, statefulset = one("Deployment"), one("StatefulSet")
    assert deployment["spec"]["selector"] != statefulset["spec"]["selector"]
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    metrics = services["mirror-metrics"]
    assert metrics["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_service_account_has_workload_identity() -> None:
    annotations = one("ServiceAccount")["metadata"]["annotations"]
    assert annotations["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")


def test_statefulset_shards_match_replicas_and_has_headless_service() -> None:
    sts = one("StatefulSet")
    args = container_args(sts)
    assert args[:3] == ["sync", "--config", "/etc/mirror/config.yaml"]
    shard = args[args.index("--shard") + 1]
    match = re.fullmatch(r"auto/(\d+)", shard)
    assert match is not None, shard
    assert int(match.group(1)) == sts["spec"]["replicas"]
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    # The pod names end in -N, which is what --shard auto/N reads.
    from mirror.service.shard import parse_shard

    last = sts["spec"]["replicas"] - 1
    assert parse_shard(shard, hostname=f"{sts['metadata']['name']}-{last}").index == last


def test_cronjob_runs_once() -> None:
    cron = one("CronJob")
    assert container_args(cron) == ["sync", "--once", "--config", "/etc/mirror/config.yaml"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod_spec(cron)["restartPolicy"] == "Never"


def test_configmap_config_validates_and_listens_for_probes() -> None:
    from mirror.jobs.config import parse_config
    from mirror.service.server import parse_address

    config = parse_config(one("ConfigMap")["data"]["config.yaml"], env={})
    assert config.metrics is not None
    # Probes come from the kubelet, not loopback: the server must listen on every interface.
    host, port = parse_address(config.metrics.address)
    assert host in (None, "0.0.0.0") and port == METRICS_PORT


# -- commands use flags that exist ---------------------------------------------------------------


def _sync_parser() -> argparse.ArgumentParser | None:
    from mirror.cli.main import build_parser

    parser = build_parser("sync")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and "sync" in action.choices:
            return parser
    return None


@pytest.mark.parametrize("doc", WORKLOADS)
def test_commands_use_sync_flags(doc: dict[str, Any]) -> None:
    args = container_args(doc)
    assert args[0] == "sync"
    flags = {arg for arg in args if arg.startswith("-")}
    assert flags <= SYNC_FLAGS, flags - SYNC_FLAGS
    assert "--config" in flags
    parser = _sync_parser()
    if parser is not None:  # once `mirror sync` exists, its own parser must accept the command
        parser.parse_args(args)


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    assert [name for _, name in stages] == ["build", "runtime"]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None and "slim" in base.group(1)
    assert all(image == "${PYTHON_IMAGE}" for image, _ in stages)
    # An init as PID 1 (signals forwarded, children reaped), installed in the runtime stage.
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "mirror"]' in text
    runtime = text.split(" AS runtime", 1)[1]
    assert re.search(r"apt-get install -y --no-install-recommends tini\b", runtime)
    assert 'CMD ["sync", "--config", "/etc/mirror/config.yaml"]' in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD \[\"python\".*/healthz", text, re.M)
    assert f"EXPOSE {METRICS_PORT}" in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mirror" in scripts


def test_systemd_unit() -> None:
    lines = {line.strip() for line in (DEPLOY / "systemd" / "mirror.service").read_text().splitlines()}
    for wanted in (
        "ExecStart=/opt/mirror/bin/mirror sync --config /etc/mirror/config.yaml",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "WantedBy=multi-user.target",
    ):
        assert wanted in lines, wanted


# -- the dashboard queries metrics that exist ----------------------------------------------------


def scraped_series() -> dict[str, list[dict[str, str]]]:
    """Every sample name of a fresh Metrics fed one event of each kind and one job run."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics = Metrics()
    for kind in sorted(EVENT_KINDS):
        detail = "GET" if kind == ev.REQUEST else "transport"
        metrics(Event(kind, host="gcr.io", digest="sha256:0", size=10, status=200, detail=detail))
    metrics.job_started("nightly")
    metrics.job_finished("nightly", True, 10.0)
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(dict(sample.labels))
    return series


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def test_dashboard_parses_and_has_the_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("bytes", "blobs by outcome", "errors by kind", "429", "in-flight", "last success",
                  "run duration"):  # fmt: skip
        assert topic in titles, topic


def test_dashboard_queries_only_existing_metrics_and_labels() -> None:
    series = scraped_series()
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = set(re.findall(r"\bmirror_[a-z0-9_]+\b", expr))
        assert names, expr
        for name in names:
            assert name in series, f"{name} (in {expr!r}) is not exposed by Metrics"
        used |= names
        labels_of = {name: set().union(*(s.keys() for s in series[name])) for name in names}
        for name, body in re.findall(r"\b(mirror_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label, op, wanted in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body):
                assert label in labels_of[name], f"{name} has no label {label}"
                if op == "=":
                    assert any(s.get(label) == wanted for s in series[name]), f"{name}{{{label}={wanted}}}"
        all_labels = set().union(*labels_of.values())
        for clause in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (part.strip() for part in clause.split(",")):
                assert label in all_labels, f"'by ({label})' in {expr!r}"
        for name, label in re.findall(r"label_values\((mirror_[a-z0-9_]+),\s*(\w+)\)", expr):
            assert label in labels_of[name]
    # The dashboard covers the main families.
    for name in ("mirror_source_bytes_total", "mirror_destination_bytes_total", "mirror_blobs_total",
                 "mirror_errors_total", "mirror_retries_total", "mirror_throttled_total",
                 "mirror_transfers_in_flight", "mirror_job_last_success_timestamp_seconds",
                 "mirror_job_run_duration_seconds_bucket"):  # fmt: skip
        assert name in used, name
