"""A calendar-month SLO in America/New_York against a real Prometheus (backfilled with
promtool): just before local midnight of 1 December 2024 its budget holds the outage of
20 November; just after, the budget starts over. The calendar budget equals a rolling SLO
over exactly the elapsed part of the period, on the one-shot path (`evaluate`) and on the
daemon's cache path, and at every step of a backtest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.backtest.replay import fetch_history, make_plan
from engine.cli import _register, app
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.series import evaluate_series
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN, HOUR = 60, 3600
NOV_1 = 1_730_433_600  # 2024-11-01 00:00 EDT (UTC−4)
DATA_START = 1_731_906_000  # 2024-11-18 00:00 EST (UTC−5)
OUTAGE = 1_732_122_000  # 2024-11-20 12:00 EST, five minutes of 100 % errors
DEC_1 = 1_733_029_200  # 2024-12-01 00:00 EST: the boundary
BEFORE = DEC_1 - 30 * MIN  # 23:30 local, 30 November
AFTER = DEC_1 + 90 * MIN  # 01:30 local, 1 December

SLI = """    sli:
      events:
        bad: sum(rate(http_requests_total{job="shop",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="shop"}[{{window}}]))
"""


def _spec(service: str, period: str) -> str:
    return f"""apiVersion: slo-engine/v1
service: {service}
slos:
  - name: availability
    objective: 99.9
{period}{SLI}"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    month = "    period: calendar-month\n    timezone: America/New_York\n"
    (root / "monthly.yaml").write_text(_spec("monthly", month))
    # Rolling SLOs over the same events and exactly the elapsed part of each period: the
    # month so far at BEFORE (November in New York has 30 days and one DST hour), and
    # December's first 90 minutes at AFTER.
    (root / "sofar.yaml").write_text(_spec("sofar", "    period: 30d30m\n"))
    (root / "fresh.yaml").write_text(_spec("fresh", "    period: 1h30m\n"))
    return root


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for) -> LocalPrometheus:
    since = OUTAGE - DATA_START  # incidents are placed relative to the scenario's start
    outage = [Incident(since, since + 5 * MIN, error_ratio=1.0)]
    return module_prometheus_for(
        Scenario(
            start=DATA_START,
            duration=AFTER - DATA_START + 10 * MIN,
            scrape_interval=30,
            services=[ServiceLoad(job="shop", rps=20, error_ratio=0.0002, incidents=outage)],
        )
    )


def _evaluate(specs: Path, url: str, at: int) -> dict[str, dict]:
    _register()
    run = CliRunner().invoke(
        app,
        [
            *("evaluate", "--specs", str(specs), "--prometheus-url", url, "--at", str(at)),
            *("--scrape-interval", "30s", "--format", "json"),
        ],
    )
    assert run.exit_code == 0, run.output
    return {e["service"]: e for e in json.loads(run.stdout)["slos"]}


def test_the_budget_resets_at_local_midnight(specs, prometheus) -> None:
    before = _evaluate(specs, prometheus.url, BEFORE)
    after = _evaluate(specs, prometheus.url, AFTER)
    month_before, month_after = before["monthly"], after["monthly"]
    # Before: everything since 1 November (local), the outage of the 20th included.
    assert month_before["period"] == "30d30m"
    assert month_before["error_budget_remaining"] == pytest.approx(
        before["sofar"]["error_budget_remaining"], rel=1e-9
    )
    bad = month_before["events"]["30d30m"]["bad"]
    assert bad > 20 * 5 * MIN  # the outage's 6,000 failed requests are in
    assert month_before["error_budget_remaining"] < 0.6
    assert month_before["calendar"] == {
        "period": "calendar-month",
        "timezone": "America/New_York",
        "start": "2024-11-01T04:00:00Z",
        "end": "2024-12-01T05:00:00Z",
        "length": "30d1h",
        "remaining_seconds": 1800.0,
    }
    # After: December's 90 minutes only — the outage no longer counts.
    assert month_after["period"] == "1h30m"
    assert month_after["error_budget_remaining"] == pytest.approx(
        after["fresh"]["error_budget_remaining"], rel=1e-9
    )
    assert month_after["events"]["1h30m"]["bad"] < 20 * 5 * MIN / 10
    assert month_after["error_budget_remaining"] > 0.7
    assert month_after["calendar"]["start"] == "2024-12-01T05:00:00Z"
    assert month_after["calendar"]["length"] == "31d"
    # The rolling SLO of the same length as the month does not reset.
    assert after["sofar"]["error_budget_remaining"] < 0.6


def test_the_daemon_cache_sums_steps_since_the_period_began(specs, prometheus) -> None:
    loaded = load_specs([specs])
    assert not loaded.errors, loaded.errors
    slos = [s for s in loaded.slos if s.service in ("monthly", "sofar")]
    source = PrometheusSource(prometheus.url, timeout=60)
    once = _evaluate(specs, prometheus.url, BEFORE)
    before = {r.slo.service: r for r in Evaluator(slos, source).evaluate(BEFORE)}
    monthly = before["monthly"]
    # The cache path keeps the nominal period (31d) as the window the budget is read from.
    assert monthly.slo.calendar is not None and str(monthly.slo.period) == "31d"
    # The cache's nominal 31d column holds (1 Nov, now]: the rolling month-so-far SLO's sums.
    assert monthly.error_budget_remaining == pytest.approx(
        before["sofar"].error_budget_remaining, rel=1e-6
    )
    # Whole-window counts and summed steps agree within 1 % (engine.evaluation.instant).
    assert monthly.error_budget_remaining == pytest.approx(
        once["monthly"]["error_budget_remaining"], rel=0.01
    )
    after = {r.slo.service: r for r in Evaluator(slos, source).evaluate(AFTER)}
    assert after["monthly"].error_budget_remaining == pytest.approx(
        once_after := _evaluate(specs, prometheus.url, AFTER)["monthly"]["error_budget_remaining"],
        rel=0.02,
    )
    assert once_after > 0.7
    assert after["monthly"].to_json()["calendar"]["start"] == "2024-12-01T05:00:00Z"


def test_the_backtest_resets_the_budget_at_each_replayed_boundary(specs, prometheus) -> None:
    loaded = load_specs([specs])
    slos = [s for s in loaded.slos if s.service in ("monthly", "sofar")]
    plan = make_plan(slos, BEFORE - HOUR, AFTER, Duration.parse("1m"), Duration.parse("31d"))
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), slos, plan)
    assert not rates.errors
    series = evaluate_series(slos, rates)
    row = {s.service: i for i, s in enumerate(slos)}
    at = {t: int(np.flatnonzero(rates.times == t)[0]) for t in (BEFORE, DEC_1 - 60, AFTER)}
    monthly = series.budget_remaining[row["monthly"]]
    sofar = series.budget_remaining[row["sofar"]]
    # At 23:30 the month so far is exactly the rolling 30d30m window: the same steps.
    assert monthly[at[BEFORE]] == pytest.approx(sofar[at[BEFORE]], rel=1e-9)
    assert monthly[at[DEC_1 - 60]] < 0.6  # the last minute of November still holds the outage
    assert monthly[at[AFTER]] > 0.7  # December starts over
    assert sofar[at[AFTER]] < 0.6
    once = _evaluate(specs, prometheus.url, AFTER)["monthly"]["error_budget_remaining"]
    assert monthly[at[AFTER]] == pytest.approx(once, rel=0.02)
