"""A calendar-month SLO with a maintenance window, on the daemon's cache path against a real
Prometheus (backfilled with promtool): an outage inside the window leaves the calendar
budget exactly as the same traffic without the outage does, while the same outage in a
calendar SLO without a window spends most of the budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.specs import http_events_spec

from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.evaluation.evaluator import Evaluator
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN, HOUR, DAY = 60, 3600, 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC: January starts with the data
# Thursday 2024-01-04 04:00 Paris (CET, UTC+1) = 03:00 UTC, for two hours.
WINDOW = (3 * DAY + 3 * HOUR, 3 * DAY + 5 * HOUR)
OUTAGE = (WINDOW[0] + 30 * MIN, WINDOW[0] + 60 * MIN)
END = WINDOW[1] + HOUR
MONTH = "    period: calendar-month\n    timezone: Europe/Paris\n"
WEEKLY = """maintenance:
  - cron: "0 4 * * THU"
    duration: 2h
    timezone: Europe/Paris
    reason: database failover drill
"""


def _calendar(service: str) -> str:
    # The calendar keys belong to the SLO, right after its objective.
    return http_events_spec(service, "critical").replace(
        "    objective: 99.9\n", "    objective: 99.9\n" + MONTH
    )


@pytest.fixture(scope="module")
def slos(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("specs")
    (root / "maint.yaml").write_text(_calendar("maint") + WEEKLY)
    (root / "calm.yaml").write_text(_calendar("calm") + WEEKLY)
    (root / "plain.yaml").write_text(_calendar("plain"))
    loaded = load_specs([Path(root)])
    assert not loaded.errors, loaded.errors
    assert all(s.calendar is not None for s in loaded.slos)
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


def test_the_calendar_budget_leaves_out_the_maintenance_window(slos, prometheus) -> None:
    evaluator = Evaluator(slos, PrometheusSource(prometheus.url, timeout=60))
    results = {r.slo.service: r for r in evaluator.evaluate(float(T0 + END))}
    assert all(r.status != "error" for r in results.values())
    maint, calm, plain = (results[s] for s in ("maint", "calm", "plain"))
    assert maint.to_json()["calendar"]["start"] == "2023-12-31T23:00:00Z"  # 1 Jan, Paris
    budgets = [r.error_budget_remaining for r in (maint, calm, plain)]
    assert None not in budgets
    # The outage's events are gone from bad and total alike: the calm budget exactly.
    assert budgets[0] == pytest.approx(budgets[1], rel=1e-9)
    assert budgets[1] - budgets[2] > 0.5
    period = maint.slo.period  # the nominal column holds the sums since 1 January
    assert maint.windows[period].total == pytest.approx(calm.windows[period].total, rel=1e-9)
    assert plain.windows[period].total - maint.windows[period].total == pytest.approx(
        2 * HOUR * 20, rel=0.01
    )
