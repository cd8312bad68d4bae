"""Prometheus metrics, fed by events and by the daemon's job lifecycle.

A :class:`Metrics` owns its own ``CollectorRegistry`` (several may coexist, one per test) and is an
``EventSink``: pass it (or a ``Fanout`` holding it) wherever events are emitted. The daemon also
calls :meth:`Metrics.job_started` and :meth:`Metrics.job_finished` around every run.

Labels are bounded and carry no secrets. ``registry`` is a host name (``host[:port]``) taken from
an event's host, or else from the first part of its repository (``oci`` and ``s3`` for those
stores), normalised, and capped: after ``max_hosts`` distinct hosts further ones count under
``other``; a value that does not look like a host counts under ``invalid``, an empty one under
``none``. ``job_name`` is a job name from the config (not ``job``, which Prometheus sets to the
scrape job and would rename ours to ``exported_job``). ``kind``, ``outcome``, ``method``, ``code`` and
``result`` come from closed sets. URLs, repositories, tags, digests and error messages never
become labels.

Counters carry no ``*_created`` series: the daemon turns them off for the process (they double
the series count and Prometheus derives resets on its own).

Metrics (name, type, labels: meaning):

Transfers
    mirror_source_bytes_total                   counter    registry: bytes read from sources
                                                           (``blob_read`` events)
    mirror_destination_bytes_total              counter    registry: bytes written to destinations
                                                           (the size of each pushed blob)
    mirror_transfer_progress_bytes_total        counter    registry: bytes streamed so far, counted
                                                           while transfers run (``blob_progress``)
    mirror_transfers_in_flight                  gauge      registry: blob transfers running now
    mirror_transfer_stalls_total                counter    registry, side: a source or destination
                                                           that made no progress for stall_timeout
    mirror_blob_resumes_total                   counter    registry, how: source reads continued after
                                                           their connection broke: ``range`` (the rest
                                                           by a range request) or ``reread`` (the
                                                           source sent the whole blob again)
    mirror_blobs_total                          counter    registry, outcome: blobs at a destination
                                                           by outcome: copied, mounted, skipped, failed
    mirror_manifests_pushed_total               counter    registry: manifests and indexes written
    mirror_images_total                         counter    registry, outcome: images by outcome:
                                                           copied, skipped, failed, deferred (left
                                                           for a later pass: the source's pull
                                                           limit is spent)
    mirror_tag_conflicts_total                  counter    registry: destination tags left alone
                                                           because they name another digest

Errors and protocol
    mirror_errors_total                         counter    kind, scope: failures by error kind (the
                                                           ``kind`` of the error tree, else ``other``);
                                                           scope is ``blob`` or ``image`` (a failed
                                                           blob usually also fails its image)
    mirror_retries_total                        counter    registry, kind: temporary failures retried
    mirror_throttled_total                      counter    registry: 429 answers
    mirror_rate_limit_remaining                 gauge      registry: pulls the registry last said
                                                           remain in its window (Docker Hub's
                                                           ``RateLimit-Remaining``)
    mirror_token_fetches_total                  counter    registry: tokens obtained from a token realm
    mirror_credential_refreshes_total           counter    registry: provider credentials refreshed
    mirror_requests_total                       counter    registry, method, code: HTTP requests sent;
                                                           code is the status class 1xx..5xx, or
                                                           ``none`` when no answer came
    mirror_events_total                         counter    kind: every event received, by event kind

Jobs
    mirror_job_running                          gauge      job_name: runs in progress
    mirror_job_runs_total                       counter    job_name, result: finished runs, success/failure
    mirror_job_run_duration_seconds             histogram  job_name: duration of each run
    mirror_job_last_run_timestamp_seconds       gauge      job_name: unix time the last run finished
    mirror_job_last_run_success                 gauge      job_name: 1 if the last run succeeded, else 0
    mirror_job_last_success_timestamp_seconds   gauge      job_name: unix time the last successful run
                                                           finished
    mirror_job_slots_skipped_total              counter    job_name: scheduled starts skipped because the
                                                           job's previous run was still going
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from mirror.service.labels import (
    ERROR_KINDS,
    ERROR_SCOPES,
    EVENT_KINDS,
    HOST_INVALID,
    HOST_NONE,
    HOST_OTHER,
    HTTP_METHODS,
    JobLike,
    error_kind,
    job_name,
    normalise_host,
    status_class,
    store_host,
)
from mirror.service.metricnames import DURATION_BUCKETS, METRIC_NAMES
from mirror.types import events as ev
from mirror.types.clock import Clock, system_clock
from mirror.types.events import Event

__all__ = ["METRIC_NAMES", "Metrics"]

PREFIX = "mirror_"

DEFAULT_MAX_HOSTS = 256


class Metrics:
    """Prometheus metrics of one daemon; an ``EventSink`` and the target of job lifecycle calls."""

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.clock = clock
        self.max_hosts = max(0, max_hosts)
        self._hosts: set[str] = set()
        self._in_flight: dict[str, int] = {}
        self._transfer_hosts: dict[str, list[str]] = {}  # digest -> labels of running transfers
        self._running: dict[str, int] = {}
        r = self.registry

        self.source_bytes = Counter(
            "mirror_source_bytes", "Bytes read from source registries.", ["registry"], registry=r
        )
        self.destination_bytes = Counter(
            "mirror_destination_bytes",
            "Bytes written to destination registries (size of each pushed blob).",
            ["registry"],
            registry=r,
        )
        self.progress_bytes = Counter(
            "mirror_transfer_progress_bytes",
            "Bytes streamed so far by running transfers, counted as they pass.",
            ["registry"],
            registry=r,
        )
        self.blobs = Counter(
            "mirror_blobs",
            "Blobs by outcome at a destination: copied, mounted, skipped, failed.",
            ["registry", "outcome"],
            registry=r,
        )
        self.manifests_pushed = Counter(
            "mirror_manifests_pushed", "Manifests and indexes written.", ["registry"], registry=r
        )
        self.images = Counter(
            "mirror_images",
            "Images by outcome: copied, skipped, failed, deferred.",
            ["registry", "outcome"],
            registry=r,
        )
        self.tag_conflicts = Counter(
            "mirror_tag_conflicts",
            "Destination tags left alone because they name another digest.",
            ["registry"],
            registry=r,
        )
        self.errors = Counter(
            "mirror_errors",
            "Failures by error kind; scope is blob or image.",
            ["kind", "scope"],
            registry=r,
        )
        self.retries = Counter(
            "mirror_retries", "Temporary failures retried, by error kind.", ["registry", "kind"], registry=r
        )
        self.throttled = Counter("mirror_throttled", "429 answers.", ["registry"], registry=r)
        self.rate_limit_remaining = Gauge(
            "mirror_rate_limit_remaining",
            "Pulls the registry last said remain in its rate-limit window.",
            ["registry"],
            registry=r,
        )
        self.token_fetches = Counter(
            "mirror_token_fetches", "Registry tokens obtained from a token realm.", ["registry"], registry=r
        )
        self.credential_refreshes = Counter(
            "mirror_credential_refreshes", "Provider credentials refreshed.", ["registry"], registry=r
        )
        self.requests = Counter(
            "mirror_requests",
            "HTTP requests sent, by method and status class (none: no answer).",
            ["registry", "method", "code"],
            registry=r,
        )
        self.transfers_in_flight = Gauge(
            "mirror_transfers_in_flight", "Blob transfers running now.", ["registry"], registry=r
        )
        self.stalls = Counter(
            "mirror_transfer_stalls",
            "Transfers whose source or destination made no progress for stall_timeout.",
            ["registry", "side"],
            registry=r,
        )
        self.blob_resumes = Counter(
            "mirror_blob_resumes",
            "Source reads continued after their connection broke: range, or reread (whole blob again).",
            ["registry", "how"],
            registry=r,
        )
        self.events = Counter("mirror_events", "Events received, by event kind.", ["kind"], registry=r)
        self.slots_skipped = Counter(
            "mirror_job_slots_skipped",
            "Scheduled starts skipped because the job's previous run was still going.",
            ["job_name"],
            registry=r,
        )
        self.job_running = Gauge("mirror_job_running", "Runs of a job in progress.", ["job_name"], registry=r)
        self.job_runs = Counter(
            "mirror_job_runs",
            "Finished runs by result: success or failure.",
            ["job_name", "result"],
            registry=r,
        )
        self.job_duration = Histogram(
            "mirror_job_run_duration_seconds",
            "Duration of each run of a job.",
            ["job_name"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.job_last_run = Gauge(
            "mirror_job_last_run_timestamp_seconds",
            "Unix time when the last run of a job finished.",
            ["job_name"],
            registry=r,
        )
        self.job_last_ok = Gauge(
            "mirror_job_last_run_success",
            "1 if the last run of a job succeeded, else 0.",
            ["job_name"],
            registry=r,
        )
        self.job_last_success = Gauge(
            "mirror_job_last_success_timestamp_seconds",
            "Unix time when the last successful run of a job finished.",
            ["job_name"],
            registry=r,
        )

        # Known label sets start at zero so that rate() and absence alerts work from the start.
        for kind in sorted(ERROR_KINDS):
            for scope in ERROR_SCOPES:
                self.errors.labels(kind=kind, scope=scope)
        for kind in sorted(EVENT_KINDS | {"other"}):
            self.events.labels(kind=kind)

    # -- labels -------------------------------------------------------------------------------

    def host_label(self, host: str) -> str:
        """The ``registry`` label for a host: normalised, and capped at ``max_hosts`` distinct values."""
        label = normalise_host(host)
        if label in (HOST_NONE, HOST_INVALID) or label in self._hosts:
            return label
        if len(self._hosts) >= self.max_hosts:
            return HOST_OTHER
        self._hosts.add(label)
        return label

    def registry_label(self, event: Event) -> str:
        """The ``registry`` label of an event: its host, else the store named by its repository.

        A repository ``host/path`` gives ``host``; ``oci:DIR`` gives ``oci``; ``s3://bucket/..``
        gives ``s3``. Paths, buckets and repository names themselves never become labels.
        """
        if event.host or not event.repository:
            return self.host_label(event.host)
        return self.host_label(store_host(event.repository))

    # -- events -------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Count one event. Never raises for odd input (unknown kinds, negative sizes, odd hosts)."""
        kind = event.kind
        self.events.labels(kind=kind if kind in EVENT_KINDS else "other").inc()
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(self, event)

    def _request(self, event: Event) -> None:
        method = event.detail.strip().upper()
        self.requests.labels(
            registry=self.registry_label(event),
            method=method if method in HTTP_METHODS else "other",
            code=status_class(event.status),
        ).inc()

    def _retry(self, event: Event) -> None:
        self.retries.labels(registry=self.registry_label(event), kind=error_kind(event.detail)).inc()

    def _throttled(self, event: Event) -> None:
        self.throttled.labels(registry=self.registry_label(event)).inc()

    def _token_fetch(self, event: Event) -> None:
        self.token_fetches.labels(registry=self.registry_label(event)).inc()

    def _credential_refresh(self, event: Event) -> None:
        self.credential_refreshes.labels(registry=self.registry_label(event)).inc()

    def _blob_read(self, event: Event) -> None:
        child = self.source_bytes.labels(registry=self.registry_label(event))
        if event.size > 0:
            child.inc(event.size)

    def _blob_progress(self, event: Event) -> None:
        child = self.progress_bytes.labels(registry=self.registry_label(event))
        if event.size > 0:
            child.inc(event.size)

    def _blob_pushed(self, event: Event) -> None:
        host = self.registry_label(event)
        self.blobs.labels(registry=host, outcome="copied").inc()
        child = self.destination_bytes.labels(registry=host)
        if event.size > 0:
            child.inc(event.size)

    def _blob_mounted(self, event: Event) -> None:
        self.blobs.labels(registry=self.registry_label(event), outcome="mounted").inc()

    def _blob_skipped(self, event: Event) -> None:
        self.blobs.labels(registry=self.registry_label(event), outcome="skipped").inc()

    def _blob_failed(self, event: Event) -> None:
        self.blobs.labels(registry=self.registry_label(event), outcome="failed").inc()
        self.errors.labels(kind=error_kind(event.detail), scope="blob").inc()

    def _blob_resumed(self, event: Event) -> None:
        how = event.detail if event.detail in ("range", "reread") else "other"
        self.blob_resumes.labels(registry=self.registry_label(event), how=how).inc()

    def _manifest_pushed(self, event: Event) -> None:
        self.manifests_pushed.labels(registry=self.registry_label(event)).inc()

    def _image_copied(self, event: Event) -> None:
        self.images.labels(registry=self.registry_label(event), outcome="copied").inc()

    def _image_skipped(self, event: Event) -> None:
        self.images.labels(registry=self.registry_label(event), outcome="skipped").inc()

    def _image_deferred(self, event: Event) -> None:
        self.images.labels(registry=self.registry_label(event), outcome="deferred").inc()

    def _rate_limit(self, event: Event) -> None:
        self.rate_limit_remaining.labels(registry=self.registry_label(event)).set(event.size)

    def _image_failed(self, event: Event) -> None:
        self.images.labels(registry=self.registry_label(event), outcome="failed").inc()
        self.errors.labels(kind=error_kind(event.detail), scope="image").inc()

    def _tag_conflict(self, event: Event) -> None:
        self.tag_conflicts.labels(registry=self.registry_label(event)).inc()

    def _transfer_started(self, event: Event) -> None:
        host = self.registry_label(event)
        self._transfer_hosts.setdefault(event.digest, []).append(host)
        self._set_in_flight(host, +1)

    def _transfer_finished(self, event: Event) -> None:
        # The finish is counted against the registry its start was counted against (matched by
        # digest), so the gauge balances even when the finish names no host or repository.
        started = self._transfer_hosts.get(event.digest)
        if started:
            host = started.pop()
            if not started:
                del self._transfer_hosts[event.digest]
        else:
            host = self.registry_label(event)
        self._set_in_flight(host, -1)

    def _transfer_stalled(self, event: Event) -> None:
        side = event.detail if event.detail in ("source", "destination") else "other"
        self.stalls.labels(registry=self.registry_label(event), side=side).inc()

    def _set_in_flight(self, host: str, delta: int) -> None:
        # A finish without a start (a listener attached mid-transfer) never drives the gauge negative.
        count = max(0, self._in_flight.get(host, 0) + delta)
        self._in_flight[host] = count
        self.transfers_in_flight.labels(registry=host).set(count)

    _handlers: ClassVar[dict[str, Callable[[Metrics, Event], None]]] = {
        ev.REQUEST: _request,
        ev.RETRY: _retry,
        ev.THROTTLED: _throttled,
        ev.TOKEN_FETCH: _token_fetch,
        ev.CREDENTIAL_REFRESH: _credential_refresh,
        ev.BLOB_READ: _blob_read,
        ev.BLOB_PROGRESS: _blob_progress,
        ev.BLOB_PUSHED: _blob_pushed,
        ev.BLOB_MOUNTED: _blob_mounted,
        ev.BLOB_SKIPPED: _blob_skipped,
        ev.BLOB_FAILED: _blob_failed,
        ev.BLOB_RESUMED: _blob_resumed,
        ev.MANIFEST_PUSHED: _manifest_pushed,
        ev.IMAGE_COPIED: _image_copied,
        ev.IMAGE_SKIPPED: _image_skipped,
        ev.IMAGE_FAILED: _image_failed,
        ev.IMAGE_DEFERRED: _image_deferred,
        ev.RATE_LIMIT: _rate_limit,
        ev.TAG_CONFLICT: _tag_conflict,
        ev.TRANSFER_STARTED: _transfer_started,
        ev.TRANSFER_FINISHED: _transfer_finished,
        ev.TRANSFER_STALLED: _transfer_stalled,
    }

    # -- jobs ---------------------------------------------------------------------------------

    def job_started(self, job: JobLike) -> None:
        """A run of ``job`` begins; also makes the job's series visible before its first run ends."""
        name = job_name(job)
        self._running[name] = self._running.get(name, 0) + 1
        self.job_running.labels(job_name=name).set(self._running[name])
        for result in ("success", "failure"):
            self.job_runs.labels(job_name=name, result=result)
        self.job_duration.labels(job_name=name)
        self.slots_skipped.labels(job_name=name)

    def job_slot_skipped(self, job: JobLike) -> None:
        """A scheduled start of ``job`` was skipped: its previous run is still going."""
        self.slots_skipped.labels(job_name=job_name(job)).inc()

    def job_finished(self, job: JobLike, ok: bool, duration: float) -> None:
        """A run of ``job`` ended after ``duration`` seconds; ``ok`` says whether it succeeded."""
        name = job_name(job)
        running = max(0, self._running.get(name, 0) - 1)
        self._running[name] = running
        self.job_running.labels(job_name=name).set(running)
        now = self.clock()
        self.job_runs.labels(job_name=name, result="success" if ok else "failure").inc()
        self.job_duration.labels(job_name=name).observe(max(0.0, duration))
        self.job_last_run.labels(job_name=name).set(now)
        self.job_last_ok.labels(job_name=name).set(1 if ok else 0)
        if ok:
            self.job_last_success.labels(job_name=name).set(now)

    def forget_job(self, job: JobLike) -> None:
        """Drop every series of a job (after a config reload removed it)."""
        name = job_name(job)
        self._running.pop(name, None)
        for metric in (
            self.job_running,
            self.job_duration,
            self.job_last_run,
            self.job_last_ok,
            self.job_last_success,
            self.slots_skipped,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(name)
        for result in ("success", "failure"):
            with contextlib.suppress(KeyError):
                self.job_runs.remove(name, result)

    # -- exposition ---------------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header: (body, content type); text format by default."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
