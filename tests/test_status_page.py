"""The server-rendered status page: content, escaping of every user-controlled string, no
inline script or style, security headers, and the pure view builder's numbers. The pages are
rendered from the daemon's real Runtime after one scripted cycle (harness.api_runtime)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import (
    FakeClock,
    SampleSource,
    evaluation,
    sample_runtime,
    scripted_runtime,
    specs_with_descriptions,
)
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.deps import Access
from engine.api.middleware import STRICT_CSP
from engine.api.status_page import build_view, slo_row
from engine.daemon.runtime import Runtime
from engine.spec.loader import load_specs

SPECS = Path(__file__).resolve().parents[1] / "slo_specs"
# The customer-facing page for anonymous visitors (public_status_page: true).
PUBLIC = Access(public_status_page=True)
HOSTILE = "<script>document.title='pwned'</script>\"onerror=alert(1) <img src=x onerror=alert(2)>"


class Page(HTMLParser):
    """Tags, attributes and visible text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())

    @property
    def visible(self) -> str:
        return " ".join(self.text)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


@pytest.fixture
def slos():
    found = load_specs([SPECS]).slos
    # A spec author (or a compromised spec repo) writes markup into a description.
    found[1] = dataclasses.replace(found[1], description=HOSTILE)
    return found


@pytest.fixture
def runtime(tmp_path: Path, slos) -> Iterator[Runtime]:
    # The same hostile description, written into a copy of the spec files.
    specs = specs_with_descriptions(tmp_path / "specs", {slos[1].id: HOSTILE})
    clock = FakeClock(T0 + 1800)
    runtime = sample_runtime(tmp_path, clock, T0, specs=specs)
    (incident,) = runtime.list_incidents("investigating", None)
    runtime.comment(incident.id, "alice", "Rolled back deploy 42. " + HOSTILE)
    yield runtime
    runtime.close()


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime, [], clock=runtime.clock, access=PUBLIC))


def test_status_page_shows_services_statuses_budgets_and_incidents(client, runtime):
    response = client.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    page = Page(response.text)
    text = page.visible
    for expected in ("api", "database", "availability", "latency-p95", "durability"):
        assert expected in text
    # Status in words, not only colour.
    for label in ("Page", "Ticket", "OK", "Budget exhausted", "No data"):
        assert label in text, label
    assert "Service disruption" in text or "Degraded performance" in text
    # Budget bars: meters with validated numbers; the exhausted one is empty, not negative.
    values = {m["aria-label"]: m["value"] for m in page.find("meter")}
    assert values["error budget remaining for api/availability"] == "0.4200"
    assert values["error budget remaining for database/durability"] == "0.0000"
    assert "error budget remaining for database/backup-freshness" not in values  # no data
    assert "42 % left" in text and "exhausted (-12 %)" in text and "no data" in text
    # 42 % of a 30-day budget at 18× the sustainable rate: 0.42 × 30 d ÷ 18 = 16.8 h.
    assert "budget gone in 16.8 h at the current burn rate" in text
    # The open incident with its customer-facing notice and the responder's update.
    (incident,) = runtime.list_incidents("investigating", None)
    assert incident.id in text
    notice = runtime.customer_notice(runtime.get_incident(incident.id))
    for line in notice.splitlines():
        assert line.strip() in response.text
    assert "Rolled back deploy 42." in text
    assert "alice" not in text  # responders stay internal
    assert page.find("link", rel="stylesheet", href="/static/status.css")


def test_every_user_controlled_string_is_escaped(client):
    html = client.get("/status").text
    page = Page(html)
    # The payload is shown as text (twice: the spec description and the comment) ...
    assert page.visible.count("<script>document.title='pwned'</script>") == 2
    assert html.count("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;") == 2
    assert "&#34;onerror=alert(1)" in html
    # ... and never becomes markup: no script, no img, no event-handler attributes.
    assert not page.find("script") and not page.find("img")
    assert not [(t, a) for t, a in page.tags for name in a if name.startswith("on")]
    assert "<script" not in html and "<img" not in html


def test_no_inline_script_or_style_and_strict_headers(client):
    response = client.get("/status")
    page = Page(response.text)
    assert not page.find("style")
    assert not [a for _, a in page.tags if "style" in a]
    assert response.headers["Content-Security-Policy"] == STRICT_CSP
    for directive in ("default-src 'none'", "style-src 'self'", "frame-ancestors 'self'"):
        assert directive in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_stylesheet_is_served_from_package_data(client):
    response = client.get("/static/status.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "meter.budget-bar" in response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/static/../app.py").status_code == 404


def test_empty_and_degraded_runtime(tmp_path: Path):
    # A runtime before its first cycle: nothing evaluated, not ready.
    runtime = scripted_runtime(tmp_path, FakeClock(T0), SampleSource(T0))
    try:
        assert runtime.readiness() == (False, ["no evaluation cycle has completed yet"])
        client = TestClient(create_app(runtime, [], clock=runtime.clock, access=PUBLIC))
        text = Page(client.get("/status").text).visible
    finally:
        runtime.close()
    assert "No open incidents." in text
    assert "No SLO has been evaluated yet." in text
    assert "No evaluation yet" in text
    assert "may be out of date" in text
    assert "no evaluation cycle" not in text  # readiness reasons are for operators (/readyz)


def test_error_status_hides_internal_details(tmp_path: Path):
    # The source is unreachable: every SLO is an error naming the address, and so is the
    # readiness reason; neither reaches the page.
    source = SampleSource(T0)
    source.down = "cannot connect to http://10.0.0.7:9090/ (refused)"
    runtime = scripted_runtime(tmp_path, FakeClock(T0), source)
    try:
        runtime.run_cycle(T0)
        assert {r.status for r in runtime.slo_results()} == {"error"}
        assert "10.0.0.7" in runtime.slo_results()[0].error
        assert "10.0.0.7" in runtime.readiness()[1][0]
        client = TestClient(create_app(runtime, [], clock=runtime.clock, access=PUBLIC))
        text = Page(client.get("/status").text).visible
    finally:
        runtime.close()
    assert "Error" in text and "could not be evaluated" in text
    assert "may be out of date" in text
    assert "10.0.0.7" not in text


def test_a_failing_notice_template_does_not_break_the_page(runtime: Runtime, monkeypatch):
    def exploded(incident):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(runtime, "customer_notice", exploded)
    response = TestClient(create_app(runtime, [], clock=runtime.clock, access=PUBLIC)).get(
        "/status"
    )
    assert response.status_code == 200
    assert "exploded" not in response.text
    assert "api" in Page(response.text).visible


# ------------------------------------------------------------------ the pure view


def test_view_numbers_are_validated_and_clamped(slos):
    over = slo_row(evaluation(slos[0], T0, status="ok", budget=1.7))
    assert over.budget_fraction == 1.0 and over.budget_level == "good"
    gone = slo_row(evaluation(slos[0], T0, status="exhausted", budget=-3.5))
    assert gone.budget_fraction == 0.0 and gone.budget_text == "exhausted (-350 %)"
    nan = slo_row(evaluation(slos[0], T0, status="ok", budget=float("nan")))
    assert nan.budget_fraction is None and nan.budget_text == "no data"
    low = slo_row(evaluation(slos[0], T0, status="ticket", budget=0.3))
    assert (low.budget_level, low.budget_text) == ("low", "30 % left")
    assert slo_row(evaluation(slos[0], T0)).objective == "99.9 %"


def test_view_orders_services_and_picks_the_worst_status(slos):
    results = [
        evaluation(slos[2], T0, status="ok"),
        evaluation(slos[3], T0, status="no_data"),
        evaluation(slos[0], T0, status="ok"),
        evaluation(slos[1], T0, status="ticket", budget=0.5),
    ]
    view = build_view(results, [], lambda i: "", T0 + 60, True)
    assert [(s.name, s.status) for s in view.services] == [
        ("api", "ticket"),
        ("database", "no_data"),
    ]
    assert view.overall == "Degraded performance"
    calm = build_view(results[:1] + results[2:3], [], lambda i: "", T0, True)
    assert calm.overall == "All services operating normally"
    assert calm.evaluated == "2024-03-01 00:00 UTC"
