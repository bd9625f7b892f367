"""Time-slice SLOs in the compliance history and the monthly report (issue 14 leftovers),
against a real Prometheus backfilled with the day of tests/test_timeslice_prometheus.py
(17 bad minutes of 1,400 judged): the daemon's stored days and the days rebuilt from
Prometheus count slices, not requests — the hand count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_timeslice_prometheus import DAY, SPEC, _hand_count, _write_day
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.daemon.budgets import record_days
from engine.evaluation.daily import day_start
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.loader import load_specs
from engine.store.sqlite import SQLiteStore

pytestmark = pytest.mark.prometheus

MONTH = "2024-01"


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    (root / "shop.yaml").write_text(SPEC)
    return root


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for, tmp_path_factory) -> LocalPrometheus:
    return module_prometheus_for(_write_day(tmp_path_factory.mktemp("data") / "day.om"))


def _report(*args: str) -> dict:
    _register()
    run = CliRunner().invoke(app, ["report", "--month", MONTH, "--format", "json", *args])
    assert run.exit_code == 0, run.output
    (slo,) = json.loads(run.stdout)["slos"]
    return slo


def _check(slo: dict, origin: str) -> None:
    bad, judged = _hand_count()
    assert slo["slo"] == "shop/checkout-minutes" and slo["origin"] == origin
    first = {d["day"]: d for d in slo["days"]}["2024-01-01"]
    # Slices, not requests (the day had 560,000 requests, 272 of them failed).
    assert (first["bad"], first["total"], first["good"]) == pytest.approx(
        (bad, judged, judged - bad)
    )
    assert first["achieved"] == pytest.approx(100 * (1 - bad / judged))
    assert slo["worst_day"]["day"] == "2024-01-01"
    # The month: January 1st plus the few good slices of the data's last ten minutes.
    assert slo["events"]["bad"] == pytest.approx(bad)
    assert judged <= slo["events"]["total"] <= judged + 10
    allowed = slo["events"]["total"] * 0.02  # objective 98 % of slices
    assert slo["budget_used_percent"] == pytest.approx(100 * bad / allowed)


def test_the_report_rebuilt_from_prometheus_counts_slices(specs, prometheus) -> None:
    slo = _report("--from-prometheus", prometheus.url, "--specs", str(specs))
    _check(slo, "prometheus")
    first = {d["day"]: d for d in slo["days"]}["2024-01-01"]
    # The budget at the day's end is over the 1d period of slices: 17 of 1,400 at 2 %.
    bad, judged = _hand_count()
    assert first["budget_remaining"] == pytest.approx(1 - (bad / judged) / 0.02)


def test_the_daemons_stored_days_count_slices(specs, prometheus, tmp_path: Path) -> None:
    slos = load_specs([specs]).slos
    state = tmp_path / "state"
    with SQLiteStore.in_state_dir(state) as store:
        days = ["2024-01-01", "2024-01-02"]
        written = record_days(
            store.compliance_history(),
            PrometheusSource(prometheus.url, timeout=60),
            slos,
            days,
            day_start(days[-1]) + DAY,
        )
        assert written == 2
    _check(_report("--state-dir", str(state)), "store")
