"""Composite SLOs against a real Prometheus (backfilled with promtool).

The journey `shop/checkout` = 1 × api/availability (an events SLI: code 500 of the api
job) + 2 × pay/latency (a latency SLI: requests of the pay job slower than 500 ms). Its
window events must be the weighted sums of its components' — in the daemon's cache path,
the one-shot `evaluate` path and the backtest — and match the scenario's exact counters; it
pages when the weighted ratio burns fast, and stays quiet when the weights say the failing
part matters little.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from engine.alerting.alerts import alerts_from_evaluations
from engine.backtest.replay import fetch_history, make_plan, replay
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.instant import evaluate_once
from engine.evaluation.result import SLOEvaluation
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.source.window_coverage import window_coverage
from engine.spec.durations import Duration
from engine.spec.loader import load_specs
from engine.spec.models import SLO

pytestmark = pytest.mark.prometheus

MIN, HOUR, DAY = 60, 3600, 86_400
T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
SLOW = (2 * HOUR, 2 * HOUR + 40 * MIN)  # pay: 90 % of requests slower than 500 ms
END = 3 * HOUR

API = """apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.5
    sli:
      events:
        bad: sum(rate(http_requests_total{job="api",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="api"}[{{window}}]))
"""
PAY = """apiVersion: slo-engine/v1
service: pay
slos:
  - name: latency
    objective: 99.5
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: job="pay"
        threshold: 500ms
"""
# checkout: pay's slowness dominates; browse: api weighs 50× more, diluting it.
SHOP = """apiVersion: slo-engine/v1
service: shop
slos:
  - name: checkout
    objective: 99.5
    sli:
      composite:
        objectives:
          - {slo: api/availability}
          - {slo: pay/latency, weight: 2}
  - name: browse
    objective: 99.5
    sli:
      composite:
        objectives:
          - {slo: api/availability, weight: 50}
          - {slo: pay/latency, weight: 1}
"""
WEIGHTS = {"shop/checkout": (1.0, 2.0), "shop/browse": (50.0, 1.0)}
SCENARIO = Scenario(
    start=T0,
    duration=END + 5 * MIN,
    scrape_interval=15,
    services=[
        ServiceLoad(job="api", rps=20, error_ratio=0.002, slow_ratio=0.0),
        ServiceLoad(
            job="pay",
            rps=5,
            error_ratio=0.0,
            slow_ratio=0.001,
            incidents=[Incident(*SLOW, error_ratio=0.0, slow_ratio=0.9)],
        ),
    ],
)


@pytest.fixture(scope="module")
def slos(tmp_path_factory: pytest.TempPathFactory) -> list[SLO]:
    root = tmp_path_factory.mktemp("specs")
    for name, text in {"api": API, "pay": PAY, "shop": SHOP}.items():
        (root / f"{name}.yaml").write_text(text)
    loaded = load_specs([Path(root)])
    assert not loaded.errors, loaded.errors
    return loaded.slos


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for) -> LocalPrometheus:
    return module_prometheus_for(SCENARIO)


def _by_id(results: list[SLOEvaluation]) -> dict[str, SLOEvaluation]:
    return {r.slo.id: r for r in results}


def _assert_weighted(results: dict[str, SLOEvaluation], rel: float = 1e-12) -> None:
    """Every window of each composite holds its components' weighted events."""
    api, pay = results["api/availability"], results["pay/latency"]
    for slo_id, (w_api, w_pay) in WEIGHTS.items():
        composite = results[slo_id]
        assert composite.status != "error", composite.error
        for window, value in composite.windows.items():
            a, p = api.windows[window], pay.windows[window]
            assert a.total is not None and p.total is not None
            assert value.total == pytest.approx(w_api * a.total + w_pay * p.total, rel=rel)
            assert value.bad == pytest.approx(w_api * (a.bad or 0) + w_pay * (p.bad or 0), rel=rel)
            assert value.error_ratio == pytest.approx(value.bad / value.total, rel=1e-9)


def _truth(at: float, window: Duration, weights: tuple[float, float]) -> tuple[float, float]:
    """(bad, total) of a composite over (at − window, at] from the scenario's counters."""
    t0 = max(at - window.seconds, T0)
    inc = SCENARIO.expected_increase
    pay_total = inc("pay", t0, at, "count")
    pay_bad = pay_total - inc("pay", t0, at, "fast")
    bad = weights[0] * inc("api", t0, at, "errors") + weights[1] * pay_bad
    total = weights[0] * inc("api", t0, at) + weights[1] * pay_total
    return bad, total


def test_cache_path_events_are_the_weighted_component_events(slos, prometheus) -> None:
    at = float(T0 + SLOW[0] + 30 * MIN)
    results = _by_id(Evaluator(slos, PrometheusSource(prometheus.url, timeout=60)).evaluate(at))
    _assert_weighted(results)
    # And the hand count from the backfilled counters, for the windows that end on the grid.
    for slo_id, weights in WEIGHTS.items():
        for name in ("1h", "2h"):
            window = Duration.parse(name)
            bad, total = _truth(at, window, weights)
            value = results[slo_id].windows[window]
            assert value.total == pytest.approx(total, rel=0.01)
            assert value.bad == pytest.approx(bad, rel=0.02)
            assert value.error_ratio == pytest.approx(bad / total, rel=0.02)
            # Event-weighted, not a weighted mean of the two ratios: they differ here.
            mean = (
                weights[0] * results["api/availability"].windows[window].error_ratio
                + weights[1] * results["pay/latency"].windows[window].error_ratio
            ) / sum(weights)
            assert abs(value.error_ratio - mean) > 0.05 * mean


def test_one_shot_path_agrees(slos, prometheus) -> None:
    at = float(T0 + SLOW[0] + 30 * MIN)
    once = evaluate_once(slos, PrometheusSource(prometheus.url, timeout=60), at)
    assert once.events is not None
    _assert_weighted(_by_id(once.evaluations))


def test_composite_pages_on_the_weighted_burn_and_weights_matter(slos, prometheus) -> None:
    evaluator = Evaluator(slos, PrometheusSource(prometheus.url, timeout=60))
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]))
    statuses: dict[str, set[str]] = {}
    incident_services: set[str] = set()
    now = float(T0 + SLOW[0] - 10 * MIN)
    first_page: float | None = None
    while now <= T0 + SLOW[0] + 35 * MIN:
        evaluated = evaluator.evaluate(now)
        results = _by_id(evaluated)
        step = engine.observe(now, alerts_from_evaluations(evaluated), evaluated)
        incident_services |= {n.incident["service"] for n in step.notifications}
        for slo_id, r in results.items():
            statuses.setdefault(slo_id, set()).add(r.status)
        if first_page is None and results["shop/checkout"].status == "page":
            first_page = now - T0 - SLOW[0]
            assert any(a.severity == "page" for a in results["shop/checkout"].firing)
        now += 5 * MIN
    # checkout: (0.04 + 2·4.5) / (20 + 2·5) ≈ 30 % bad events, 60× the budget: the 1h
    # window passes 14.4× about 14 minutes in.
    assert first_page is not None and 5 * MIN <= first_page <= 20 * MIN
    assert "page" in statuses["pay/latency"]
    # browse: (50·0.04 + 4.5) / (50·20 + 5) ≈ 0.65 %: 1.3× the budget, never a page.
    assert "page" not in statuses["shop/browse"]
    assert statuses["api/availability"] <= {"ok", "ticket"}
    # The journey's page is an incident of its own service.
    assert {"shop", "pay"} <= incident_services, incident_services


def test_backtest_replays_the_composite(slos, prometheus) -> None:
    plan = make_plan(
        slos, T0 + SLOW[0] - HOUR, T0 + END, Duration.parse("1m"), Duration.parse("3d")
    )
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), slos, plan)
    assert not rates.errors
    row = {s.id: i for i, s in enumerate(slos)}
    c, a, p = row["shop/checkout"], row["api/availability"], row["pay/latency"]
    present = ~np.isnan(rates.total[c])
    # Data wherever both components have it (the warmup before the scenario has none).
    assert (present == (~np.isnan(rates.total[a]) & ~np.isnan(rates.total[p]))).all()
    assert present.sum() >= (END - SLOW[0] + HOUR) // MIN - 5
    assert rates.total[c][present] == pytest.approx(
        rates.total[a][present] + 2 * rates.total[p][present], rel=1e-12
    )
    result = replay(slos, rates, plan)
    paged = {x.slo_id for x in result.alerts if x.severity == "page"}
    assert "shop/checkout" in paged and "shop/browse" not in paged


def test_one_shot_coverage_is_the_least_covered_component(slos, prometheus) -> None:
    # Two and a half hours of data: windows from 6h up are partial for every part, and
    # the journey's budget must say so on the one-shot path too (it has no steps to count).
    at = float(T0 + SLOW[0] + 30 * MIN)
    source = PrometheusSource(prometheus.url, timeout=60)
    once = evaluate_once(slos, source, at, coverage=partial(window_coverage, source))
    results = _by_id(once.evaluations)
    api, pay = results["api/availability"], results["pay/latency"]
    for slo_id in WEIGHTS:
        composite = results[slo_id]
        for window, value in composite.windows.items():
            parts = (api.windows[window].coverage, pay.windows[window].coverage)
            assert None not in parts
            assert value.coverage == pytest.approx(min(parts), rel=1e-12)
        assert composite.budget_partial
        assert composite.windows[Duration.parse("6h")].coverage == pytest.approx(2.5 / 6, rel=0.02)
