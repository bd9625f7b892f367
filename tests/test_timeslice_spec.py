"""Time-slice SLOs: the `timeslices:` model with located errors, the OpenSLO `Timeslices`
import, and the pure slice counting (verdicts, slices per step, missing data)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.timeslices import judge_slices, slices_per_step
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

NATIVE = """apiVersion: slo-engine/v1
service: shop
slos:
  - name: checkout-minutes
    objective: 99.9
    timeslices: {slice: 1m, slice_target: 99}
    sli:
      events:
        bad: sum(rate(http_requests_total{job="shop",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="shop"}[{{window}}]))
"""

OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-minutes
spec:
  service: shop
  indicator:
    metadata:
      name: ok-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total{job="shop",code!="500"})
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total{job="shop"})
  budgetingMethod: Timeslices
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - target: 0.999
      timeSliceTarget: 0.99
      timeSliceWindow: 1m
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    return load_specs([path])


def _errors(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    return [(e.line, e.column, e.text) for e in _load(tmp_path, text).errors]


def test_native_timeslices_reach_the_slo_record(tmp_path: Path) -> None:
    loaded = _load(tmp_path, NATIVE)
    assert not loaded.errors, loaded.errors
    (slo,) = loaded.slos
    assert slo.timeslices is not None
    assert slo.timeslices.slice == Duration.parse("1m")
    assert slo.timeslices.slice_target == Decimal("99")
    assert slo.timeslices.target == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("slice: 1m", "slice: 2m", (6, 25), "slice 2m is not supported — use 1m or 5m"),
        (
            "slice_target: 99}",
            "slice_target: 100}",
            (6, 43),
            "slice_target 100 is out of range — it is a percentage",
        ),
        ("slice_target: 99}", "slice_target: 99, size: 3}", (6, 47), "size"),
    ],
)
def test_native_errors_are_located(
    tmp_path: Path, old: str, new: str, where: tuple[int, int], message: str
) -> None:
    ((line, column, text),) = _errors(tmp_path, NATIVE.replace(old, new))
    assert (line, column) == where, text
    assert message in text


def test_openslo_timeslices_import_as_the_native_spec(tmp_path: Path) -> None:
    loaded = _load(tmp_path, OPENSLO)
    assert not [e for e in loaded.errors if e.severity == "error"], loaded.errors
    (slo,) = loaded.slos
    assert slo.objective_percent == Decimal("99.9")
    assert slo.period == Duration.parse("28d")
    assert slo.timeslices is not None
    assert (slo.timeslices.slice, slo.timeslices.slice_target) == (
        Duration.parse("1m"),
        Decimal("99"),
    )


def test_openslo_bare_minutes_are_a_slice(tmp_path: Path) -> None:
    (slo,) = _load(tmp_path, OPENSLO.replace("timeSliceWindow: 1m", "timeSliceWindow: 5")).slos
    assert slo.timeslices is not None and slo.timeslices.slice == Duration.parse("5m")


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "timeSliceWindow: 1m",
            "timeSliceWindow: 1h",
            (30, 24),
            "timeSliceWindow '1h' is not a supported slice — slices are 1m or 5m",
        ),
        (
            "timeSliceWindow: 1m",
            "timeSliceWindow: 10m",
            (30, 24),
            "slice 10m is not supported — use 1m or 5m",
        ),
        (
            "timeSliceTarget: 0.99",
            "timeSliceTarget: 1",
            (29, 24),
            "timeSliceTarget 1 is out of range",
        ),
        (
            "      timeSliceWindow: 1m\n",
            "",
            (28, 7),
            "missing required key 'timeSliceWindow'",
        ),
        (
            "budgetingMethod: Timeslices",
            "budgetingMethod: Occurrences",
            (29, 7),
            "objective.timeSliceTarget is not supported",
        ),
    ],
)
def test_openslo_errors_are_located(
    tmp_path: Path, old: str, new: str, where: tuple[int, int], message: str
) -> None:
    assert old in OPENSLO
    errors = [e for e in _errors(tmp_path, OPENSLO.replace(old, new, 1))]
    assert errors, "expected an error"
    line, column, text = errors[0]
    assert (line, column) == where, errors
    assert message in text, errors


def test_slice_verdicts_and_missing_data() -> None:
    # bad, total per slice: over target, exactly at target, no events, no data, no bad series
    bad = np.array([[2.0, 1.0, 0.0, np.nan, np.nan]])
    total = np.array([[100.0, 100.0, 0.0, np.nan, 50.0]])
    bad_slice, judged, present = judge_slices(bad, total, 0.99)
    assert bad_slice.tolist() == [[True, False, False, False, False]]
    assert judged.tolist() == [[True, True, False, False, True]]
    assert present.tolist() == [[True, True, True, False, True]]


def test_five_minute_slices_counted_once_at_one_minute_steps() -> None:
    # Slices end at 300, 600, 900; 1m steps end at 360 … 900. Each slice lands in the one
    # step holding its end; steps without a slice end follow the latest slice's data.
    slice_ends = np.array([300, 600, 900])
    verdicts = (
        np.array([[True, False, False]]),  # bad
        np.array([[True, False, False]]),  # judged: the 600 slice had no events
        np.array([[True, True, False]]),  # present: the 900 slice has no data
    )
    steps = np.arange(360, 901, 60)
    bad, judged = slices_per_step(slice_ends, verdicts, steps, 60, 300)
    # steps 360..540 follow slice 300 (present), 600 holds slice 600 (present, 0 of 0),
    # 660..840 follow slice 600 (present), 900 holds slice 900 (no data).
    assert np.isnan(bad[0, -1]) and np.isnan(judged[0, -1])
    assert np.nansum(bad) == 0 and np.nansum(judged) == 0
    assert not np.isnan(bad[0, :-1]).any()
    # A 15m step holds all three: 1 bad of 1 judged.
    bad_h, judged_h = slices_per_step(slice_ends, verdicts, np.array([900]), 900, 300)
    assert (bad_h[0, 0], judged_h[0, 0]) == (1.0, 1.0)
