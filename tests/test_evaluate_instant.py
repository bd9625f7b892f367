"""The one-shot path (whole-window instant queries) against the cache path, on one real
Prometheus: the same data as tests/test_evaluate_correctness.py (3 d 8 h of 15 s scrapes,
an error/latency incident and a database outage), every window of every SLO at every
instant within 1 %, the same statuses and alerts, the same error and no-data states.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from harness.specs import SCENARIO_DATABASE, SCENARIO_ERRORS, SCENARIO_LATENCY, shop_slos

from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad, write_openmetrics
from engine.evaluation.evaluator import SPARSE_FINE_COVERAGE, Evaluator
from engine.evaluation.instant import (
    WindowCountSource,
    counts_windows,
    evaluate_once,
    sparse_fine_steps_once,
)
from engine.evaluation.result import SLOEvaluation
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration

pytestmark = pytest.mark.prometheus

HOUR, DAY, MINUTE = 3600, 86400, 60
START = (int(time.time()) // HOUR - 3 * 24 - 10) * HOUR
INCIDENT = (3 * DAY + 2 * HOUR, 3 * DAY + 3 * HOUR)
OUTAGE = (3 * DAY + 4 * HOUR, 3 * DAY + 6 * HOUR)


def scenario(start: int, scrape_interval: int) -> Scenario:
    return Scenario(
        start=start,
        duration=3 * DAY + 8 * HOUR,
        scrape_interval=scrape_interval,
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


SCENARIO = scenario(START, 15)
INSTANTS = {
    "incident-40m": 3 * DAY + 2 * HOUR + 40 * MINUTE,
    "recovered-30m": 3 * DAY + 3 * HOUR + 30 * MINUTE,
    "db-outage-70m": 3 * DAY + 5 * HOUR + 10 * MINUTE,
    "quiet": 3 * DAY + 1 * HOUR,
    "unaligned": 3 * DAY + 2 * HOUR + 47 * MINUTE + 23,
}
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
            "bad": 'sum(rate(http_requests_total{job="api"}[{{window}}])) / on() group_left rate(http_requests_total[{{window}}])',
            "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
        }
    },
}
SLOS = shop_slos([SCENARIO_ERRORS, SCENARIO_LATENCY, SCENARIO_DATABASE, MISSING, BROKEN])
MEASURED = ("errors", "latency", "db")


def _server(tmp: pytest.TempPathFactory, data: Scenario, name: str) -> Iterator[LocalPrometheus]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp.mktemp(name)
    tsdb = backfill(write_openmetrics(data, work / "data.om"), work / "tsdb")
    with LocalPrometheus(tsdb) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    yield from _server(tmp_path_factory, SCENARIO, "instant-15s")


def by_name(results: list[SLOEvaluation]) -> dict[str, SLOEvaluation]:
    return {r.slo.name: r for r in results}


@pytest.fixture(scope="module")
def both(
    prometheus: LocalPrometheus,
) -> dict[str, tuple[dict[str, SLOEvaluation], dict[str, SLOEvaluation], int]]:
    """Per instant: (cache path, one-shot path, HTTP requests the one-shot path sent)."""
    out = {}
    for name, offset in INSTANTS.items():
        cached = Evaluator(SLOS, PrometheusSource(prometheus.url)).evaluate(START + offset)
        source = PrometheusSource(prometheus.url)
        once = evaluate_once(SLOS, source, START + offset)
        out[name] = (by_name(cached), by_name(once.evaluations), source.http_requests)
    return out


def test_prometheus_source_counts_windows() -> None:
    assert isinstance(PrometheusSource("http://127.0.0.1:1"), WindowCountSource)


@pytest.mark.parametrize("instant", list(INSTANTS))
def test_every_window_of_every_slo_equals_the_cache_path(
    both: dict[str, tuple[dict[str, SLOEvaluation], dict[str, SLOEvaluation], int]],
    instant: str,
) -> None:
    cached, once, _ = both[instant]
    for name in MEASURED:
        a, b = cached[name], once[name]
        assert b.evaluated_at == a.evaluated_at
        assert set(b.windows) == set(a.windows)
        for window, value in a.windows.items():
            got = b.windows[window]
            label = (name, str(window))
            assert value.total is not None and got.total is not None, label
            assert got.total == pytest.approx(value.total, rel=0.01), label
            assert got.bad == pytest.approx(value.bad, rel=0.01, abs=1.0), label
            assert got.error_ratio == pytest.approx(value.error_ratio, rel=0.01, abs=1e-5), label
        assert b.error_budget_remaining == pytest.approx(a.error_budget_remaining, rel=0.01)
        assert b.status == a.status, name
        assert [x.to_json() for x in b.alerts] == [x.to_json() for x in a.alerts], name
        assert b.recent_window == a.recent_window
        assert a.recent is not None and b.recent is not None
        assert b.recent.total == pytest.approx(a.recent.total, rel=1e-9), name


@pytest.mark.parametrize("instant", list(INSTANTS))
def test_no_data_and_errors_are_the_same_states(
    both: dict[str, tuple[dict[str, SLOEvaluation], dict[str, SLOEvaluation], int]],
    instant: str,
) -> None:
    cached, once, _ = both[instant]
    assert once["missing"].status == cached["missing"].status == "no_data"
    assert once["broken"].status == cached["broken"].status == "error"
    assert once["broken"].error is not None and "many-to-many" in once["broken"].error
    assert all(v.total is None for v in once["missing"].windows.values())


def test_a_handful_of_requests(
    both: dict[str, tuple[dict[str, SLOEvaluation], dict[str, SLOEvaluation], int]],
) -> None:
    """One request per batch and window (9 windows here: 8 policy windows + the recent
    minute), plus the bisection of the broken SLO's batch — not one per SLO per window."""
    windows = len(counts_windows(SLOS)) + 1
    for _, _, requests in both.values():
        assert windows <= requests <= 4 * windows


def test_unreachable_source_is_an_error_for_every_slo() -> None:
    source = PrometheusSource("http://127.0.0.1:1", retries=0)
    once = evaluate_once(SLOS, source, START + INSTANTS["quiet"])
    assert once.events is None
    assert {e.status for e in once.evaluations} == {"error"}
    assert all(e.alerts == () and "unavailable" in (e.error or "") for e in once.evaluations)


# ------------------------------------------------- 60 s scrapes, 15 s assumed: say so


@pytest.fixture(scope="module")
def prometheus60(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    yield from _server(tmp_path_factory, scenario(START + 17, 60), "instant-60s")


def test_sparse_fine_steps_are_flagged_with_two_range_requests(
    prometheus60: LocalPrometheus, prometheus: LocalPrometheus
) -> None:
    """Whole windows over 60 s scrapes have data (a 5m range holds five samples); the
    newest 1m step does not, and the daemon's 1m grid would be blind: the one-shot path
    flags what the cache path flags, from the last hour only."""
    at = START + INSTANTS["incident-40m"]
    source = PrometheusSource(prometheus60.url)
    once = evaluate_once(SLOS[:3], source, at)
    assert once.events is not None
    before = source.http_requests
    sparse = sparse_fine_steps_once(
        SLOS[:3], once.events, source, once.resolution, SPARSE_FINE_COVERAGE
    )
    assert set(sparse) == {"shop/errors", "shop/latency"}
    assert max(sparse.values()) < 0.05
    assert source.http_requests - before == 2
    errors = by_name(once.evaluations)["errors"]
    assert errors.windows[Duration.parse("5m")].error_ratio is not None
    assert errors.recent is not None and errors.recent.total is None

    # Healthy 15 s data: nothing to check, no request.
    healthy = PrometheusSource(prometheus.url)
    fine = evaluate_once(SLOS[:3], healthy, at)
    assert fine.events is not None and not np.isnan(fine.events.recent_total).any()
    before = healthy.http_requests
    assert (
        sparse_fine_steps_once(
            SLOS[:3], fine.events, healthy, fine.resolution, SPARSE_FINE_COVERAGE
        )
        == {}
    )
    assert healthy.http_requests == before
