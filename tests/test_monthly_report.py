"""Compliance history and the monthly report (issue 14 item 6) against a real Prometheus
backfilled from a scenario with exact ground truth: the days the daemon's history job
stores, and the days rebuilt from Prometheus, both match the scenario's events; the HTML
report renders in headless Chromium without loading anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness.specs import http_events_spec
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.daemon.budgets import record_days
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.evaluation.daily import day_start, month_days
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.loader import load_specs
from engine.store.sqlite import SQLiteStore

pytestmark = pytest.mark.prometheus

DAY = 86_400
MONTH = "2024-02"
T0 = 1_706_659_200  # 2024-01-31 00:00 UTC: one day (the SLO period) before the month
FEB = T0 + DAY
END = FEB + 29 * DAY  # 2024-03-01 00:00 UTC
OUTAGE = FEB + 9 * DAY + 3 * 3600  # Feb 10, 03:00: 40 minutes of 50 % errors

SPEC = http_events_spec("api", "critical").replace(
    "    objective: 99.9\n", "    objective: 99.9\n    period: 1d\n"
)


def _scenario() -> Scenario:
    return Scenario(
        start=T0,
        duration=END - T0 + 600,
        scrape_interval=60,
        services=[
            ServiceLoad(
                job="api",
                rps=2,
                error_ratio=0.0005,
                daily_amplitude=0.3,
                incidents=[Incident(OUTAGE - T0, OUTAGE - T0 + 2400, error_ratio=0.5)],
            )
        ],
    )


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return _scenario()


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for, scenario: Scenario) -> LocalPrometheus:
    return module_prometheus_for(scenario)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    (root / "api.yaml").write_text(SPEC)
    return root


def _truth(scenario: Scenario) -> dict[str, tuple[int, int]]:
    return {
        day: (
            scenario.expected_increase("api", day_start(day), day_start(day) + DAY, "errors"),
            scenario.expected_increase("api", day_start(day), day_start(day) + DAY),
        )
        for day in month_days(MONTH)
    }


def _report(*args: str) -> dict:
    _register()
    run = CliRunner().invoke(app, ["report", "--month", MONTH, "--format", "json", *args])
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout)


def _check(report: dict, scenario: Scenario, origin: str) -> None:
    truth = _truth(scenario)
    (slo,) = report["slos"]
    assert slo["slo"] == "api/availability" and slo["origin"] == origin
    days = {d["day"]: d for d in slo["days"]}
    assert set(days) == set(truth)
    for day, (bad, total) in truth.items():
        assert days[day]["bad"] == pytest.approx(bad, abs=1e-6), day
        assert days[day]["total"] == pytest.approx(total, abs=1e-6), day
    bad = sum(b for b, _ in truth.values())
    total = sum(t for _, t in truth.values())
    assert slo["events"]["bad"] == pytest.approx(bad, abs=1e-6)
    assert slo["achieved"] == pytest.approx(100 * (1 - bad / total))
    assert slo["budget_used_percent"] == pytest.approx(100 * bad / (total * 0.001))
    assert slo["worst_day"]["day"] == "2024-02-10"


def test_report_rebuilt_from_prometheus_matches_the_events(prometheus, scenario, specs):
    report = _report("--from-prometheus", prometheus.url, "--specs", str(specs))
    _check(report, scenario, "prometheus")
    (slo,) = report["slos"]
    assert slo["burning_minutes"] is None  # not rebuilt: said, not made up
    worst = {d["day"]: d for d in slo["days"]}["2024-02-10"]
    assert worst["budget_remaining"] < 0  # 20 minutes of errors overspend a day's budget


def test_stored_days_match_the_events_and_are_idempotent(prometheus, scenario, specs, tmp_path):
    slos = load_specs([specs]).slos
    state = tmp_path / "state"
    with SQLiteStore.in_state_dir(state) as store:
        history = store.compliance_history()
        source = PrometheusSource(prometheus.url)
        days = month_days(MONTH)
        for chunk in range(0, len(days), 2):  # the daemon's job: two days at a time
            pair = days[chunk : chunk + 2]
            record_days(history, source, slos, pair, day_start(pair[-1]) + DAY)
        # A replica or a restart asking again writes the same rows: nothing doubles.
        record_days(history, source, slos, days[:2], day_start(days[1]) + DAY)
    _check(_report("--state-dir", str(state)), scenario, "store")


def test_html_report_renders_in_chromium_with_its_plot(prometheus, specs, tmp_path):
    from harness.browser import chromium_binary, dump_dom

    if chromium_binary() is None:
        pytest.skip("chromium is not installed")
    _register()
    page = tmp_path / "report.html"
    args = ["report", "--month", MONTH, "--format", "html", "--output", str(page)]
    args += ["--from-prometheus", prometheus.url, "--specs", str(specs)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    text = page.read_text()
    assert "default-src 'none'" in text and 'src="data:image/svg+xml;base64,' in text
    dom = dump_dom(page.as_uri())
    assert "api/availability" in dom and "Worst day" in dom and "2024-02-10" in dom
