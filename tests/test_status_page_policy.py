"""Error-budget policy state on the status page (issue 14 item 5): a real Prometheus
backfilled with an outage that spends a 1-day budget, the daemon's real Runtime, the page
in headless Chromium — the "Releases frozen" badge appears with its reason and since when,
the gate answers 423, and both go away once the outage has left the SLO period."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, daemon_config, evaluation, serve
from harness.browser import MISSING, chromium_binary, dump_dom

from engine.api.app import create_app
from engine.api.deps import Access
from engine.api.security import load_tokens
from engine.api.status_page import build_view, render_status_page, when
from engine.daemon.policy_since import FreezeWatch, FrozenSince
from engine.daemon.runtime import Runtime
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.spec.loader import load_specs

HOUR = 3600
TOKEN = "reader-token-0123456789abcdef"
SPEC = """\
apiVersion: slo-engine/v1
service: api
tier: critical
slos:
  - name: availability
    objective: 99
    period: 1d
    sli:
      events:
        bad: sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))
        total: sum(rate(http_requests_total{job="api"}[{{window}}]))
    budget_policy:
      thresholds:
        - consumed: 100
          action: freeze
  - name: latency
    objective: 95
    period: 1d
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: 'job="api"'
        threshold: 500ms
"""
DURATION = 50 * HOUR
START = (int(time.time()) // HOUR) * HOUR - DURATION
# 6 % of requests fail for 6 hours (offsets 16h–22h): 1.5 % of a day's requests against a
# 1 % budget, ~155 % of it spent with the background 0.05 %; gone from the period by 46h.
OUTAGE = Incident(16 * HOUR, 22 * HOUR, error_ratio=0.06)
SCENARIO = Scenario(
    start=START,
    duration=DURATION,
    scrape_interval=60,
    services=[ServiceLoad(job="api", rps=20, error_ratio=0.0005, incidents=[OUTAGE])],
)


def _specs(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "api.yaml").write_text(SPEC)
    return directory


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# ---------------------------------------------------------------------- pure parts


def test_freeze_watch_dates_a_freeze_and_keeps_it_through_a_blind_spell(tmp_path: Path):
    slo = next(s for s in load_specs([_specs(tmp_path)]).slos if s.id == "api/availability")
    ok, spent = evaluation(slo, 100.0, budget=0.5), evaluation(slo, 200.0, budget=-0.2)
    watch = FreezeWatch()
    watch.observe([spent], 100.0)
    # Frozen on this process's first cycle: it may have begun earlier.
    assert watch.snapshot() == {"api/availability": FrozenSince(100.0, at_least=True)}
    watch.observe([ok], 160.0)
    assert watch.snapshot() == {}
    watch.observe([spent], 220.0)
    watch.observe([spent], 280.0)
    assert watch.snapshot() == {"api/availability": FrozenSince(220.0, at_least=False)}
    watch.observe([evaluation(slo, 340.0, status="no_data")], 340.0)
    watch.observe([spent], 400.0)
    assert watch.snapshot() == {"api/availability": FrozenSince(220.0, at_least=False)}


def test_the_view_says_what_was_crossed_and_keeps_receivers_off_the_page(tmp_path: Path):
    documents = SPEC.replace(
        "        - consumed: 100\n",
        "        - consumed: 50\n          action: notify\n          receivers: [secret-chat]\n"
        "        - consumed: 100\n",
    )
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "api.yaml").write_text(documents)
    slos = {s.id: s for s in load_specs([tmp_path / "specs"]).slos}
    slo, other = slos["api/availability"], slos["api/latency"]
    half = build_view([evaluation(slo, 0.0, budget=0.4), evaluation(other, 0.0)], [], str, 0, True)
    (row, plain) = half.services[0].slos
    assert plain.policy is None and half.services[0].gate is None
    assert row.policy is not None and row.policy.status == "notify"
    assert row.policy.consumed_text == "60 % of the error budget consumed"
    assert row.policy.crossed_text == "crossed: notify at 50 %"
    page = render_status_page(half)
    assert "Budget policy threshold crossed" in page and "secret-chat" not in page

    blind = build_view([evaluation(slo, 0.0, status="no_data")], [], str, 0, True)
    gate = blind.services[0].gate
    assert gate is not None and gate.label == "Release gate closed: budget unknown"
    assert blind.services[0].slos[0].policy.consumed_text == "budget consumed unknown"  # type: ignore[union-attr]


# ---------------------------------------------------------------------- the real daemon


def _page(client: TestClient, url: str | None) -> str:
    """The page's text as served — and, with Chromium, as a person's browser shows it."""
    served = client.get("/status").text
    if url is None:
        return _text(served)
    return _text(dump_dom(f"{url}/status"))


@pytest.mark.prometheus
@pytest.mark.browser
def test_releases_frozen_badge_comes_and_goes_with_the_budget(prometheus_for, tmp_path: Path):
    if chromium_binary() is None:
        pytest.skip(MISSING)
    server = prometheus_for(SCENARIO)
    clock = FakeClock(START + 14 * HOUR)
    config = daemon_config(
        tmp_path,
        _specs(tmp_path / "specs"),
        prometheus_url=server.url,
        interval="60s",
        query_retries=0,
    )
    runtime = Runtime(config, clock=clock, notifiers={})
    (tmp_path / "tokens").write_text(f"{TOKEN} read-only\n")
    tokens = load_tokens(tmp_path / "tokens")
    app = create_app(runtime, tokens, clock=clock, access=Access(public_status_page=True))
    client = TestClient(app)
    reader = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with serve(app) as url:
            # Before the outage: within the policy, no badge, the gate open.
            assert runtime.run_cycle(clock.now).source_error is None
            before = _page(client, url)
            assert "Within budget policy" in before and "Releases frozen" not in before
            assert client.get("/api/v1/gates/api", headers=reader).status_code == 200

            # Two hours after the outage: 150 % spent, frozen since this cycle.
            clock.now = START + 24 * HOUR
            runtime.run_cycle(clock.now)
            clock.advance(60)
            runtime.run_cycle(clock.now)  # a later cycle keeps the freeze's start
            state = runtime.budgets.freezes.snapshot()
            assert state == {"api/availability": FrozenSince(START + 24 * HOUR, False)}
            consumed = runtime.slo_result("api/availability")
            assert consumed is not None and consumed.error_budget_remaining is not None
            spent = round((1 - consumed.error_budget_remaining) * 100, 1)
            assert spent > 100
            frozen = _page(client, url)
            since = when(START + 24 * HOUR)
            assert f"Releases frozen since {since}" in frozen
            assert f"api/availability: {spent:.1f}% of the error budget consumed" in frozen
            assert "(freeze at 100%)" in frozen and "crossed: freeze at 100 %" in frozen
            consumed_text = f"{spent:.1f}".removesuffix(".0") + " % of the error budget consumed"
            assert consumed_text in frozen
            # The pipeline's answer is the page's: 423 with the same reason.
            gate = client.get("/api/v1/gates/api", headers=reader)
            assert gate.status_code == 423
            assert gate.json()["reasons"][0].startswith(f"api/availability: {spent:.1f}%")

            # A day after the outage it has left the 1-day period: the badge is gone.
            clock.now = START + 48 * HOUR
            runtime.run_cycle(clock.now)
            assert runtime.budgets.freezes.snapshot() == {}
            after = _page(client, url)
            assert "Releases frozen" not in after and "Within budget policy" in after
            assert client.get("/api/v1/gates/api", headers=reader).json()["allowed"] is True
    finally:
        runtime.close()
