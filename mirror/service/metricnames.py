"""The names of the metrics :class:`~mirror.service.metrics.Metrics` exposes (documented there),
and the buckets of its run-duration histogram."""

from __future__ import annotations

# Run durations range from seconds (nothing changed) to hours (first copy of a large catalog).
DURATION_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1200.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
)

METRIC_NAMES: tuple[str, ...] = (
    "mirror_source_bytes_total",
    "mirror_destination_bytes_total",
    "mirror_transfer_progress_bytes_total",
    "mirror_blobs_total",
    "mirror_manifests_pushed_total",
    "mirror_images_total",
    "mirror_tag_conflicts_total",
    "mirror_errors_total",
    "mirror_retries_total",
    "mirror_throttled_total",
    "mirror_rate_limit_remaining",
    "mirror_token_fetches_total",
    "mirror_credential_refreshes_total",
    "mirror_requests_total",
    "mirror_transfers_in_flight",
    "mirror_transfer_stalls_total",
    "mirror_blob_resumes_total",
    "mirror_events_total",
    "mirror_job_running",
    "mirror_job_runs_total",
    "mirror_job_run_duration_seconds",
    "mirror_job_last_run_timestamp_seconds",
    "mirror_job_last_run_success",
    "mirror_job_last_success_timestamp_seconds",
    "mirror_job_slots_skipped_total",
)
"""Names as they appear in the exposition (counters with ``_total``, histograms without suffix)."""
