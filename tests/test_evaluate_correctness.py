"""Evaluation against a real Prometheus on generated traffic with known incidents.

Two references for every number:
- the scenario's exact ground truth (event counts in (at − W, at]) for error ratios, events,
  burn rates, budgets, time to exhaustion, alerts and status;
- Prometheus itself: `(bad_rate(sli, W)) / (total_rate(sli, W))` evaluated at the same
  instant must equal our window error ratio within 1 % relative.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from harness.specs import SCENARIO_DATABASE, SCENARIO_ERRORS, SCENARIO_LATENCY, shop_slos

from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad, write_openmetrics
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.policy import policy_for
from engine.evaluation.result import SLOEvaluation
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bad_rate, total_rate

pytestmark = pytest.mark.prometheus

HOUR, DAY, MINUTE = 3600, 86400, 60
# 3 d 8 h of 15 s scrapes ending ~2 h ago: enough history for the 3d window.
START = (int(time.time()) // HOUR - 3 * 24 - 10) * HOUR
INCIDENT = (3 * DAY + 2 * HOUR, 3 * DAY + 3 * HOUR)  # api: 10 % errors, 30 % slow
OUTAGE = (3 * DAY + 4 * HOUR, 3 * DAY + 6 * HOUR)  # database down
SCENARIO = Scenario(
    start=START,
    duration=3 * DAY + 8 * HOUR,
    scrape_interval=15,
    services=[
        ServiceLoad(
            job="api",
            rps=20,
            error_ratio=0.0005,
            slow_ratio=0.002,
            daily_amplitude=0.3,
            incidents=[Incident(*INCIDENT, error_ratio=0.1, slow_ratio=0.3)],
        )
    ],
    database=DatabaseLoad(outages=[OUTAGE]),
)

# Evaluation instants (offsets from START), each with a story.
INSTANTS = {
    "incident-40m": 3 * DAY + 2 * HOUR + 40 * MINUTE,  # both api SLOs page
    "recovered-30m": 3 * DAY + 3 * HOUR + 30 * MINUTE,  # short windows clean again
    "db-outage-70m": 3 * DAY + 5 * HOUR + 10 * MINUTE,  # availability pages
    "quiet": 3 * DAY + 1 * HOUR,  # before anything
}
# Not on any grid: the evaluator floors to its finest step (1 m) and prorates coarse steps.
UNALIGNED = 3 * DAY + 2 * HOUR + 47 * MINUTE + 23


_spec = shop_slos
ERRORS = SCENARIO_ERRORS
LATENCY = SCENARIO_LATENCY
DATABASE = SCENARIO_DATABASE
MISSING = {
    "name": "missing",
    "objective": 99,
    "sli": {
        "events": {
            "bad": 'sum(rate(no_such_metric_total{code="500"}[{{window}}]))',
            "total": "sum(rate(no_such_metric_total[{{window}}]))",
        }
    },
}
BROKEN = {
    "name": "broken",
    "objective": 99,
    "sli": {
        "events": {
            # Parses, fails when executed: many-to-many matching.
            "bad": 'sum(rate(http_requests_total{job="api"}[{{window}}])) / on() group_left rate(http_requests_total[{{window}}])',
            "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
        }
    },
}
SLOS = _spec([ERRORS, LATENCY, DATABASE, MISSING, BROKEN])
MEASURED = ("errors", "latency", "db")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("evaluate-prom")
    tsdb = backfill(write_openmetrics(SCENARIO, workdir / "data.om"), workdir / "tsdb")
    with LocalPrometheus(tsdb) as server:
        yield server


@pytest.fixture(scope="module")
def evaluations(prometheus: LocalPrometheus) -> dict[str, dict[str, SLOEvaluation]]:
    """Each instant evaluated by a cold evaluator, results by SLO name."""
    out = {}
    for name, offset in {**INSTANTS, "unaligned": UNALIGNED}.items():
        results = Evaluator(SLOS, PrometheusSource(prometheus.url)).evaluate(START + offset)
        out[name] = {e.slo.name: e for e in results}
    return out


def truth(name: str, at: float, window: Duration) -> tuple[float, float]:
    """(bad, total) events in (at − window, at] from the scenario itself."""
    t0 = max(at - window.seconds, START)
    s = SCENARIO
    if name == "errors":
        return s.expected_increase("api", t0, at, "errors"), s.expected_increase("api", t0, at)
    if name == "latency":
        return s.expected_increase("api", t0, at, "slow"), s.expected_increase(
            "api", t0, at, "count"
        )
    if name == "db":
        # Samples are events; a sample exactly at the window start belongs to the previous
        # window (steps partition samples), except the very first sample of the data.
        up, count = s.expected_up_samples(t0 + 0.001 if at - window.seconds >= START else t0, at)
        return count - up, count
    raise KeyError(name)


def slo_named(name: str) -> SLO:
    return next(s for s in SLOS if s.name == name)


@pytest.mark.parametrize("instant", [*INSTANTS, "unaligned"])
@pytest.mark.parametrize("name", MEASURED)
def test_window_error_ratios_equal_promql(
    prometheus: LocalPrometheus,
    evaluations: dict[str, dict[str, SLOEvaluation]],
    instant: str,
    name: str,
) -> None:
    evaluation = evaluations[instant][name]
    at = evaluation.evaluated_at
    assert at == (START + {**INSTANTS, "unaligned": UNALIGNED}[instant]) // 60 * 60
    sli = slo_named(name).sli
    assert set(evaluation.windows) == set(policy_for(slo_named(name)).windows)
    for window, value in evaluation.windows.items():
        promql = f"({bad_rate(sli, window)}) / ({total_rate(sli, window)})"
        expected = prometheus.query_value(promql, at)
        assert expected is not None and value.error_ratio is not None, (name, str(window))
        if expected == 0:
            assert value.error_ratio == 0, (name, str(window))
        else:
            assert value.error_ratio == pytest.approx(expected, rel=0.01), (name, str(window))


@pytest.mark.parametrize("instant", list(INSTANTS))
@pytest.mark.parametrize("name", MEASURED)
def test_numbers_equal_ground_truth(
    evaluations: dict[str, dict[str, SLOEvaluation]], instant: str, name: str
) -> None:
    evaluation = evaluations[instant][name]
    slo = slo_named(name)
    at = evaluation.evaluated_at
    budget = float(slo.error_budget)
    assert evaluation.error is None
    for window, value in evaluation.windows.items():
        bad, total = truth(name, at, window)
        assert value.bad == pytest.approx(bad, rel=1e-9, abs=1e-6), (str(window), "bad")
        assert value.total == pytest.approx(total, rel=1e-9), (str(window), "total")
        assert value.error_ratio == pytest.approx(bad / total, rel=1e-9, abs=1e-12)
        assert value.burn_rate == pytest.approx(bad / total / budget, rel=1e-9, abs=1e-9)

    # Budget over the period, event-weighted (the data holds 3 d 8 h of the 30 d period).
    bad, total = truth(name, at, slo.period)
    remaining = 1 - (bad / total) / budget
    assert evaluation.error_budget_remaining == pytest.approx(remaining, rel=1e-9, abs=1e-9)

    burn_1h = truth(name, at, Duration.parse("1h"))
    burn_1h_rate = burn_1h[0] / burn_1h[1] / budget
    if remaining > 0 and burn_1h_rate > 1:
        expected_tte = remaining * slo.period.seconds / burn_1h_rate
        assert evaluation.time_to_exhaustion == pytest.approx(expected_tte, rel=1e-9)
    else:
        assert evaluation.time_to_exhaustion is None

    # Alerts by hand: both windows of a rule above its threshold (traffic is high: none held).
    expected_alerts = set()
    for rule in policy_for(slo).rules:
        long_ratio = _ratio(truth(name, at, rule.long_window))
        short_ratio = _ratio(truth(name, at, rule.short_window))
        threshold = float(rule.threshold)
        if long_ratio > threshold and short_ratio > threshold:
            expected_alerts.add((rule.severity, str(rule.long_window), str(rule.short_window)))
    got = {(a.severity, str(a.long_window), str(a.short_window)) for a in evaluation.alerts}
    assert got == expected_alerts
    assert all(a.held is None for a in evaluation.alerts)

    severities = {a[0] for a in expected_alerts}
    status = (
        "page"
        if "page" in severities
        else "exhausted"
        if remaining <= 0
        else "ticket"
        if "ticket" in severities
        else "ok"
    )
    assert evaluation.status == status


def _ratio(pair: tuple[float, float]) -> float:
    return pair[0] / pair[1]


def test_the_stories_happen(evaluations: dict[str, dict[str, SLOEvaluation]]) -> None:
    """Guard the scenario itself: the instants show what their names promise."""
    incident = evaluations["incident-40m"]
    assert incident["errors"].status == "page"
    assert incident["latency"].status == "page"
    pages = {(str(a.long_window), str(a.short_window)) for a in incident["errors"].firing}
    assert ("1h", "5m") in pages
    recovered = evaluations["recovered-30m"]["errors"]
    assert not any(a.short_window == Duration.parse("5m") for a in recovered.alerts)
    assert evaluations["db-outage-70m"]["db"].status == "page"
    assert evaluations["db-outage-70m"]["db"].error_ratio(Duration.parse("1h")) == pytest.approx(
        1.0
    )
    quiet = evaluations["quiet"]
    assert all(quiet[n].alerts == () for n in MEASURED)


@pytest.mark.parametrize("instant", [*INSTANTS, "unaligned"])
def test_missing_metric_is_no_data_and_a_failing_query_is_an_error_for_that_slo_only(
    evaluations: dict[str, dict[str, SLOEvaluation]], instant: str
) -> None:
    missing = evaluations[instant]["missing"]
    assert missing.status == "no_data"
    assert missing.error is None and missing.alerts == ()
    assert all(v.error_ratio is None and v.total is None for v in missing.windows.values())
    assert missing.error_budget_remaining is None
    assert missing.to_json()["error_ratio"]["1h"] is None

    broken = evaluations[instant]["broken"]
    assert broken.status == "error"
    assert broken.error is not None and "many-to-many" in broken.error
    assert broken.alerts == ()
    assert broken.error_budget_remaining is None
    for name in MEASURED:
        assert evaluations[instant][name].status not in ("error", "no_data")


def test_warm_cycles_equal_cold_evaluations(
    prometheus: LocalPrometheus, evaluations: dict[str, dict[str, SLOEvaluation]]
) -> None:
    """One evaluator moving forward (incremental fetches) says what fresh ones say."""
    source = PrometheusSource(prometheus.url)
    evaluator = Evaluator(SLOS, source)
    order = sorted(INSTANTS.items(), key=lambda kv: kv[1])
    for name, offset in order:
        requests_before = source.http_requests
        warm = {e.slo.name: e for e in evaluator.evaluate(START + offset)}
        for slo_name in MEASURED:
            cold = evaluations[name][slo_name]
            assert warm[slo_name].status == cold.status
            for window, value in cold.windows.items():
                got = warm[slo_name].windows[window]
                assert got.bad == pytest.approx(value.bad, rel=1e-9, abs=1e-9), (name, str(window))
                assert got.total == pytest.approx(value.total, rel=1e-9), (name, str(window))
            assert [a.to_json() for a in warm[slo_name].alerts] == [
                a.to_json() for a in cold.alerts
            ]
        assert warm["broken"].status == "error" and warm["missing"].status == "no_data"
        assert source.http_requests > requests_before


def test_prometheus_stopped_means_error_everywhere_and_no_alert(
    prometheus_for: Any,
) -> None:
    small = Scenario(
        start=START + 3 * DAY,
        duration=3 * HOUR,
        scrape_interval=15,
        services=[ServiceLoad(job="api", rps=20, error_ratio=0.5, slow_ratio=0.001)],  # errors burn
    )
    server = prometheus_for(small)
    source = PrometheusSource(server.url, retries=1, backoff=0.01)
    evaluator = Evaluator(SLOS[:2], source)
    at = START + 3 * DAY + 3 * HOUR
    before = evaluator.evaluate(at)
    assert [e.status for e in before] == ["page", "ok"]

    server.stop()
    after = evaluator.evaluate(at + 60)
    assert [e.status for e in after] == ["error", "error"]
    for evaluation in after:
        assert evaluation.alerts == () and evaluation.firing == ()
        assert evaluation.error is not None and "unavailable" in evaluation.error
        assert all(_none(v.error_ratio) for v in evaluation.windows.values())


def _none(value: float | None) -> bool:
    return value is None or math.isnan(value)
