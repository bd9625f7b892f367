"""Maintenance windows against a real Prometheus (backfilled with promtool): an outage
entirely inside a weekly window (Thursdays 04:00–06:00 Paris time) leaves the budget exactly
as the same traffic without the outage does, and pages neither in the daemon's cycle nor in
the backtest; the same outage without the window pages in both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness.specs import http_events_spec
from typer.testing import CliRunner

from engine.alerting.alerts import alerts_from_evaluations
from engine.backtest.replay import fetch_history, make_plan, replay
from engine.cli import _register, app
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.result import SLOEvaluation
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN, HOUR, DAY = 60, 3600, 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
# Thursday 2024-01-04 04:00 Paris (CET, UTC+1) = 03:00 UTC, for two hours.
WINDOW = (3 * DAY + 3 * HOUR, 3 * DAY + 5 * HOUR)
OUTAGE = (WINDOW[0] + 30 * MIN, WINDOW[0] + 60 * MIN)  # 100 % errors: ~70 % of the budget
END = WINDOW[1] + HOUR
WEEKLY = """maintenance:
  - cron: "0 4 * * THU"
    duration: 2h
    timezone: Europe/Paris
    reason: database failover drill
"""


@pytest.fixture(scope="module")
def slos(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("specs")
    # maint: the outage inside the window; calm: the same window, no outage; plain: the
    # outage, no window.
    (root / "maint.yaml").write_text(http_events_spec("maint", "critical") + WEEKLY)
    (root / "calm.yaml").write_text(http_events_spec("calm", "critical") + WEEKLY)
    (root / "plain.yaml").write_text(http_events_spec("plain", "critical"))
    loaded = load_specs([Path(root)])
    assert not loaded.errors, loaded.errors
    return loaded.slos


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for) -> LocalPrometheus:
    outage = [Incident(OUTAGE[0], OUTAGE[1], error_ratio=1.0)]
    return module_prometheus_for(
        Scenario(
            start=T0,
            duration=END + 5 * MIN,
            scrape_interval=15,
            services=[
                ServiceLoad(job="maint", rps=20, error_ratio=0.0005, incidents=outage),
                ServiceLoad(job="calm", rps=20, error_ratio=0.0005),
                ServiceLoad(job="plain", rps=20, error_ratio=0.0005, incidents=outage),
            ],
        )
    )


def _by_service(results: list[SLOEvaluation]) -> dict[str, SLOEvaluation]:
    return {r.slo.service: r for r in results}


def test_daemon_cycle_excludes_the_window_and_pages_only_without_it(slos, prometheus) -> None:
    evaluator = Evaluator(slos, PrometheusSource(prometheus.url, timeout=60))
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]))
    paged: dict[str, list[float]] = {}
    statuses: dict[str, set[str]] = {}
    now = float(T0 + OUTAGE[0] - 5 * MIN)
    while now <= T0 + END:
        results = evaluator.evaluate(now)
        assert all(r.status != "error" for r in results), [r.error for r in results]
        for r in results:
            statuses.setdefault(r.slo.service, set()).add(r.status)
        for note in engine.observe(now, alerts_from_evaluations(results), results).notifications:
            paged.setdefault(note.incident["service"], []).append(now - T0 - OUTAGE[0])
        now += MIN
    assert set(paged) == {"plain"}
    assert 0 < paged["plain"][0] <= 5 * MIN
    assert statuses["maint"] == statuses["calm"] == {"ok"}
    final = _by_service(results)
    maint, calm, plain = (final[s].error_budget_remaining for s in ("maint", "calm", "plain"))
    assert maint is not None and calm is not None and plain is not None
    # The outage's events are gone from bad and total alike: exactly the calm service's
    # budget (same traffic, same window), while the unmasked outage spent most of its own.
    assert maint == pytest.approx(calm, rel=1e-9)
    assert calm - plain > 0.6
    # Windows long enough to reach the maintenance hold fewer events than the calm
    # service's traffic would give without a window (2 h of 20 rps are not counted).
    period = Duration.parse("30d")
    assert final["maint"].windows[period].total == pytest.approx(
        final["calm"].windows[period].total, rel=1e-9
    )
    assert final["plain"].windows[period].total - final["maint"].windows[period].total == (
        pytest.approx(2 * HOUR * 20, rel=0.01)
    )


def test_backtest_honours_the_spec_window(slos, prometheus) -> None:
    plan = make_plan(
        slos, T0 + WINDOW[0] - HOUR, T0 + END, Duration.parse("1m"), Duration.parse("3d")
    )
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), slos, plan)
    assert not rates.errors
    result = replay(slos, rates, plan)
    assert {i.service for i in result.incidents} == {"plain"}
    assert {a.slo_id for a in result.alerts} == {"plain/availability"}
    used = result.budget_consumed
    assert used["maint/availability"] == pytest.approx(used["calm/availability"], rel=1e-9)
    assert used["plain/availability"] - used["calm/availability"] > 0.6


def test_one_shot_evaluate_falls_back_to_per_step_counts(slos, prometheus) -> None:
    # The instant path reads whole windows; over a maintenance window `evaluate` uses the
    # per-step path instead, so its budgets equal the daemon's masked ones.
    _register()
    root = Path(slos[0].source).parent
    run = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--specs",
            str(root),
            "--prometheus-url",
            prometheus.url,
            "--at",
            str(T0 + END),
            "--format",
            "json",
        ],
    )
    assert run.exit_code == 0, run.output
    document = json.loads(run.stdout)
    budgets = {e["service"]: e["error_budget_remaining"] for e in document["slos"]}
    assert budgets["maint"] == pytest.approx(budgets["calm"], rel=1e-9)
    assert budgets["calm"] - budgets["plain"] > 0.6
