"""Prometheus metrics of replication: drift, lag, event triggers and prune.

Registered on the same ``CollectorRegistry`` as :class:`~mirror.service.metrics.Metrics`, so one
``/metrics`` serves both. Labels are bounded: ``job_name`` comes from the config, ``state``,
``endpoint`` and ``outcome`` from the closed sets below.

Metrics (name, type, labels: meaning):

    mirror_drift_images                  gauge      job_name, state: rows of the drift check run
                                                    after each pass, by state (in_sync, missing,
                                                    different_digest, incomplete, extra,
                                                    source_unreadable, destination_unreadable;
                                                    incomplete stays 0: only mirror verify walks
                                                    layout content)
    mirror_drift_check_timestamp_seconds gauge      job_name: unix time of the last drift check
    mirror_replication_lag_seconds       histogram  job_name: for each event-triggered copy, from
                                                    the event (or the push time it carries) to the
                                                    destination tag being written
    mirror_event_notifications_total     counter    endpoint, outcome: requests and the events they
                                                    held, by what became of them (see OUTCOMES)
    mirror_event_images_total            counter    job_name, outcome: images an event asked for,
                                                    by copy outcome (copied, skipped, conflict,
                                                    failed, pruned_check)
    mirror_pruned_tags_total             counter    job_name, outcome: destination tags deleted,
                                                    kept, or failed to delete
    mirror_prune_refusals_total          counter    job_name, reason: prune checks that deleted
                                                    nothing because a guard rail held
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mirror.jobs.drift import STATES

ENDPOINTS = ("distribution", "pubsub", "generic", "forwarded")
OUTCOMES = (
    "accepted",  # an event that covers at least one job, queued here
    "forwarded",  # handed to the replica owning its repository
    "ignored",  # well formed, but no job covers it (or not an image push/delete)
    "unauthorized",  # missing or wrong bearer token (401)
    "malformed",  # a body that does not parse (400)
    "too_large",  # a body over 1 MiB (413)
    "forward_failed",  # the owner could not be reached before the hand-off deadline
    "overflow",  # not queued: too many images already wait for a copy (the next pass copies them)
)
IMAGE_OUTCOMES = ("copied", "skipped", "conflict", "failed", "pruned_check")
PRUNE_OUTCOMES = ("deleted", "kept", "failed")
PRUNE_REASONS = ("source_failed", "source_empty", "over_cap", "destination_failed", "shared_destination")
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

METRIC_NAMES = (
    "mirror_drift_images",
    "mirror_drift_check_timestamp_seconds",
    "mirror_replication_lag_seconds",
    "mirror_event_notifications_total",
    "mirror_event_images_total",
    "mirror_pruned_tags_total",
    "mirror_prune_refusals_total",
)


class ReplicationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        job_state, job_outcome = ["job_name", "state"], ["job_name", "outcome"]
        self.drift = Gauge("mirror_drift_images", "Drift check rows by state.", job_state, registry=r)
        self.drift_checked = Gauge(
            "mirror_drift_check_timestamp_seconds",
            "Unix time of the last drift check.",
            ["job_name"],
            registry=r,
        )
        self.lag = Histogram(
            "mirror_replication_lag_seconds",
            "From an event to the destination tag being written, per event-triggered copy.",
            ["job_name"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "mirror_event_notifications",
            "Event requests and the events they held, by outcome.",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.event_images = Counter(
            "mirror_event_images", "Images events asked for, by outcome.", job_outcome, registry=r
        )
        self.pruned = Counter(
            "mirror_pruned_tags", "Tags considered by prune, by outcome.", job_outcome, registry=r
        )
        self.prune_refusals = Counter(
            "mirror_prune_refusals", "Prune checks a guard rail stopped.", ["job_name", "reason"], registry=r
        )
        for endpoint in ENDPOINTS:
            for outcome in OUTCOMES:
                self.notifications.labels(endpoint=endpoint, outcome=outcome)

    def job(self, name: str) -> None:
        """Make a job's series visible from the start (zeros)."""
        for state in STATES:
            self.drift.labels(job_name=name, state=state)
        self.lag.labels(job_name=name)
        for outcome in IMAGE_OUTCOMES:
            self.event_images.labels(job_name=name, outcome=outcome)
        for outcome in PRUNE_OUTCOMES:
            self.pruned.labels(job_name=name, outcome=outcome)

    def set_drift(self, name: str, counts: dict[str, int], when: float) -> None:
        for state in STATES:
            self.drift.labels(job_name=name, state=state).set(counts.get(state, 0))
        self.drift_checked.labels(job_name=name).set(when)

    def notification(self, endpoint: str, outcome: str, n: int = 1) -> None:
        if endpoint in ENDPOINTS and outcome in OUTCOMES and n > 0:
            self.notifications.labels(endpoint=endpoint, outcome=outcome).inc(n)
