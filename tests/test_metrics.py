"""Metrics: events in, Prometheus text out; labels stay bounded and secret-free."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

import mirror.service.metrics as metrics_module
from mirror.service.labels import ERROR_KINDS, EVENT_KINDS, error_kind, normalise_host, status_class
from mirror.service.metrics import METRIC_NAMES, Metrics
from mirror.types import events as ev
from mirror.types.events import Event, Fanout

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a(Event(ev.THROTTLED, host="ghcr.io", status=429))
    assert value(scrape(a), "mirror_throttled_total", registry="ghcr.io") == 1
    assert value(scrape(b), "mirror_throttled_total", registry="ghcr.io") == 0


def test_bytes_and_blobs() -> None:
    m = Metrics()
    m(Event(ev.BLOB_READ, host="registry-1.docker.io", digest="sha256:aa", size=1000))
    m(Event(ev.BLOB_READ, host="registry-1.docker.io", size=500))
    m(Event(ev.BLOB_PUSHED, host="gcr.io", digest="sha256:aa", size=1000))
    m(Event(ev.BLOB_PUSHED, host="ghcr.io", size=1000))
    m(Event(ev.BLOB_MOUNTED, host="gcr.io"))
    m(Event(ev.BLOB_SKIPPED, host="gcr.io"))
    m(Event(ev.BLOB_SKIPPED, host="gcr.io"))
    m(Event(ev.BLOB_FAILED, host="gcr.io", detail="digest_mismatch"))
    m(Event(ev.BLOB_PROGRESS, host="gcr.io", size=64))
    m(Event(ev.BLOB_PROGRESS, host="gcr.io", size=-5))  # ignored, never raises
    s = scrape(m)
    assert value(s, "mirror_source_bytes_total", registry="registry-1.docker.io") == 1500
    assert value(s, "mirror_destination_bytes_total", registry="gcr.io") == 1000
    assert value(s, "mirror_destination_bytes_total", registry="ghcr.io") == 1000
    assert value(s, "mirror_transfer_progress_bytes_total", registry="gcr.io") == 64
    assert value(s, "mirror_blobs_total", registry="gcr.io", outcome="copied") == 1
    assert value(s, "mirror_blobs_total", registry="gcr.io", outcome="mounted") == 1
    assert value(s, "mirror_blobs_total", registry="gcr.io", outcome="skipped") == 2
    assert value(s, "mirror_blobs_total", registry="gcr.io", outcome="failed") == 1
    assert value(s, "mirror_errors_total", kind="digest_mismatch", scope="blob") == 1


def test_manifests_images_conflicts() -> None:
    m = Metrics()
    m(Event(ev.MANIFEST_PUSHED, host="gcr.io"))
    m(Event(ev.IMAGE_COPIED, host="gcr.io"))
    m(Event(ev.IMAGE_SKIPPED, host="gcr.io"))
    m(Event(ev.IMAGE_FAILED, host="gcr.io", detail="auth"))
    m(Event(ev.IMAGE_FAILED, host="gcr.io", detail="unauthorized: token abc123 for https://x"))
    m(Event(ev.TAG_CONFLICT, host="gcr.io"))
    s = scrape(m)
    assert value(s, "mirror_manifests_pushed_total", registry="gcr.io") == 1
    for outcome, n in (("copied", 1), ("skipped", 1), ("failed", 2)):
        assert value(s, "mirror_images_total", registry="gcr.io", outcome=outcome) == n
    assert value(s, "mirror_tag_conflicts_total", registry="gcr.io") == 1
    assert value(s, "mirror_errors_total", kind="auth", scope="image") == 1
    # Free text never becomes a label: it counts as "other".
    assert value(s, "mirror_errors_total", kind="other", scope="image") == 1


def test_requests_retries_tokens() -> None:
    m = Metrics()
    for status in (200, 201, 307, 404, 429, 503, 0):
        m(Event(ev.REQUEST, host="quay.io", status=status, detail="GET"))
    m(Event(ev.REQUEST, host="quay.io", status=202, detail="post"))
    m(Event(ev.REQUEST, host="quay.io", status=200, detail="BREW"))
    m(Event(ev.RETRY, host="quay.io", detail="transport"))
    m(Event(ev.RETRY, host="quay.io", status=503, detail="registry"))
    m(Event(ev.THROTTLED, host="quay.io", status=429))
    m(Event(ev.TOKEN_FETCH, host="quay.io", detail="300s"))
    m(Event(ev.CREDENTIAL_REFRESH, host="gcr.io"))
    s = scrape(m)
    req = "mirror_requests_total"
    assert value(s, req, registry="quay.io", method="GET", code="2xx") == 2
    assert value(s, req, registry="quay.io", method="GET", code="3xx") == 1
    assert value(s, req, registry="quay.io", method="GET", code="4xx") == 2
    assert value(s, req, registry="quay.io", method="GET", code="5xx") == 1
    assert value(s, req, registry="quay.io", method="GET", code="none") == 1
    assert value(s, req, registry="quay.io", method="POST", code="2xx") == 1
    assert value(s, req, registry="quay.io", method="other", code="2xx") == 1
    assert value(s, "mirror_retries_total", registry="quay.io", kind="transport") == 1
    assert value(s, "mirror_retries_total", registry="quay.io", kind="registry") == 1
    assert value(s, "mirror_throttled_total", registry="quay.io") == 1
    assert value(s, "mirror_token_fetches_total", registry="quay.io") == 1
    assert value(s, "mirror_credential_refreshes_total", registry="gcr.io") == 1


def test_in_flight_gauge_never_negative() -> None:
    m = Metrics()
    m(Event(ev.TRANSFER_STARTED, host="gcr.io"))
    m(Event(ev.TRANSFER_STARTED, host="gcr.io"))
    assert value(scrape(m), "mirror_transfers_in_flight", registry="gcr.io") == 2
    m(Event(ev.TRANSFER_FINISHED, host="gcr.io"))
    assert value(scrape(m), "mirror_transfers_in_flight", registry="gcr.io") == 1
    for _ in range(3):
        m(Event(ev.TRANSFER_FINISHED, host="gcr.io"))
    assert value(scrape(m), "mirror_transfers_in_flight", registry="gcr.io") == 0


def test_jobs() -> None:
    now = [1_700_000_000.0]
    m = Metrics(clock=lambda: now[0])

    class Job:
        name = "nightly"

    m.job_started("hourly")
    s = scrape(m)
    assert value(s, "mirror_job_running", job_name="hourly") == 1
    assert ("mirror_job_runs_total", frozenset({("job_name", "hourly"), ("result", "failure")})) in s
    m.job_finished("hourly", True, 12.5)
    now[0] += 100
    m.job_started(Job())
    m.job_finished(Job(), False, 3600.0)
    s = scrape(m)
    assert value(s, "mirror_job_running", job_name="hourly") == 0
    assert value(s, "mirror_job_runs_total", job_name="hourly", result="success") == 1
    assert value(s, "mirror_job_run_duration_seconds_count", job_name="hourly") == 1
    assert value(s, "mirror_job_run_duration_seconds_sum", job_name="hourly") == 12.5
    assert value(s, "mirror_job_run_duration_seconds_bucket", job_name="hourly", le="15.0") == 1
    assert value(s, "mirror_job_last_success_timestamp_seconds", job_name="hourly") == 1_700_000_000.0
    assert value(s, "mirror_job_last_run_success", job_name="hourly") == 1
    assert value(s, "mirror_job_last_run_success", job_name="nightly") == 0
    assert value(s, "mirror_job_runs_total", job_name="nightly", result="failure") == 1
    assert value(s, "mirror_job_last_run_timestamp_seconds", job_name="nightly") == 1_700_000_100.0
    assert ("mirror_job_last_success_timestamp_seconds", frozenset({("job_name", "nightly")})) not in s
    # A failure leaves the last success in place.
    m.job_started("hourly")
    m.job_finished("hourly", False, 1.0)
    s = scrape(m)
    assert value(s, "mirror_job_last_success_timestamp_seconds", job_name="hourly") == 1_700_000_000.0
    assert value(s, "mirror_job_last_run_success", job_name="hourly") == 0
    m.forget_job("hourly")
    m.forget_job("never-ran")
    assert not any(dict(labels).get("job_name") == "hourly" for _, labels in scrape(m))


def test_host_labels_are_normalised_and_bounded() -> None:
    assert normalise_host("Registry-1.Docker.IO") == "registry-1.docker.io"
    assert normalise_host("https://user:secret@gcr.io/v2/p/r/manifests/latest") == "gcr.io"
    assert normalise_host("localhost:5000") == "localhost:5000"
    assert normalise_host("[::1]:5000") == "[::1]:5000"
    assert normalise_host("") == "none"
    assert normalise_host("not a host!") == "invalid"
    m = Metrics(max_hosts=3)
    for i in range(10):
        m(Event(ev.THROTTLED, host=f"r{i}.example.com"))
    s = scrape(m)
    hosts = {dict(labels)["registry"] for name, labels in s if name == "mirror_throttled_total"}
    assert hosts == {"r0.example.com", "r1.example.com", "r2.example.com", "other"}
    assert value(s, "mirror_throttled_total", registry="other") == 7


def test_no_secret_or_url_reaches_the_exposition() -> None:
    m = Metrics()
    secret = "s3cr3t-token-value"
    m(Event(ev.REQUEST, host=f"https://user:{secret}@gcr.io/v2/x?token={secret}", status=401, detail="GET"))
    m(Event(ev.IMAGE_FAILED, host="gcr.io", repository="p/app", digest="sha256:ab", detail=secret))
    m(Event(ev.RETRY, host="gcr.io", detail=f"auth {secret}"))
    m(Event(ev.BLOB_FAILED, host="gcr.io", repository="p/app", detail=f"https://gcr.io/{secret}"))
    m.job_started("nightly")
    body = m.render()[0].decode()
    assert secret not in body
    assert "p/app" not in body and "sha256:ab" not in body and "https://" not in body


def test_helpers() -> None:
    assert [status_class(s) for s in (100, 204, 301, 404, 599, 0, 600, -1)] == [
        "1xx", "2xx", "3xx", "4xx", "5xx", "none", "none", "none"
    ]  # fmt: skip
    assert error_kind("Transport") == "transport"
    assert error_kind("whatever") == "other"
    assert error_kind("internal") == "internal"
    assert {"transport", "auth", "registry", "not_found", "other"} <= ERROR_KINDS
    assert ev.BLOB_PUSHED in EVENT_KINDS and len(EVENT_KINDS) == 22


def test_unknown_events_and_fanout_are_safe() -> None:
    m = Metrics()
    m(Event("something_new", host="gcr.io"))
    Fanout(m)(Event(ev.BLOB_SKIPPED, host="gcr.io"))
    s = scrape(m)
    assert value(s, "mirror_events_total", kind="other") == 1
    assert value(s, "mirror_events_total", kind="blob_skipped") == 1


def one_event_of_each_kind() -> list[Event]:
    return [
        Event(kind, host="gcr.io", size=10, status=200, detail="GET" if kind == ev.REQUEST else "transport")
        for kind in sorted(EVENT_KINDS)
    ]


def test_every_documented_metric_is_exposed() -> None:
    m = Metrics()
    for event in one_event_of_each_kind():
        m(event)
    m.job_started("j")
    m.job_finished("j", True, 1.0)
    names = {name for name, _ in scrape(m)}
    for name in METRIC_NAMES:
        assert name in names or f"{name}_count" in names, name
    doc = metrics_module.__doc__
    assert doc is not None
    for name in METRIC_NAMES:
        assert name in doc, f"{name} is not documented"
    assert all(name.startswith("mirror_") for name in names)


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=1.0.0", "text/plain"])
def test_render_negotiates_format(accept: str) -> None:
    body, content_type = Metrics().render(accept)
    assert content_type.split(";")[0] == accept.split(";")[0]
    assert b"mirror_errors" in body


def test_registry_label_from_repository_when_no_host() -> None:
    m = Metrics()
    m(Event(ev.BLOB_PUSHED, repository="gcr.io/project/app", size=7))
    m(Event(ev.BLOB_SKIPPED, repository="oci:/var/lib/mirror/layout"))
    m(Event(ev.BLOB_SKIPPED, repository="s3://bucket/prefix/app"))
    m(Event(ev.IMAGE_COPIED, host="ghcr.io", repository="gcr.io/project/app"))
    m(Event(ev.MANIFEST_PUSHED))
    s = scrape(m)
    assert value(s, "mirror_destination_bytes_total", registry="gcr.io") == 7
    assert value(s, "mirror_blobs_total", registry="oci", outcome="skipped") == 1
    assert value(s, "mirror_blobs_total", registry="s3", outcome="skipped") == 1
    assert value(s, "mirror_images_total", registry="ghcr.io", outcome="copied") == 1
    assert value(s, "mirror_manifests_pushed_total", registry="none") == 1
    body = m.render()[0].decode()
    assert "project" not in body and "bucket" not in body and "/var/lib" not in body


def test_transfer_finish_matches_its_start_by_digest() -> None:
    m = Metrics()
    m(Event(ev.TRANSFER_STARTED, repository="gcr.io/p/a", digest="sha256:1"))
    m(Event(ev.TRANSFER_STARTED, repository="quay.io/p/b", digest="sha256:2"))
    m(Event(ev.TRANSFER_STARTED, repository="quay.io/p/b", digest="sha256:2"))
    s = scrape(m)
    assert value(s, "mirror_transfers_in_flight", registry="gcr.io") == 1
    assert value(s, "mirror_transfers_in_flight", registry="quay.io") == 2
    m(Event(ev.TRANSFER_FINISHED, digest="sha256:1"))
    m(Event(ev.TRANSFER_FINISHED, digest="sha256:2"))
    s = scrape(m)
    assert value(s, "mirror_transfers_in_flight", registry="gcr.io") == 0
    assert value(s, "mirror_transfers_in_flight", registry="quay.io") == 1
    m(Event(ev.TRANSFER_FINISHED, digest="sha256:2"))
    m(Event(ev.TRANSFER_FINISHED, digest="sha256:2"))
    assert value(scrape(m), "mirror_transfers_in_flight", registry="quay.io") == 0
    assert value(scrape(m), "mirror_transfers_in_flight", registry="none") == 0
