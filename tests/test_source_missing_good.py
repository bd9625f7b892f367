"""Which steps of a derived-bad SLI (total − good) lose their good series, and what then.

Unit level: `PrometheusSource._missing_good` on hand-made per-step rates. The bucket bounds
named in the error come from one instant query, answered here by a stub; the real query
runs in tests/test_evaluate_missing_good.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec
from engine.spec.sli import derives_bad, good_rate, missing_bucket_message

NAN = np.nan


def _slos() -> list[SLO]:
    latency = {
        "histogram": "h",
        "selector": 'job="api"',
        "threshold": "300ms",
    }
    total = "sum(rate(r[{{window}}]))"
    spec = {
        "apiVersion": "slo-engine/v1",
        "service": "api",
        "slos": [
            {"name": "latency", "objective": 99, "sli": {"latency": latency}},
            {
                "name": "good",
                "objective": 99,
                "sli": {"events": {"good": 'sum(rate(r{code="200"}[{{window}}]))', "total": total}},
            },
            {
                "name": "bad",
                "objective": 99,
                "sli": {"events": {"bad": 'sum(rate(r{code="500"}[{{window}}]))', "total": total}},
            },
            {"name": "up", "objective": 99, "sli": {"availability": {"metric": "up"}}},
        ],
    }
    return ServiceSpec.model_validate(spec).slo_records()


class _Stub(PrometheusSource):
    """Answers the bucket-bounds query with fixed `le` values and records the query."""

    def __init__(self, bounds: list[str]) -> None:
        super().__init__("http://127.0.0.1:1")
        self.bounds = bounds
        self.asked: list[tuple[str, float]] = []

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        self.asked.append((query, at))
        return [{"metric": {"le": le}, "value": [at, "1"]} for le in self.bounds]


def _run(
    source: PrometheusSource, bad: list[list[float]], total: list[list[float]]
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    bad_a, total_a = np.array(bad, dtype=float), np.array(total, dtype=float)
    errors: dict[str, str] = {}
    times = np.array([600.0, 1200.0, 1800.0])
    source._missing_good(_slos(), times, bad_a, total_a, errors)
    return bad_a, total_a, errors


def test_which_slis_derive_bad_events() -> None:
    kinds = {s.name: derives_bad(s.sli) for s in _slos()}
    assert kinds == {"latency": True, "good": True, "bad": False, "up": False}
    window = Duration.parse("5m")
    goods = {s.name: good_rate(s.sli, window) for s in _slos()}
    assert goods == {
        "latency": 'sum(rate(h_bucket{job="api",le="0.3"}[5m]))',
        "good": 'sum(rate(r{code="200"}[5m]))',
        "bad": None,
        "up": None,
    }


def test_good_missing_at_some_steps_makes_only_those_steps_no_data() -> None:
    source = _Stub([])
    bad, total, errors = _run(
        source,
        bad=[[1, 1, 1], [NAN, 2, NAN], [NAN, NAN, 3], [NAN, 0, 0]],
        total=[[9, 9, 9], [10, 10, NAN], [10, 10, 10], [4, 4, 4]],
    )
    assert errors == {} and source.asked == []
    # good: step 0 lost its good series (no data now); step 2 had no total anyway.
    np.testing.assert_array_equal(total[1], [NAN, 10, NAN])
    np.testing.assert_array_equal(bad[1], [NAN, 2, NAN])
    # Explicit bad and availability keep "missing bad with a total" for the 0-bad rule.
    np.testing.assert_array_equal(total[2], [10, 10, 10])
    np.testing.assert_array_equal(bad[2], [NAN, NAN, 3])
    np.testing.assert_array_equal(total[3], [4, 4, 4])


def test_latency_without_bucket_at_the_newest_step_with_traffic_is_an_error() -> None:
    source = _Stub(["+Inf", "0.25", "1", "0.5"])
    bad, total, errors = _run(
        source,
        # The newest step has no total; the newest *with* a total (1200) has no bucket.
        bad=[[NAN, NAN, NAN], [1, 1, 1], [0, 0, 0], [0, 0, 0]],
        total=[[9, 9, NAN], [10, 10, 10], [10, 10, 10], [4, 4, 4]],
    )
    message = missing_bucket_message(_slos()[0].sli.latency, ("0.25", "0.5", "1", "+Inf"))
    assert errors == {"api/latency": message}
    assert message == (
        'histogram h has no bucket le="0.3" for selector job="api" while its _count has '
        "data — the threshold (300ms) must equal one of its bucket bounds; it has "
        "le=0.25, 0.5, 1, +Inf"
    )
    assert source.asked == [('count by (le) (h_bucket{job="api"})', 1200.0)]
    assert np.isnan(total[0]).all() and np.isnan(bad[0]).all()


def test_latency_bucket_missing_only_in_older_steps_is_no_data_there_not_an_error() -> None:
    # A deploy added the bucket: the steps before it have no good series.
    source = _Stub([])
    bad, total, errors = _run(
        source,
        bad=[[NAN, 1, 2], [1, 1, 1], [0, 0, 0], [0, 0, 0]],
        total=[[9, 9, 9], [10, 10, 10], [10, 10, 10], [4, 4, 4]],
    )
    assert errors == {} and source.asked == []
    np.testing.assert_array_equal(total[0], [NAN, 9, 9])
    np.testing.assert_array_equal(bad[0], [NAN, 1, 2])


def test_bounds_are_left_out_when_they_cannot_be_fetched() -> None:
    # Nothing listens on 127.0.0.1:1: the message is still complete without the bounds.
    source = PrometheusSource("http://127.0.0.1:1", retries=0)
    _, _, errors = _run(
        source,
        bad=[[NAN, NAN, NAN], [1, 1, 1], [0, 0, 0], [0, 0, 0]],
        total=[[9, 9, 9], [10, 10, 10], [10, 10, 10], [4, 4, 4]],
    )
    assert errors == {"api/latency": missing_bucket_message(_slos()[0].sli.latency)}
    assert "it has le=" not in errors["api/latency"]


def test_whole_second_thresholds_name_both_spellings() -> None:
    spec = {
        "apiVersion": "slo-engine/v1",
        "service": "api",
        "slos": [
            {
                "name": "latency",
                "objective": 99,
                "sli": {"latency": {"histogram": "h", "threshold": "2s"}},
            }
        ],
    }
    (slo,) = ServiceSpec.model_validate(spec).slo_records()
    assert slo.sli.latency is not None
    assert missing_bucket_message(slo.sli.latency) == (
        'histogram h has no bucket le="2" (or "2.0") while its _count has data — the '
        "threshold (2s) must equal one of its bucket bounds"
    )
