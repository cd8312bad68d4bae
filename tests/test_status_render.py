"""The status page without a registry: the document (pure), its HTML (hostile text stays text),
the transfers-in-flight table fed by events, and the routes (GET/HEAD only, headers, errors)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.copy.results import DestinationResult, ImageResult
from mirror.jobs.config.load import parse_config
from mirror.jobs.drift import DriftEntry
from mirror.jobs.inflight import InFlight
from mirror.service.metrics import Metrics
from mirror.service.server import HealthServer
from mirror.service.shard import Shard
from mirror.service.state import PassInfo, ServiceState
from mirror.service.status import drift_document, shard_summary, status_document, verdict
from mirror.service.statuspage import STYLE_HASH, render_drift, render_status
from mirror.types import events as ev
from mirror.types.events import Event
from tests.support.passdetails import pass_details

NOW = 1_750_000_000.0
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> \"dq\" 'sq' & &amp; </li></ul>"
CONFIG = parse_config("""
version: 1
jobs:
  - name: web
    source: src.example/apps/web
    destinations: [dst.example/m, oci:/backup]
    schedule: {interval: 15m}
  - name: api
    source: src.example/apps/*
    destinations: [dst.example/m]
    schedule: {cron: "*/5 * * * *"}
  - name: idle
    source: src.example/idle
    destinations: [dst.example/m]
""")


def image(source: str, *dests: tuple[str, str, str], job: str = "api", written: int = 0) -> ImageResult:
    return ImageResult(
        source=source,
        job=job,
        destinations=[
            DestinationResult(d, status, error=error, bytes_written=written) for d, status, error in dests
        ],
    )


def sample_state() -> ServiceState:
    state = ServiceState(["web", "api", "idle"])
    state.started = NOW - 3600
    web = [
        image(f"src.example/apps/web:v{i}", ("dst.example/m/web", "copied", ""), job="web", written=100)
        for i in range(3)
    ]
    web.append(image("src.example/apps/web:v9", ("dst.example/m/web", "skipped", ""), job="web"))
    state.job("web").last_pass = PassInfo("schedule", NOW - 60, 4.2, True, 4, 0, "", **pass_details(web))
    state.job("web").drift = {"in_sync": 4, "missing": 0, "different_digest": 0, "extra": 0}
    state.job("web").next_pass = NOW + 840
    api = [
        image("src.example/apps/api:v1", ("dst.example/m/api", "copied", ""), written=7),
        image("src.example/apps/api:v2", ("dst.example/m/api", "failed", "PUT …: HTTP 403 DENIED: no")),
        image("src.example/apps/api:v3", ("dst.example/m/api", "conflict", "tag names another digest")),
    ]
    state.job("api").last_pass = PassInfo("schedule", NOW - 30, 2.0, False, 3, 2, "", **pass_details(api))
    rows = [
        DriftEntry("api", "missing", f"src.example/apps/api:m{i}", f"dst.example/m/api:m{i}")
        for i in range(25)
    ]
    rows.append(
        DriftEntry(
            "api", "extra", "src.example/apps/api:old", "dst.example/m/api:old", "", "sha256:" + "e" * 64
        )
    )
    state.job("api").drift = {"in_sync": 1, "missing": 25, "different_digest": 0, "extra": 1}
    state.job("api").drift_at = NOW - 20
    state.job("api").drift_rows = [r.to_dict() for r in rows]
    state.job("api").drift_rows_total = len(rows)
    state.job("api").lags.extend([0.5, 1.0, 4.0])
    state.job("api").last_event_run = PassInfo("event", NOW - 10, 0.4, False, 2, 1, "one image failed")
    state.job("api").events_pending = 3
    state.job("web").last_prune = {
        "at": NOW - 50,
        "dry_run": False,
        "job": "web",
        "cap": 1,
        "covered_tags": 4,
        "candidates": 2,
        "refusals": [
            {"job": "web", "reason": "over_cap", "where": "dst", "message": "2 tags over the cap of 1"}
        ],
        "tags": [
            {
                "destination": "dst.example/m/web",
                "tag": "v0",
                "outcome": "deleted",
                "how": "tag",
                "reason": "",
            },
            {
                "destination": "dst.example/m/web",
                "tag": "v5",
                "outcome": "failed",
                "how": "",
                "reason": "HTTP 405",
            },
        ],
    }
    return state


def sample_doc(transfers: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return status_document(
        sample_state().snapshot(),
        list(CONFIG.jobs),
        transfers if transfers is not None else [],
        shard=shard_summary(Shard(1, 3), ["a", "b"]),
        version="9.9.9",
        now=NOW,
        **kw,
    )


class Markup(HTMLParser):
    """Tags, attribute names, hrefs and the text of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name == "href":
                self.hrefs.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Markup:
    markup = Markup()
    markup.feed(page)
    markup.close()
    return markup


TAGS = {
    *("html", "head", "meta", "title", "style", "body", "header", "main", "section", "footer"),
    *("h1", "h2", "h3", "p", "a", "span", "code", "br", "b", "ul", "li", "dl", "dt", "dd"),
    *("details", "summary", "progress"),
}
ATTRIBUTES = {
    "lang",
    "charset",
    "name",
    "content",
    "http-equiv",
    "class",
    "id",
    "href",
    "open",
    "max",
    "value",
}
ATTRIBUTES |= {"aria-label"}


def test_the_document_answers_is_the_copy_current() -> None:
    doc = sample_doc()
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert [j["name"] for j in doc["jobs"]] == ["web", "api", "idle"]
    assert {n: j["verdict"] for n, j in jobs.items()} == {
        "web": "current",
        "api": "failing",
        "idle": "pending",
    }
    assert not doc["current"] and doc["verdicts"] == {"failing": 1, "drifting": 0, "pending": 1, "current": 1}
    assert doc["shard"] == {"shard": "1/3", "sharded": True, "repositories": 2}
    assert jobs["web"]["destinations"] == ["dst.example/m", "oci:/backup"]
    assert jobs["web"]["schedule"] == "every 15m" and jobs["web"]["next_pass"] == NOW + 840
    assert jobs["api"]["schedule"] == "cron '*/5 * * * *' (UTC)"
    last = jobs["api"]["last_pass"]
    assert last["statuses"] == {"copied": 1, "skipped": 0, "failed": 1, "deferred": 0, "conflict": 1}
    assert last["bytes_written"] == 7 and last["problems_total"] == 2
    assert [p["status"] for p in last["problems"]] == ["failed", "conflict"]
    assert jobs["web"]["last_pass"]["bytes_written"] == 300
    drift = jobs["api"]["drift"]
    assert len(drift["rows"]["missing"]) == 10 and len(drift["rows"]["extra"]) == 1
    assert drift["rows_total"] == 26 and drift["url"] == "/jobs/api/drift"
    assert jobs["api"]["lag"]["p50_seconds"] == 1.0 and jobs["api"]["lag"]["p99_seconds"] == 4.0
    json.dumps(doc)  # JSON-ready


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({}, "pending"),
        ({"last_pass": {"ok": True, "problems_total": 0}}, "current"),
        ({"last_pass": {"ok": True, "problems_total": 0}, "drift": {"in_sync": 3, "missing": 0}}, "current"),
        ({"last_pass": {"ok": True, "problems_total": 0}, "drift": {"in_sync": 3, "extra": 1}}, "drifting"),
        ({"last_pass": {"ok": False, "problems_total": 0}, "drift": {"in_sync": 3}}, "failing"),
        # a deferred image is not a failure of the pass, but the copy is not current either
        ({"last_pass": {"ok": True, "problems_total": 1}}, "failing"),
    ],
)
def test_verdict(job: dict[str, Any], expected: str) -> None:
    assert verdict(job) == expected


def test_the_page_shows_jobs_counts_errors_and_drift() -> None:
    page = render_status(sample_doc())
    markup = parse(page)
    text = " ".join(" ".join(markup.text).split())
    assert "2 of 3 jobs not current: 1 failing, 1 no pass yet" in text
    assert "mirror 9.9.9" in text and "shard 1/3 · 2 source repositories" in text
    assert "1 copied 0 skipped 1 failed 0 deferred 1 conflict 3 images" in text
    assert "PUT …: HTTP 403 DENIED: no" in text and "tag names another digest" in text
    assert "Missing (25)" in text and "Extra (1)" in text and "all 25 missing" in text
    assert "p50 1.0 s · p99 4.0 s over the last 3 event-driven copies" in text
    assert "every 15m; next pass 2025-06-15 15:20:40 UTC (in 14 min)" in text
    assert "Transfers in flight none right now" in text
    assert "Last prune 2025-06-15 15:05:50 UTC (50 s ago): 1 deleted, 1 failed" in text
    assert "2 tags over the cap of 1" in text and "dst.example/m/web:v5 HTTP 405" in text
    assert (
        "Event copies last 2025-06-15 15:06:30 UTC (10 s ago): 2 images, 1 failed; one image failed" in text
    )
    assert "; 3 waiting" in text
    assert all(h.startswith("/") for h in markup.hrefs), markup.hrefs
    assert "/jobs/api/drift?state=missing" in markup.hrefs
    assert '<meta http-equiv="refresh"' not in page
    refreshed = render_status(sample_doc(), refresh=30)
    assert '<meta http-equiv="refresh" content="30">' in refreshed
    assert "/jobs/api/drift?state=missing&refresh=30" in parse(refreshed).hrefs


def test_the_full_drift_list() -> None:
    doc = drift_document(sample_state().snapshot(), "api", now=NOW)
    assert doc is not None and len(doc["rows"]) == 26
    text = " ".join(parse(render_drift(doc)).text)
    assert "Missing (25)" in text and "api:m24" in text and "Extra (1)" in text
    only = drift_document(sample_state().snapshot(), "api", only="extra", now=NOW)
    assert only is not None and [r["state"] for r in only["rows"]] == ["extra"]
    assert drift_document(sample_state().snapshot(), "nope", now=NOW) is None


def poison(value: Any, text: str) -> Any:
    """Every string value of a document replaced by ``text`` (keys kept)."""
    if isinstance(value, str):
        return text
    if isinstance(value, dict):
        return {k: poison(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v, text) for v in value]
    return value


def transfer(text: str = "src.example/apps/big:v1") -> dict[str, Any]:
    return {
        "image": text,
        "repository": text,
        "digest": "sha256:" + "b" * 64,
        "size": 4096,
        "done": 1024,
        "rate_bytes_per_second": 512.0,
        "expected_end_at": NOW + 6,
        "idle_seconds": 0.0,
    }


def assert_text_only(page: str, text: str) -> None:
    markup = parse(page)
    assert markup.tags <= TAGS, markup.tags - TAGS
    assert markup.attributes <= ATTRIBUTES, markup.attributes - ATTRIBUTES
    assert text in "".join(markup.text)


@settings(max_examples=60)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80))
def test_any_text_in_any_field_stays_text(text: str) -> None:
    doc = poison(sample_doc([transfer()]), text)
    assert_text_only(render_status(doc), text)
    drift = drift_document(sample_state().snapshot(), "api", now=NOW)
    assert_text_only(render_drift(poison(drift, text) | {"generated_at": NOW}), text)


def test_a_hostile_image_name_and_error_show_as_text() -> None:
    state = sample_state()
    bad = image(HOSTILE, ("dst.example/m/" + HOSTILE, "failed", HOSTILE))
    state.job("api").last_pass = PassInfo("schedule", NOW, 1.0, False, 1, 1, HOSTILE, **pass_details([bad]))
    state.job("api").drift_rows = [DriftEntry("api", "missing", HOSTILE, HOSTILE, error=HOSTILE).to_dict()]
    doc = status_document(
        state.snapshot(), list(CONFIG.jobs), [transfer(HOSTILE)], shard={}, version="1", now=NOW
    )
    page = render_status(doc)
    assert "<script" not in page and "<img" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert_text_only(page, HOSTILE)


def test_secrets_are_redacted_from_every_field() -> None:
    secret = "hunter2-very-secret"
    state = sample_state()
    bad = image(f"x:{secret}", ("dst.example/m", "failed", f"the registry said Basic {secret}"))
    state.job("api").last_pass = PassInfo("schedule", NOW, 1.0, False, 1, 1, secret, **pass_details([bad]))

    def redact(text: str) -> str:
        return text.replace(secret, "<redacted>")

    doc = status_document(
        state.snapshot(), list(CONFIG.jobs), [transfer(secret)], shard={}, version="1", now=NOW, redact=redact
    )
    assert secret not in json.dumps(doc) and secret not in render_status(doc)
    assert "Basic <redacted>" in " ".join(parse(render_status(doc)).text)


def test_transfers_in_flight_follow_events() -> None:
    clock = {"mono": 100.0, "wall": NOW}
    table = InFlight(monotonic=lambda: clock["mono"], wall=lambda: clock["wall"])
    digest = "sha256:" + "c" * 64
    start = Event(ev.TRANSFER_STARTED, "src", "src/apps/big", digest, size=1000, detail="src/apps/big:v1")
    table(start)
    clock["mono"] += 2
    clock["wall"] += 2
    table(Event(ev.BLOB_PROGRESS, "src", "src/apps/big", digest, size=400))
    (row,) = table.snapshot()
    assert row["image"] == "src/apps/big:v1" and row["size"] == 1000 and row["done"] == 400
    assert row["rate_bytes_per_second"] == 200.0 and row["expected_end_at"] == NOW + 2 + 3
    assert row["started_at"] == NOW and row["idle_seconds"] == 0.0
    clock["mono"] += 5
    assert table.snapshot()[0]["idle_seconds"] == 5.0
    # a retry after a failed read is a new row; progress goes to it; each finish ends one
    table(Event(ev.TRANSFER_FINISHED, "src", "src/apps/big", digest))
    assert table.snapshot() == []
    table(start)
    table(Event(ev.BLOB_PROGRESS, "src", "src/apps/big", digest, size=10))
    assert [r["done"] for r in table.snapshot()] == [10]
    table(Event(ev.TRANSFER_FINISHED, "src", "src/apps/big", digest))
    table(Event(ev.TRANSFER_FINISHED, "src", "src/apps/big", digest))  # unmatched: ignored
    table(Event(ev.BLOB_PROGRESS, "src", "src/apps/big", digest, size=10))  # no transfer: ignored
    assert table.snapshot() == [] and len(table) == 0


def test_an_unknown_size_and_no_progress_have_no_expected_end() -> None:
    table = InFlight(monotonic=lambda: 5.0, wall=lambda: NOW)
    table(Event(ev.TRANSFER_STARTED, "h", "h/r", "sha256:" + "d" * 64))
    (row,) = table.snapshot()
    assert row["expected_end_at"] is None and row["rate_bytes_per_second"] == 0.0 and row["image"] == "h/r"


class Source:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def status(self) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("boom with Basic c2VjcmV0")
        return sample_doc([transfer()])

    def drift(self, job: str, state: str = "") -> dict[str, Any] | None:
        return drift_document(sample_state().snapshot(), job, only=state, now=NOW)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def test_routes_answer_get_and_head_only(http: aiohttp.ClientSession) -> None:
    async with HealthServer(Metrics(), address="127.0.0.1:0", status=Source()) as server:
        base = server.url
        async with http.get(f"{base}/") as answer:
            assert answer.status == 200 and answer.content_type == "text/html"
            assert answer.headers["Cache-Control"] == "no-store"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            csp = answer.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and f"style-src '{STYLE_HASH}'" in csp
            assert "script-src" not in csp and "frame-ancestors 'none'" in csp
            assert "2 of 3 jobs not current" in await answer.text()
        async with http.get(f"{base}/status.json") as answer:
            assert answer.status == 200 and answer.content_type == "application/json"
            assert (await answer.json())["jobs"][0]["name"] == "web"
        for path in ("/", "/status.json", "/jobs/api/drift", "/jobs/api/drift.json"):
            async with http.head(f"{base}{path}") as answer:
                assert answer.status == 200, path
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                async with http.request(method, f"{base}{path}") as answer:
                    assert answer.status == 405, (method, path)
        async with http.get(f"{base}/jobs/api/drift.json?state=extra") as answer:
            assert [r["state"] for r in (await answer.json())["rows"]] == ["extra"]
        async with http.get(f"{base}/jobs/api/drift?state=missing&refresh=10") as answer:
            page = await answer.text()
            assert answer.status == 200 and "Missing of job api" in page and 'content="10"' in page
        for path, status in (
            ("/?refresh=1", 400),
            ("/?refresh=abc", 400),
            ("/jobs/api/drift?state=in_sync", 400),
            ("/jobs/nope/drift", 404),
            ("/jobs/nope/drift.json", 404),
        ):
            async with http.get(f"{base}{path}") as answer:
                assert answer.status == status, path


async def test_a_failing_source_answers_500_without_its_message(http: aiohttp.ClientSession) -> None:
    async with HealthServer(Metrics(), address="127.0.0.1:0", status=Source(fail=True)) as server:
        for path in ("/", "/status.json"):
            async with http.get(f"{server.url}{path}") as answer:
                assert answer.status == 500
                assert "boom" not in await answer.text()


async def test_without_a_source_there_is_no_page(http: aiohttp.ClientSession) -> None:
    async with HealthServer(Metrics(), address="127.0.0.1:0") as server, http.get(f"{server.url}/") as answer:
        assert answer.status == 404
