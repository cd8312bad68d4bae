"""The status document: is each job's copy current, and if not, what is missing. Pure.

Built from :meth:`~.state.ServiceState.snapshot`, the configured jobs, the transfers in flight
(:class:`~mirror.jobs.inflight.InFlight`) and the shard; served as ``/status.json`` and rendered
as the page at ``/`` (:mod:`.statuspage`). Every string in it passes through the redactor of logs
and reports (:func:`redacted`), so no secret that reached an error text is shown.

Per job, ``verdict`` answers the question at a glance:

============  =====================================================================================
verdict       when
============  =====================================================================================
``failing``   the last pass failed, or left an image failed, in conflict or deferred
``drifting``  the drift check after the last pass found a destination that is not in sync
``pending``   no pass has finished yet (or one is running for the first time)
``current``   the last pass left every image copied or skipped, and the drift check (when one ran)
              found every destination in sync
============  =====================================================================================

The document (``/status.json``); times are unix seconds, sizes bytes:

- ``mirror_version``, ``generated_at``, ``started_at``; ``current`` (every job current) and
  ``verdicts`` (jobs per verdict); ``shard``: ``{shard: "I/N" or null, sharded, repositories}``;
- ``jobs``, in config order: ``name``, ``source``, ``destinations``, ``schedule``, ``verdict``,
  ``next_pass``, ``running_since``, ``slots_skipped`` (scheduled starts skipped because a pass
  was still running); ``last_pass`` and ``last_event_run`` (``started``,
  ``seconds``, ``ok``, ``images``, ``failed``, ``error``, ``statuses`` (images by status),
  ``bytes_written``, ``problems`` (``image``, ``destination``, ``status``, ``error``,
  ``error_kind``; the first 200) and ``problems_total``); ``lag`` (``count``, ``p50_seconds``,
  ``p99_seconds``, ``max_seconds``); ``drift`` (``checked_at``, ``counts`` by state, ``rows``: the
  first :data:`DRIFT_SHOWN` rows of each state not in sync, ``rows_kept``, ``rows_total``,
  ``url`` and ``json_url`` of the full list); ``last_prune``; ``events_pending``;
- ``transfers``: ``image``, ``repository``, ``digest``, ``size``, ``done``, ``started_at``,
  ``seconds``, ``rate_bytes_per_second``, ``expected_end_at`` (null while no byte moved),
  ``idle_seconds`` (since the last byte).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from mirror.jobs.config import Job
from mirror.jobs.drift import IN_SYNC, STATES
from mirror.service.shard import Shard

DRIFT_SHOWN = 10  # drift rows shown per state on the page; the rest behind a link
VERDICTS = ("failing", "drifting", "pending", "current")
DRIFT_STATES = tuple(s for s in STATES if s != IN_SYNC)


def job_config(job: Job) -> dict[str, Any]:
    """What the configuration says of a job: source, destinations, schedule."""
    return {
        "source": str(job.source),
        "destinations": [str(d) for d in job.destinations],
        "schedule": str(job.schedule.spec),
    }


def drift_url(name: str, *, state: str = "", json: bool = False) -> str:
    path = f"/jobs/{quote(name, safe='')}/drift" + (".json" if json else "")
    return path + (f"?state={quote(state, safe='')}" if state else "")


def verdict(job: Mapping[str, Any]) -> str:
    last = job.get("last_pass")
    if last is None:
        return "pending"
    if not last["ok"] or last.get("problems_total"):
        return "failing"
    drift = job.get("drift") or {}
    if any(n for state, n in drift.items() if state != IN_SYNC):
        return "drifting"
    return "current"


def _drift(job: Mapping[str, Any], shown: int) -> dict[str, Any] | None:
    counts = job.get("drift")
    if counts is None:
        return None
    rows: Sequence[Mapping[str, str]] = job.get("drift_rows") or []
    by_state: dict[str, list[Mapping[str, str]]] = {}
    for row in rows:
        listed = by_state.setdefault(row["state"], [])
        if len(listed) < shown:
            listed.append(row)
    name = job["name"]
    return {
        "checked_at": job.get("drift_at"),
        "counts": dict(counts),
        "rows": {state: by_state[state] for state in DRIFT_STATES if state in by_state},
        "rows_kept": len(rows),
        "rows_total": job.get("drift_rows_total", len(rows)),
        "url": drift_url(name),
        "json_url": drift_url(name, json=True),
    }


def job_status(job: Mapping[str, Any], config: Mapping[str, Any], shown: int = DRIFT_SHOWN) -> dict[str, Any]:
    return {
        "name": job["name"],
        **config,
        "verdict": verdict(job),
        "next_pass": job.get("next_pass"),
        "running_since": job.get("running_since"),
        "slots_skipped": job.get("slots_skipped", 0),
        "last_pass": job.get("last_pass"),
        "last_event_run": job.get("last_event_run"),
        "lag": job.get("lag"),
        "drift": _drift(job, shown),
        "last_prune": job.get("last_prune"),
        "events_pending": job.get("events_pending", 0),
    }


def shard_summary(shard: Shard | None, owned: Iterable[str]) -> dict[str, Any]:
    """The shard this replica owns (``None`` when unsharded) and how many repositories it copies."""
    sharded = shard is not None and shard.sharded
    return {"shard": str(shard) if sharded else None, "sharded": sharded, "repositories": len(set(owned))}


def status_document(
    state: Mapping[str, Any],
    jobs: Sequence[Job],
    transfers: Sequence[Mapping[str, Any]],
    *,
    shard: Mapping[str, Any],
    version: str,
    now: float,
    redact: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The whole status: every configured job (in config order), transfers in flight, shard."""
    known = {j["name"]: j for j in state.get("jobs", [])}
    rows = [job_status(known.get(job.name, {"name": job.name}), job_config(job)) for job in jobs]
    doc = {
        "mirror_version": version,
        "generated_at": round(now, 3),
        "started_at": state.get("started"),
        "current": all(r["verdict"] == "current" for r in rows),
        "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
        "shard": dict(shard),
        "jobs": rows,
        "transfers": [dict(t) for t in transfers],
    }
    return _redacted_doc(doc, redact)


def drift_document(
    state: Mapping[str, Any],
    name: str,
    *,
    only: str = "",
    now: float,
    redact: Callable[[str], str] | None = None,
) -> dict[str, Any] | None:
    """Every drift row kept for job ``name`` (of state ``only`` when given); ``None`` for no such job."""
    job = next((j for j in state.get("jobs", []) if j["name"] == name), None)
    if job is None:
        return None
    rows = [r for r in job.get("drift_rows") or [] if not only or r["state"] == only]
    doc = {
        "job": name,
        "generated_at": round(now, 3),
        "state": only or None,
        "checked_at": job.get("drift_at"),
        "counts": job.get("drift"),
        "rows_kept": len(job.get("drift_rows") or []),
        "rows_total": job.get("drift_rows_total", 0),
        "rows": rows,
        "json_url": drift_url(name, state=only, json=True),
    }
    return _redacted_doc(doc, redact)


def _redacted_doc(doc: dict[str, Any], redact: Callable[[str], str] | None) -> dict[str, Any]:
    out = redacted(doc, redact)
    assert isinstance(out, dict)
    return out


def redacted(value: Any, redact: Callable[[str], str] | None) -> Any:
    """``value`` with ``redact`` applied to every string in it, keys included."""
    if redact is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redacted(k, redact): redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v, redact) for v in value]
    return value
