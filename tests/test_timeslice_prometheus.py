"""Time-slice SLOs against a real Prometheus (backfilled with promtool): a day of traffic in
which 17 minutes miss their 99 % slice target, 5 sit exactly on it, 30 have no requests and
10 have no samples at all. `evaluate`, the daemon's evaluator and the backtest all count
17 bad slices of 1,400 judged ones, the hand count from the generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.backtest.replay import fetch_history, make_plan, replay
from engine.cli import _register, app
from engine.demo.openmetrics import open_openmetrics
from engine.evaluation.evaluator import Evaluator
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN, HOUR, DAY = 60, 3600, 86_400
T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
SCRAPE = 15
PER_SCRAPE = 100  # requests per scrape: 400 a minute
# Minute m is the slice (T0 + (m−1)·60, T0 + m·60]; errors per scrape in the bad ones.
BAD = {7: 5, 61: 2, 62: 2, 200: 5, 333: 3, 480: 5, 481: 5, 482: 5, 700: 2, 901: 4}
BAD |= {1000: 5, 1101: 2, 1200: 3, 1383: 5, 1400: 2, 1420: 5, 1439: 3}
AT_TARGET = (100, 101, 500, 1300, 1438)  # 1 error per 100 requests: exactly 99 % good
QUIET = range(800, 830)  # the counters stand still: no events, not judged
GAP = range(600, 610)  # no samples at all: no data, not judged
SPEC = """apiVersion: slo-engine/v1
service: shop
slos:
  - name: checkout-minutes
    objective: 98
    period: 1d
    timeslices: {slice: 1m, slice_target: 99}
    sli:
      events:
        bad: sum(rate(http_requests_total{job="shop",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="shop"}[{{window}}]))
"""


def _minute(times: np.ndarray) -> np.ndarray:
    """The slice number of each scrape: the minute whose interval (start, end] holds it."""
    return np.ceil((times - T0) / MIN).astype(int)


def _write_day(path: Path) -> Path:
    times = np.arange(T0 - HOUR, T0 + DAY + 10 * MIN + 1, SCRAPE, dtype=np.int64)
    minute = _minute(times)
    errors = np.zeros(times.size)
    for m, per_scrape in BAD.items():
        errors[minute == m] = per_scrape
    errors[np.isin(minute, AT_TARGET)] = 1
    requests = np.full(times.size, float(PER_SCRAPE))
    quiet = np.isin(minute, list(QUIET))
    requests[quiet], errors[quiet] = 0, 0
    keep = ~np.isin(minute, list(GAP))
    # Counters start far from zero so rate() extrapolates both series alike.
    ok = 1e6 + np.cumsum(requests - errors)
    failed = 1e6 + np.cumsum(errors)
    with open_openmetrics(path) as writer:
        writer.family("http_requests", "counter")
        for code, values in (("200", ok), ("500", failed)):
            labels = {"job": "shop", "code": code}
            writer.series("http_requests_total", labels, times[keep], values[keep])
    return path


def _hand_count() -> tuple[int, int]:
    """(bad, judged) slices of the day (T0, T0 + 1d], counted from the data's definition."""
    judged = [m for m in range(1, 1441) if m not in QUIET and m not in GAP]
    return sum(1 for m in judged if m in BAD), len(judged)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    (root / "shop.yaml").write_text(SPEC)
    return root


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for, tmp_path_factory) -> LocalPrometheus:
    data = _write_day(tmp_path_factory.mktemp("data") / "day.om")
    return module_prometheus_for(data)


def test_hand_count_is_what_the_data_says() -> None:
    bad, judged = _hand_count()
    assert (bad, judged) == (17, 1400)


def test_evaluate_json_counts_bad_slices(specs, prometheus) -> None:
    bad, judged = _hand_count()
    _register()
    run = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--specs",
            str(specs),
            "--prometheus-url",
            prometheus.url,
            "--scrape-interval",
            "15s",
            "--at",
            str(T0 + DAY),
            "--format",
            "json",
        ],
    )
    assert run.exit_code == 0, run.output
    (slo,) = json.loads(run.stdout)["slos"]
    assert slo["events"]["1d"] == {"bad": pytest.approx(bad), "total": pytest.approx(judged)}
    assert slo["error_ratio"]["1d"] == pytest.approx(bad / judged)
    assert slo["error_budget_remaining"] == pytest.approx(1 - (bad / judged) / 0.02)
    # The last hour holds minutes 1383, 1400, 1420 and 1439: 4 bad of 60 slices.
    assert slo["events"]["1h"] == {"bad": pytest.approx(4), "total": pytest.approx(60)}
    assert slo["burn_rate"]["1h"] == pytest.approx((4 / 60) / 0.02)


def test_daemon_evaluator_at_a_coarser_step_counts_the_same(specs, prometheus) -> None:
    # The daemon's default 60 s scrape interval makes its finest step 2m30s: slices are
    # counted in the step their end falls in, so the period holds the same slices.
    slos = load_specs([specs]).slos
    source = PrometheusSource(prometheus.url, timeout=60)
    evaluator = Evaluator(slos, source, scrape_interval=Duration.parse("60s"))
    assert evaluator.resolution.fine_step == Duration.parse("2m30s")
    (result,) = evaluator.evaluate(float(T0 + DAY))
    bad, judged = _hand_count()
    day = result.windows[Duration.parse("1d")]
    assert (day.bad, day.total) == (pytest.approx(bad), pytest.approx(judged))
    assert result.error_budget_remaining == pytest.approx(1 - (bad / judged) / 0.02)


def test_backtest_spends_the_hand_counted_budget(specs, prometheus) -> None:
    slos = load_specs([specs]).slos
    plan = make_plan(slos, T0, T0 + DAY, Duration.parse("1m"), Duration.parse("3d"))
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), slos, plan)
    assert not rates.errors
    result = replay(slos, rates, plan)
    bad, judged = _hand_count()
    assert result.budget_consumed[slos[0].id] == pytest.approx((bad / judged) / 0.02)
