"""Composite SLO specs: the model, the cross-file checks (located errors), and the event
wrapper's missing-data and failure rules on hand-made rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.composite import CompositeSource
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.loader import load_specs
from engine.spec.models import SLO

COMPONENTS = """apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{code="500"}[{{window}}]))
        total: sum(rate(http_requests_total[{{window}}]))
  - name: per-route
    objective: 99
    group_by: [route]
    sli:
      events:
        bad: sum by (route) (rate(http_requests_total{code="500"}[{{window}}]))
        total: sum by (route) (rate(http_requests_total[{{window}}]))
"""


def _load(tmp_path: Path, composite: str) -> tuple[list[str], list[str]]:
    (tmp_path / "api.yaml").write_text(COMPONENTS)
    (tmp_path / "shop.yaml").write_text(
        "apiVersion: slo-engine/v1\nservice: shop\nslos:\n" + composite
    )
    result = load_specs([tmp_path])
    return [str(e) for e in result.errors], [s.id for s in result.slos]


def _composite(name: str, objectives: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    objective: 99.5\n{extra}    sli:\n      composite:\n"
        f"        objectives:\n{objectives}"
    )


def test_a_valid_composite_loads_with_its_weights(tmp_path: Path) -> None:
    errors, ids = _load(
        tmp_path,
        _composite("journey", "          - {slo: api/availability, weight: 2.5}\n"),
    )
    assert errors == []
    assert ids == ["api/availability", "api/per-route", "shop/journey"]
    slo = next(s for s in load_specs([tmp_path]).slos if s.id == "shop/journey")
    assert slo.sli.kind == "composite"
    assert slo.sli.composite is not None
    assert [(o.slo, float(o.weight)) for o in slo.sli.composite.objectives] == [
        ("api/availability", 2.5)
    ]


@pytest.mark.parametrize(
    ("objectives", "extra", "expected"),
    [
        (
            "          - {slo: api/availability, weight: 0}\n",
            "",
            "shop.yaml:9:45: weight 0 must be greater than 0",
        ),
        (
            "          - {slo: api/availability, weight: -1}\n",
            "",
            "shop.yaml:9:45: weight -1 must be greater than 0",
        ),
        (
            "          - {slo: api/avialability}\n",
            "",
            "shop.yaml:9:19: composite shop/journey names SLO 'api/avialability', which no "
            "loaded spec defines",
        ),
        (
            "          - {slo: availability}\n",
            "",
            "shop.yaml:9:19: slo: 'availability' is not an SLO id — write <service>/<slo name>",
        ),
        (
            "          - {slo: api/per-route}\n",
            "",
            "shop.yaml:9:19: composite shop/journey names grouped SLO 'api/per-route' "
            "(group_by); composites of grouped SLOs are not supported",
        ),
        (
            "          - {slo: api/availability}\n",
            "    group_by: [route]\n",
            "a composite SLO cannot be grouped (group_by)",
        ),
        (
            "          - {slo: api/availability}\n          - {slo: api/availability}\n",
            "",
            "SLO 'api/availability' is listed twice",
        ),
        ("          - {slo: shop/journey}\n", "", "is part of a cycle of composites"),
    ],
)
def test_invalid_composites_are_refused_where_written(
    tmp_path: Path, objectives: str, extra: str, expected: str
) -> None:
    errors, ids = _load(tmp_path, _composite("journey", objectives, extra))
    assert any(expected in e for e in errors), errors
    assert "shop/journey" not in ids
    assert "api/availability" in ids  # the components are untouched


def test_a_cycle_through_two_composites_names_the_path(tmp_path: Path) -> None:
    errors, ids = _load(
        tmp_path,
        _composite("a", "          - {slo: shop/b}\n")
        + _composite("b", "          - {slo: shop/a}\n          - {slo: api/availability}\n"),
    )
    assert any("shop/a → shop/b → shop/a" in e for e in errors), errors
    assert any("shop/b → shop/a → shop/b" in e for e in errors), errors
    assert not {"shop/a", "shop/b"} & set(ids)


def test_a_composite_of_a_composite_with_errors_is_left_out(tmp_path: Path) -> None:
    errors, ids = _load(
        tmp_path,
        _composite("inner", "          - {slo: api/nope}\n")
        + _composite(
            "outer", "          - {slo: shop/inner}\n          - {slo: api/availability}\n"
        ),
    )
    assert any("composite shop/outer builds on an SLO with errors: shop/inner" in e for e in errors)
    assert not {"shop/inner", "shop/outer"} & set(ids)


class _Rates:
    """A backend answering fixed per-step rates per SLO id; records what it was asked."""

    def __init__(self, rows: dict[str, tuple[list[float], list[float]]], errors=None) -> None:
        self.rows, self.errors, self.asked = rows, errors or {}, []

    def fetch(self, slos, step, start, end) -> StepRates:
        self.asked.append([s.id for s in slos])
        n = len(next(iter(self.rows.values()))[0])
        bad = np.array([self.rows[s.id][0] for s in slos], dtype=float).reshape(len(slos), n)
        total = np.array([self.rows[s.id][1] for s in slos], dtype=float).reshape(len(slos), n)
        times = end - step.seconds * np.arange(n)[::-1]
        errors = {k: v for k, v in self.errors.items() if k in {s.id for s in slos}}
        return StepRates(step=step, times=times, bad=bad, total=total, errors=errors)


@pytest.fixture
def nested(tmp_path: Path) -> list[SLO]:
    (tmp_path / "api.yaml").write_text(COMPONENTS.split("  - name: per-route")[0])
    (tmp_path / "pay.yaml").write_text(
        COMPONENTS.split("  - name: per-route")[0].replace("service: api", "service: pay")
    )
    (tmp_path / "shop.yaml").write_text(
        "apiVersion: slo-engine/v1\nservice: shop\nslos:\n"
        + _composite("inner", "          - {slo: api/availability, weight: 3}\n")
        + _composite(
            "outer", "          - {slo: shop/inner}\n          - {slo: pay/availability}\n"
        )
    )
    loaded = load_specs([tmp_path])
    assert not loaded.errors, loaded.errors
    return loaded.slos


NAN = float("nan")


def test_nested_composites_missing_data_and_unrequested_components(nested) -> None:
    by_id = {s.id: s for s in nested}
    backend = _Rates(
        {
            # Step 2: api has no bad series (0 bad); step 3: pay has no data at all.
            "api/availability": ([1.0, NAN, 2.0], [10.0, 10.0, 10.0]),
            "pay/availability": ([0.5, 0.5, NAN], [5.0, 5.0, NAN]),
        }
    )
    source = CompositeSource(backend, nested)
    step = Duration.parse("1m")
    # Only the outer composite is asked for: its components are fetched, nothing else.
    rates = source.fetch([by_id["shop/outer"]], step, 0.0, 120.0)
    assert backend.asked == [["api/availability", "pay/availability"]]
    # outer = 1·(3·api) + 1·pay
    assert rates.bad[0][:2].tolist() == [3.5, 0.5]
    assert rates.total[0][:2].tolist() == [35.0, 35.0]
    assert np.isnan(rates.bad[0][2]) and np.isnan(rates.total[0][2])
    assert rates.errors == {}


def test_a_failed_component_fails_the_composite_by_name(nested) -> None:
    by_id = {s.id: s for s in nested}
    backend = _Rates(
        {"api/availability": ([1.0], [10.0]), "pay/availability": ([0.0], [5.0])},
        errors={"pay/availability": "bad_data: many-to-many matching"},
    )
    asked = [by_id["shop/inner"], by_id["shop/outer"], by_id["api/availability"]]
    rates = CompositeSource(backend, nested).fetch(asked, Duration.parse("1m"), 0.0, 0.0)
    assert rates.errors == {
        "shop/outer": "component SLO failed — pay/availability: bad_data: many-to-many matching"
    }
    assert rates.total[:, 0].tolist()[:1] == [30.0]  # inner is fine
    assert np.isnan(rates.total[1, 0])
    assert rates.total[2, 0] == 10.0


def test_time_slice_slos_and_composites_do_not_mix(tmp_path: Path) -> None:
    sliced = COMPONENTS.replace(
        "  - name: per-route", "    timeslices: {slice: 1m, slice_target: 99}\n  - name: per-route"
    )
    (tmp_path / "api.yaml").write_text(sliced)
    (tmp_path / "shop.yaml").write_text(
        "apiVersion: slo-engine/v1\nservice: shop\nslos:\n"
        + _composite("journey", "          - {slo: api/availability}\n")
        + _composite(
            "sliced",
            "          - {slo: api/availability}\n",
            "    timeslices: {slice: 1m, slice_target: 99}\n",
        )
    )
    result = load_specs([tmp_path])
    errors = [str(e) for e in result.errors]
    assert any(
        "shop.yaml:9:19: composite shop/journey names time-slice SLO 'api/availability'" in e
        for e in errors
    ), errors
    assert any("a composite SLO cannot count time slices" in e for e in errors), errors
    assert {s.id for s in result.slos} == {"api/availability", "api/per-route"}
