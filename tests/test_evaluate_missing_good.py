"""A missing *good* series never makes an SLO look perfect (real Prometheus, real CLI).

"A missing bad series with a known total is 0 bad events" is right for an explicit `bad`
query (error counters do not exist until the first error). Where bad is derived as
total − good, a missing good series means something else:
- latency SLI whose threshold is not a bucket bound (the scenario's histogram has
  0.05 0.1 0.25 0.5 1 2.5 5 +Inf): `error`, naming the histogram, the threshold and the
  bounds it has — not ok with 0 slow requests;
- events SLI with a `good` query matching nothing: `no_data` — not ok, not 100 % bad.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.demo.scenario import Scenario, ServiceLoad
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.result import SLOEvaluation
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

pytestmark = pytest.mark.prometheus

HOUR = 3600
# 4 h of 15 s scrapes ending about an hour ago, quiet traffic: every SLO here is healthy.
START = (int(time.time()) // HOUR - 5) * HOUR
SCENARIO = Scenario(
    start=START,
    duration=4 * HOUR,
    scrape_interval=15,
    services=[ServiceLoad(job="api", rps=20, error_ratio=0.0005, slow_ratio=0.002)],
)
AT = START + 4 * HOUR

SPEC = {
    "apiVersion": "slo-engine/v1",
    "service": "api",
    "slos": [
        {
            "name": "latency-300ms",  # not a bucket bound: a misconfiguration
            "objective": 99,
            "sli": {
                "latency": {
                    "histogram": "http_request_duration_seconds",
                    "selector": 'job="api"',
                    "threshold": "300ms",
                }
            },
        },
        {
            "name": "latency-500ms",
            "objective": 99,
            "sli": {
                "latency": {
                    "histogram": "http_request_duration_seconds",
                    "selector": 'job="api"',
                    "threshold": "500ms",
                }
            },
        },
        {
            "name": "good-wrong-selector",  # no request ever had code 201
            "objective": 99.9,
            "sli": {
                "events": {
                    "good": 'sum(rate(http_requests_total{job="api",code="201"}[{{window}}]))',
                    "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
                }
            },
        },
        {
            "name": "good",
            "objective": 99.9,
            "sli": {
                "events": {
                    "good": 'sum(rate(http_requests_total{job="api",code="200"}[{{window}}]))',
                    "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
                }
            },
        },
        {
            "name": "bad-no-error-series",  # no 503 has happened yet: 0 errors
            "objective": 99.9,
            "sli": {
                "events": {
                    "bad": 'sum(rate(http_requests_total{job="api",code="503"}[{{window}}]))',
                    "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
                }
            },
        },
    ],
}
SLOS: list[SLO] = ServiceSpec.model_validate(SPEC).slo_records()
BUCKET_MESSAGE = (
    'histogram http_request_duration_seconds has no bucket le="0.3" for selector job="api" '
    "while its _count has data — the threshold (300ms) must equal one of its bucket bounds; "
    "it has le=0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, +Inf"
)


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for: Any) -> LocalPrometheus:
    return module_prometheus_for(SCENARIO)


@pytest.fixture(scope="module")
def results(prometheus: LocalPrometheus) -> dict[str, SLOEvaluation]:
    evaluations = Evaluator(SLOS, PrometheusSource(prometheus.url)).evaluate(AT)
    return {e.slo.name: e for e in evaluations}


def _ratio_1h(name: str) -> float:
    t0 = AT - HOUR
    kind = {"latency-500ms": ("slow", "count")}.get(name, ("errors", "total"))
    return SCENARIO.expected_increase("api", t0, AT, kind[0]) / SCENARIO.expected_increase(
        "api", t0, AT, kind[1]
    )


def test_latency_threshold_that_is_no_bucket_is_an_error_naming_the_bounds(
    results: dict[str, SLOEvaluation],
) -> None:
    wrong = results["latency-300ms"]
    assert wrong.status == "error"
    assert wrong.error == BUCKET_MESSAGE
    assert wrong.alerts == ()
    assert wrong.error_budget_remaining is None
    assert all(v.bad is None and v.total is None for v in wrong.windows.values())


def test_latency_threshold_on_a_bucket_bound_is_measured(
    results: dict[str, SLOEvaluation],
) -> None:
    right = results["latency-500ms"]
    assert right.status == "ok" and right.error is None
    ratio = right.error_ratio(Duration.parse("1h"))
    assert ratio is not None and ratio > 0
    assert ratio == pytest.approx(_ratio_1h("latency-500ms"), rel=0.01)


def test_good_query_matching_nothing_is_no_data_not_perfect_nor_all_bad(
    results: dict[str, SLOEvaluation],
) -> None:
    wrong = results["good-wrong-selector"]
    assert wrong.status == "no_data" and wrong.error is None
    assert wrong.alerts == () and wrong.error_budget_remaining is None
    assert {(v.bad, v.total, v.error_ratio) for v in wrong.windows.values()} == {(None, None, None)}


def test_good_query_that_matches_measures_like_the_bad_query(
    results: dict[str, SLOEvaluation],
) -> None:
    good = results["good"]
    assert good.status == "ok"
    ratio = good.error_ratio(Duration.parse("1h"))
    assert ratio is not None and ratio > 0
    assert ratio == pytest.approx(_ratio_1h("good"), rel=0.01)


def test_missing_error_series_with_traffic_is_zero_errors(
    results: dict[str, SLOEvaluation],
) -> None:
    clean = results["bad-no-error-series"]
    assert clean.status == "ok" and clean.error is None
    for window, value in clean.windows.items():
        assert value.bad == 0.0 and value.total is not None and value.total > 0, window
        assert value.error_ratio == 0.0
    assert clean.error_budget_remaining == 1.0


def test_source_marks_only_the_steps_without_good_as_no_data(prometheus: LocalPrometheus) -> None:
    source = PrometheusSource(prometheus.url)
    step = Duration.parse("5m")
    rates = source.fetch(SLOS, step, AT - HOUR, AT)
    rows = {s.name: i for i, s in enumerate(SLOS)}
    assert rates.errors == {"api/latency-300ms": BUCKET_MESSAGE}
    assert np.isnan(rates.total[rows["latency-300ms"]]).all()
    assert np.isnan(rates.total[rows["good-wrong-selector"]]).all()
    assert np.isnan(rates.bad[rows["good-wrong-selector"]]).all()
    for name in ("latency-500ms", "good"):
        assert not np.isnan(rates.total[rows[name]]).any()
        assert not np.isnan(rates.bad[rows[name]]).any()
    # The explicit bad query is still empty with a total: the evaluation counts it as 0.
    assert np.isnan(rates.bad[rows["bad-no-error-series"]]).all()
    assert not np.isnan(rates.total[rows["bad-no-error-series"]]).any()


def test_evaluate_cli_reports_the_error_and_still_exits_0(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")  # JSON is YAML
    args = ["--specs", str(spec), "--prometheus-url", prometheus.url, "--at", str(AT)]
    result = subprocess.run(
        [sys.executable, "-m", "engine", "evaluate", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    slos = {slo["id"]: slo for slo in json.loads(result.stdout)["slos"]}
    wrong = slos["api/latency-300ms"]
    assert wrong["status"] == "error" and wrong["error"] == BUCKET_MESSAGE
    assert wrong["alerts"] == []
    assert {s["id"]: s["status"] for s in slos.values()} == {
        "api/latency-300ms": "error",
        "api/latency-500ms": "ok",
        "api/good-wrong-selector": "no_data",
        "api/good": "ok",
        "api/bad-no-error-series": "ok",
    }
