"""OpenSLO v1 composite SLOs import: objectives with their own indicator (inline or
`indicatorRef`) and `compositeWeight` become component SLOs plus the composite; what v1
does not define for us is refused where it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.spec.loader import load_specs

COMPOSITE = """apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout
spec:
  service: shop
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Cart API
      target: 0.995
      compositeWeight: 2
      indicator:
        metadata:
          name: cart-errors
        spec:
          ratioMetric:
            counter: true
            bad:
              metricSource:
                type: Prometheus
                spec:
                  query: http_requests_total{job="cart",code="500"}
            total:
              metricSource:
                type: Prometheus
                spec:
                  query: http_requests_total{job="cart"}
    - displayName: Payments
      targetPercent: 99.9
      indicatorRef: pay-errors
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: pay-errors
spec:
  ratioMetric:
    counter: true
    good:
      metricSource:
        type: Prometheus
        spec:
          query: http_requests_total{job="pay",code="200"}
    total:
      metricSource:
        type: Prometheus
        spec:
          query: http_requests_total{job="pay"}
"""


def _load(tmp_path: Path, text: str):
    (tmp_path / "checkout.yaml").write_text(text)
    return load_specs([tmp_path])


def test_a_v1_composite_imports_as_components_and_the_composite(tmp_path: Path) -> None:
    result = _load(tmp_path, COMPOSITE)
    assert result.errors == []
    by_id = {s.id: s for s in result.slos}
    assert list(by_id) == ["shop/checkout-cart-api", "shop/checkout-payments", "shop/checkout"]
    cart, pay, journey = by_id.values()
    assert cart.sli.events is not None
    assert (
        cart.sli.events.bad == 'sum(rate(http_requests_total{job="cart",code="500"}[{{window}}]))'
    )
    assert pay.sli.events is not None and pay.sli.events.good is not None
    assert (float(cart.objective_percent), float(pay.objective_percent)) == (99.5, 99.9)
    assert journey.sli.composite is not None
    assert [(o.slo, float(o.weight)) for o in journey.sli.composite.objectives] == [
        ("shop/checkout-cart-api", 2.0),
        ("shop/checkout-payments", 1.0),
    ]
    # The strictest target, the document's window.
    assert float(journey.objective_percent) == 99.9
    assert {str(s.period) for s in result.slos} == {"28d"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "      compositeWeight: 2\n",
            "      compositeWeight: 0\n",
            ":14:24: compositeWeight 0 must be",
        ),
        (
            "budgetingMethod: Occurrences",
            "budgetingMethod: Timeslices",
            ":10:20: a composite SLO with budgetingMethod 'Timeslices' is not supported",
        ),
        (
            "      indicatorRef: pay-errors\n",
            "      indicatorRef: nope\n",
            ":33:21: indicatorRef 'nope' names no OpenSLO SLI",
        ),
        (
            "      indicatorRef: pay-errors\n",
            "",
            ":31:7: every objective of a composite SLO needs indicator or indicatorRef",
        ),
        ("      target: 0.995\n", "      target: 1.5\n", ":13:15: target 1.5 is out of range"),
    ],
)
def test_invalid_composites_are_refused_where_written(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in COMPOSITE
    result = _load(tmp_path, COMPOSITE.replace(old, new))
    assert any(expected in str(e) for e in result.errors), [str(e) for e in result.errors]
    assert not {s.id for s in result.slos} & {"shop/checkout", "shop/checkout-cart-api"}
