"""The status page as HTML, from the status document (:mod:`.status`). Pure: document in, text out.

Server-rendered, no JavaScript, one small inline style sheet (allowed by its hash in the
``Content-Security-Policy`` the server sends, :data:`STYLE_HASH`), readable on a phone. Every value
from the document goes through :func:`esc` (image names and error texts come from remote
registries); links carry only this page's own paths. An optional ``refresh`` adds a
``<meta http-equiv="refresh">``. Times are shown in UTC with a relative form ("3 min ago").
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mirror.types.sizes import human_bytes

STYLE = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#c62828;--warn:#b26a00;--dim:#666;--line:#ccc}
@media (prefers-color-scheme:dark){:root{--ok:#4cc26a;--bad:#ff6b6b;--warn:#f0b040;--dim:#aaa;--line:#444}}
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:64rem;padding:.75rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.2rem;margin:0 0 .4rem}
h3{font-size:1rem;margin:.8rem 0 .3rem}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
a{color:inherit}
.meta,.dim{color:var(--dim);font-size:.9rem}
.headline{font-size:1.15rem;font-weight:600;margin:.3rem 0}
.headline.v-current{color:var(--ok)}.headline.v-failing{color:var(--bad)}
.headline.v-drifting{color:var(--warn)}
.job{border:1px solid var(--line);border-left:.4rem solid var(--dim);border-radius:.4rem;
padding:.6rem .8rem;margin:.8rem 0}
.v-current{border-left-color:var(--ok)}.v-failing{border-left-color:var(--bad)}
.v-drifting{border-left-color:var(--warn)}
.badge{font-size:.8rem;font-weight:600;padding:.05rem .45rem;border-radius:1rem;
border:1px solid currentColor;vertical-align:middle;white-space:nowrap}
.b-current{color:var(--ok)}.b-failing{color:var(--bad)}.b-drifting{color:var(--warn)}
.b-pending{color:var(--dim)}
dl.facts{display:grid;grid-template-columns:minmax(6rem,max-content) 1fr;gap:.15rem .8rem;margin:.3rem 0}
dl.facts dt{color:var(--dim)}dl.facts dd{margin:0;min-width:0}
@media (max-width:30rem){dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.3rem}}
ul.counts{display:flex;flex-wrap:wrap;gap:.3rem .9rem;list-style:none;padding:0;margin:.4rem 0}
ul.counts b{font-size:1.1rem}
.c-failed b,.c-conflict b{color:var(--bad)}.c-deferred b{color:var(--warn)}
ul.rows{list-style:none;padding:0;margin:.2rem 0}
ul.rows li{padding:.3rem 0;border-top:1px solid var(--line);min-width:0}
.error{color:var(--bad);overflow-wrap:anywhere;margin:.1rem 0}
progress{width:100%;height:.9rem}
details summary{cursor:pointer}
footer{margin-top:1.2rem}
""".strip()

STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
"""The ``style-src`` source of the page's one style sheet, for the Content-Security-Policy."""

VERDICT_WORDS = {
    "current": "current",
    "failing": "failing",
    "drifting": "drifting",
    "pending": "no pass yet",
}
DRIFT_WORDS = {
    "missing": "Missing",
    "different_digest": "Different digest",
    "incomplete": "Incomplete",
    "extra": "Extra",
    "source_unreadable": "Source unreadable",
    "destination_unreadable": "Destination unreadable",
}


def esc(value: object) -> str:
    """Any value as HTML text: quotes included, so it is safe in attributes too."""
    return html.escape(str(value), quote=True)


def when(ts: float | None, now: float) -> str:
    """``2024-06-01 12:15:02 UTC (3 min ago)``; ``never`` for None."""
    if ts is None:
        return "never"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = ts - now
    rel = f"in {span(delta)}" if delta >= 1 else ("now" if delta > -1 else f"{span(-delta)} ago")
    return f"{stamp} ({rel})"


def span(seconds: float) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``, ``3 d 4 h``."""
    s = round(max(seconds, 0.0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _link(path: str, text: str, refresh: int | None) -> str:
    href = path + ((("&" if "?" in path else "?") + f"refresh={refresh}") if refresh else "")
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def _head(title: str, refresh: int | None) -> str:
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="no-referrer">{meta}<title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>"
    )


def headline(doc: Mapping[str, Any]) -> str:
    jobs = doc["jobs"]
    if not jobs:
        return "No jobs"
    if doc["current"]:
        return f"All {len(jobs)} jobs current" if len(jobs) > 1 else "The job is current"
    counts = doc["verdicts"]
    parts = [f"{n} {VERDICT_WORDS[v]}" for v, n in counts.items() if n]
    return f"{len(jobs) - counts.get('current', 0)} of {len(jobs)} jobs not current: " + ", ".join(parts)


def render_status(doc: Mapping[str, Any], *, refresh: int | None = None) -> str:
    """The page at ``/``: the headline, every job, the transfers in flight."""
    now = doc["generated_at"]
    title = f"mirror: {headline(doc)}"
    shard = doc.get("shard") or {}
    where = f"shard {esc(shard['shard'])}" if shard.get("sharded") else "not sharded"
    repos = shard.get("repositories")
    if repos is not None:
        where += f" · {esc(repos)} source repositories"
    toggle = _link("/", "stop auto-refresh", None) if refresh else _link("/", "auto-refresh every 30 s", 30)
    verdict = next((v for v, n in doc["verdicts"].items() if n), "current")
    out = [
        _head(title, refresh),
        "<header><h1>mirror status</h1>",
        f'<p class="headline v-{verdict}">{esc(headline(doc))}</p>',
        f'<p class="meta">mirror {esc(doc["mirror_version"])} · {where} · up since '
        f"{esc(when(doc.get('started_at'), now))} · page generated {esc(when(now, now))} · "
        f'{toggle} · <a href="/status.json">JSON</a></p></header><main>',
    ]
    out.extend(_job(job, now, refresh) for job in doc["jobs"])
    out.append(_transfers(doc.get("transfers") or [], now))
    out.append(
        '</main><footer class="dim">Read-only: nothing on this page changes anything. '
        "Counts are those of the last pass; drift is from the check that follows each pass."
        "</footer></body></html>\n"
    )
    return "".join(out)


def _job(job: Mapping[str, Any], now: float, refresh: int | None) -> str:
    name, verdict = job["name"], job["verdict"]
    out = [
        f'<section class="job v-{esc(verdict)}" id="job-{esc(name)}">',
        f'<h2>{esc(name)} <span class="badge b-{esc(verdict)}">'
        f"{esc(VERDICT_WORDS.get(verdict, verdict))}</span></h2>",
        '<dl class="facts">',
        f"<dt>Source</dt><dd><code>{esc(job['source'])}</code></dd>",
        "<dt>Destinations</dt><dd>"
        + "<br>".join(f"<code>{esc(d)}</code>" for d in job["destinations"])
        + "</dd>",
        f"<dt>Schedule</dt><dd>{esc(job['schedule'])}; next pass {esc(_next(job, now))}</dd>",
    ]
    if job.get("running_since") is not None:
        out.append(f"<dt>Running</dt><dd>a pass since {esc(when(job['running_since'], now))}</dd>")
    out.append(_last_pass(job.get("last_pass"), now))
    out.append(_event_run(job, now))
    out.append(_lag(job.get("lag") or {}))
    out.append(_prune(job.get("last_prune"), now))
    out.append("</dl>")
    last = job.get("last_pass")
    if last is not None:
        out.append(_counts(last))
        if last.get("error"):
            out.append(f'<p class="error">Job error: {esc(last["error"])}</p>')
        out.append(_problems(last))
    out.append(_drift(job, now, refresh))
    out.append("</section>")
    return "".join(out)


def _next(job: Mapping[str, Any], now: float) -> str:
    if job.get("next_pass") is not None:
        return when(job["next_pass"], now)
    return "after the running one" if job.get("running_since") is not None else "not scheduled"


def _last_pass(last: Mapping[str, Any] | None, now: float) -> str:
    if last is None:
        return "<dt>Last pass</dt><dd>none yet</dd>"
    took = seconds(last.get("seconds"))
    how = "" if last.get("trigger", "schedule") == "schedule" else f" (by {esc(last['trigger'])})"
    return (
        f"<dt>Last pass</dt><dd>{esc(when(last['started'], now))}{how}, took {esc(took)}, "
        f"{esc(human_bytes(last.get('bytes_written', 0)))} written</dd>"
    )


def _event_run(job: Mapping[str, Any], now: float) -> str:
    run, waiting = job.get("last_event_run"), job.get("events_pending") or 0
    if run is None and not waiting:
        return ""
    parts = []
    if run is not None:
        parts.append(
            f"last {esc(when(run['started'], now))}: {esc(run['images'])} images, {esc(run['failed'])} failed"
        )
        if run.get("error"):
            parts.append(f'<span class="error">{esc(run["error"])}</span>')
    if waiting:
        parts.append(f"{esc(waiting)} waiting")
    return f"<dt>Event copies</dt><dd>{'; '.join(parts)}</dd>"


def _prune(prune: Mapping[str, Any] | None, now: float) -> str:
    """The last prune: its tags by outcome, why a guard rail stopped it, tags it failed to delete."""
    if not prune:
        return ""
    tags = prune.get("tags") or []
    outcomes: dict[str, int] = {}
    for tag in tags:
        outcomes[tag["outcome"]] = outcomes.get(tag["outcome"], 0) + 1
    counts = ", ".join(f"{esc(n)} {esc(o)}" for o, n in outcomes.items()) or "nothing to delete"
    dry = " (dry run)" if prune.get("dry_run") else ""
    notes = [
        f'<br><span class="error">{esc(r.get("message", ""))}</span>' for r in prune.get("refusals") or []
    ]
    failed = [t for t in tags if t["outcome"] == "failed"][:10]
    notes += [
        f"<br><code>{esc(t['destination'])}:{esc(t['tag'])}</code> "
        f'<span class="error">{esc(t["reason"])}</span>'
        for t in failed
    ]
    return f"<dt>Last prune</dt><dd>{esc(when(prune.get('at'), now))}{dry}: {counts}{''.join(notes)}</dd>"


def _lag(lag: Mapping[str, Any]) -> str:
    if not lag.get("count"):
        return "<dt>Replication lag</dt><dd>no event-driven copy yet</dd>"
    return (
        f"<dt>Replication lag</dt><dd>p50 {esc(seconds(lag.get('p50_seconds')))} · "
        f"p99 {esc(seconds(lag.get('p99_seconds')))} over the last {esc(lag['count'])} "
        "event-driven copies</dd>"
    )


def _counts(last: Mapping[str, Any]) -> str:
    statuses: Mapping[str, int] = last.get("statuses") or {}
    items = [f'<li class="{_nonzero(s, n)}"><b>{esc(n)}</b> {esc(s)}</li>' for s, n in statuses.items()]
    items.append(f"<li><b>{esc(last.get('images', 0))}</b> images</li>")
    return f'<ul class="counts" aria-label="images of the last pass">{"".join(items)}</ul>'


def _nonzero(status: str, n: object) -> str:
    return f"c-{esc(status)}" if n else "c-none"


def _problems(last: Mapping[str, Any]) -> str:
    rows = last.get("problems") or []
    total = last.get("problems_total", len(rows))
    if not rows:
        return ""
    more = f' <span class="dim">(the first {len(rows)} of {esc(total)})</span>' if total > len(rows) else ""
    items = []
    for row in rows:
        dest = f" → <code>{esc(row['destination'])}</code>" if row.get("destination") else ""
        items.append(
            f"<li><code>{esc(row['image'])}</code>{dest} <b>{esc(row['status'])}</b>"
            f'<p class="error">{esc(row.get("error") or "no error text")}</p></li>'
        )
    return f'<h3>Images not copied ({esc(total)}){more}</h3><ul class="rows problems">{"".join(items)}</ul>'


def _drift(job: Mapping[str, Any], now: float, refresh: int | None) -> str:
    drift = job.get("drift")
    if drift is None:
        return '<h3>Drift</h3><p class="dim">not checked yet (it runs after each pass)</p>'
    counts: Mapping[str, int] = drift.get("counts") or {}
    shown = {s: n for s, n in counts.items() if n or s == "in_sync"}
    summary = " · ".join(f"{esc(n)} {esc(s.replace('_', ' '))}" for s, n in shown.items())
    out = [f"<h3>Drift <span class='dim'>checked {esc(when(drift.get('checked_at'), now))}</span></h3>"]
    out.append(f"<p>{summary}</p>")
    for state, rows in (drift.get("rows") or {}).items():
        n = counts.get(state, len(rows))
        label = DRIFT_WORDS.get(state, state)
        items = "".join(_drift_row(row) for row in rows)
        link = ""
        if n > len(rows):
            path = str(drift["url"]) + "?state=" + quote(state, safe="")
            link = "<p>" + _link(path, f"all {n} {label.lower()}", refresh) + "</p>"
        out.append(
            f'<details open><summary>{esc(label)} ({esc(n)})</summary><ul class="rows">{items}</ul>'
            f"{link}</details>"
        )
    return "".join(out)


def _drift_row(row: Mapping[str, Any]) -> str:
    dest = f" → <code>{esc(row['destination'])}</code>" if row.get("destination") else ""
    digests = ""
    if row.get("source_digest") or row.get("destination_digest"):
        digests = (
            f'<br><span class="dim">source {esc(_short(row.get("source_digest")))}, destination '
            f"{esc(_short(row.get('destination_digest')))}</span>"
        )
    error = f'<p class="error">{esc(row["error"])}</p>' if row.get("error") else ""
    return f"<li><code>{esc(row['source'])}</code>{dest}{digests}{error}</li>"


def _short(digest: object) -> str:
    text = str(digest or "")
    return text[:19] + "…" if len(text) > 19 else (text or "none")


def _transfers(rows: Iterable[Mapping[str, Any]], now: float) -> str:
    rows = list(rows)
    if not rows:
        return '<section><h2>Transfers in flight</h2><p class="dim">none right now</p></section>'
    items = []
    for row in rows:
        size, done = int(row.get("size") or 0), int(row.get("done") or 0)
        pct = f"{100 * done / size:.0f}%" if size else "?"
        end = row.get("expected_end_at")
        ends = f"ends {esc(when(end, now))}" if end is not None else "end unknown"
        idle = row.get("idle_seconds") or 0
        stalled = f' · <b class="error">no byte for {esc(span(idle))}</b>' if idle >= 10 else ""
        items.append(
            f"<li><code>{esc(row['image'])}</code> blob <code>{esc(_short(row.get('digest')))}</code>"
            f'<progress max="{max(size, 1)}" value="{min(done, max(size, 1))}">{pct}</progress>'
            f"<br>{pct} · {esc(human_bytes(done))} of {esc(human_bytes(size))} · "
            f"{esc(human_bytes(row.get('rate_bytes_per_second') or 0))}/s · {ends}{stalled}</li>"
        )
    listed = "".join(items)
    return f'<section><h2>Transfers in flight ({len(items)})</h2><ul class="rows">{listed}</ul></section>'


def render_drift(doc: Mapping[str, Any], *, refresh: int | None = None) -> str:
    """The full drift list of one job (``/jobs/NAME/drift``), optionally of one state."""
    name, state, now = doc["job"], doc.get("state"), doc["generated_at"]
    label = DRIFT_WORDS.get(state, state) if state else "Drift"
    rows = doc.get("rows") or []
    kept, total = doc.get("rows_kept", len(rows)), doc.get("rows_total", len(rows))
    out = [
        _head(f"mirror: {label} of {name}", refresh),
        f"<header><h1>{esc(label)} of job {esc(name)}</h1>",
        f'<p class="meta">checked {esc(when(doc.get("checked_at"), now))} · {len(rows)} rows · '
        f"{_link('/', 'back to the status page', refresh)} · "
        f'<a href="{esc(doc.get("json_url", ""))}">JSON</a></p></header><main>',
    ]
    if total > kept:
        out.append(
            f'<p class="dim">The service keeps the first {esc(kept)} of {esc(total)} rows; '
            f"<code>mirror verify --job {esc(name)} --report FILE</code> lists them all.</p>"
        )
    by_state: dict[str, list[str]] = {}
    for row in rows:
        by_state.setdefault(row["state"], []).append(_drift_row(row))
    for key, items in by_state.items():
        out.append(
            f'<h2>{esc(DRIFT_WORDS.get(key, key))} ({len(items)})</h2><ul class="rows">{"".join(items)}</ul>'
        )
    if not rows:
        out.append('<p class="dim">no rows</p>')
    out.append("</main></body></html>\n")
    return "".join(out)
