"""Evaluation against a real VictoriaMetrics: the same correctness check as against
Prometheus (tests/test_evaluate_correctness.py) on a second Prometheus-API backend.

VictoriaMetrics answers Prometheus' query API with MetricsQL, whose rate() does not
extrapolate; the engine's windows are built from per-step increases either way, so each
window's error ratio must equal the backend's own `bad / total` within 1 % — and the
scenario's exact ground truth.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from harness.localvm import LocalVictoriaMetrics, skip_reason
from harness.specs import SCENARIO_DATABASE, SCENARIO_ERRORS, SCENARIO_LATENCY, shop_slos

from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad, write_openmetrics
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.policy import policy_for
from engine.evaluation.result import SLOEvaluation
from engine.source.prometheus import PrometheusSource
from engine.spec.sli import bad_rate, total_rate

pytestmark = pytest.mark.victoriametrics

HOUR, DAY, MINUTE = 3600, 86400, 60
START = (int(time.time()) // HOUR - 3 * 24 - 10) * HOUR
INCIDENT = (3 * DAY + 2 * HOUR, 3 * DAY + 3 * HOUR)
OUTAGE = (3 * DAY + 4 * HOUR, 3 * DAY + 6 * HOUR)
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
INSTANTS = {
    "incident-40m": 3 * DAY + 2 * HOUR + 40 * MINUTE,
    "db-outage-70m": 3 * DAY + 5 * HOUR + 10 * MINUTE,
    "quiet": 3 * DAY + 1 * HOUR,
}
SLOS = shop_slos([SCENARIO_ERRORS, SCENARIO_LATENCY, SCENARIO_DATABASE])


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalVictoriaMetrics]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    data = write_openmetrics(SCENARIO, tmp_path_factory.mktemp("vm") / "data.om")
    with LocalVictoriaMetrics() as server:
        server.import_openmetrics(data)
        yield server


@pytest.fixture(scope="module")
def evaluations(victoria: LocalVictoriaMetrics) -> dict[str, dict[str, SLOEvaluation]]:
    return {
        name: {
            e.slo.name: e
            for e in Evaluator(SLOS, PrometheusSource(victoria.url)).evaluate(START + offset)
        }
        for name, offset in INSTANTS.items()
    }


@pytest.mark.parametrize("instant", list(INSTANTS))
@pytest.mark.parametrize("name", ["errors", "latency", "db"])
def test_window_error_ratios_equal_the_backends_own_query(
    victoria: LocalVictoriaMetrics,
    evaluations: dict[str, dict[str, SLOEvaluation]],
    instant: str,
    name: str,
) -> None:
    evaluation = evaluations[instant][name]
    assert evaluation.error is None
    slo = evaluation.slo
    assert set(evaluation.windows) == set(policy_for(slo).windows)
    for window, value in evaluation.windows.items():
        expected = victoria.query_value(
            f"({bad_rate(slo.sli, window)}) / ({total_rate(slo.sli, window)})",
            evaluation.evaluated_at,
        )
        assert expected is not None and value.error_ratio is not None, (name, str(window))
        assert value.error_ratio == pytest.approx(expected, rel=0.01, abs=1e-12), str(window)


def test_the_stories_happen_on_victoriametrics(
    evaluations: dict[str, dict[str, SLOEvaluation]],
) -> None:
    during = evaluations["incident-40m"]
    assert {a.severity for a in during["errors"].alerts} >= {"page"}
    assert during["errors"].windows[next(iter(during["errors"].windows))].error_ratio == (
        pytest.approx(0.1, rel=0.01)
    )
    assert {a.severity for a in evaluations["db-outage-70m"]["db"].alerts} >= {"page"}
    assert all(not e.alerts for e in evaluations["quiet"].values())
    # Exact ground truth, not just agreement with the backend: errors over the incident's
    # first 40 minutes, counted from the scenario's closed-form counters.
    at = during["errors"].evaluated_at
    thirty = next(w for w in during["errors"].windows if w.seconds == 30 * MINUTE)
    bad = SCENARIO.expected_increase("api", at - thirty.seconds, at, "errors")
    total = SCENARIO.expected_increase("api", at - thirty.seconds, at)
    assert during["errors"].windows[thirty].bad == pytest.approx(bad, rel=1e-9)
    assert during["errors"].windows[thirty].total == pytest.approx(total, rel=1e-9)
