"""Derived atoms: a bad selector that is its total plus one matcher is read from the total's
rows (`sum by (<label>)`), never asked on its own — planning, and reading a response."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.source.derived_atoms import Derived, derivations
from engine.source.outcome import FetchOutcome
from engine.source.query_plan import SLO_LABEL, Selector, plan_queries
from engine.source.response_rates import store_response
from engine.spec.durations import Duration


def _selectors(*texts: str) -> dict[int, Selector]:
    plan = plan_queries([(t, t) for t in texts])
    return plan.selectors


def _events(service: str, bad_matcher: str) -> tuple[str, str]:
    total = f'sum(rate(http_requests_total{{service="{service}"}}[5m]))'
    bad = f'sum(rate(http_requests_total{{service="{service}",{bad_matcher}}}[5m]))'
    return bad, total


@pytest.mark.parametrize("matcher", ['code="500"', 'code=~"5.."', 'code!="200"', 'code!~"2..|3.."'])
def test_a_bad_selector_with_one_more_matcher_is_derived(matcher: str) -> None:
    plan = plan_queries([_events("api", matcher)], derive=True)
    assert len(plan.parts) == 1
    part = plan.parts[0]
    assert part.expr == 'sum by (code) (rate(http_requests_total{service="api"}[5m]))'
    assert part.split_label == "code"
    derived = part.derived[0]
    assert f'{derived.label}{derived.op}"{derived.value}"' == matcher
    assert part.answers == (*part.atoms, part.derived[0].atom)
    assert set(plan.selectors[derived.atom].matchers) == {
        ("service", "=", "api"),
        (derived.label, derived.op, derived.value),
    }


def test_without_derive_every_atom_is_asked() -> None:
    plan = plan_queries([_events("api", 'code="500"')])
    assert len(plan.parts) == 2
    assert all(not p.derived and p.split_label is None for p in plan.parts)


def test_grouped_parents_keep_their_group_and_add_the_split_label() -> None:
    pairs = [_events(f"svc-{i}", 'code="500"') for i in range(3)]
    plan = plan_queries(pairs, derive=True)
    assert len(plan.parts) == 1
    part = plan.parts[0]
    assert part.expr.startswith("sum by (service, code) (rate(http_requests_total{service=~")
    assert part.group_label == "service" and part.values == ("svc-0", "svc-1", "svc-2")
    assert [(d.group, d.value) for d in part.derived] == [
        ("svc-0", "500"),
        ("svc-1", "500"),
        ("svc-2", "500"),
    ]


def test_parents_split_by_different_labels_are_asked_apart() -> None:
    pairs = [_events("a", 'code="500"'), _events("b", 'code="500"'), _events("c", 'status="x"')]
    plan = plan_queries(pairs, derive=True)
    splits = sorted((p.split_label or "", len(p.atoms)) for p in plan.parts)
    assert splits == [("code", 2), ("status", 1)]


@pytest.mark.parametrize(
    "bad",
    [
        # not a superset of the total's matchers
        'sum(rate(http_requests_total{service="other",code="500"}[5m]))',
        # two matchers more
        'sum(rate(http_requests_total{service="api",code="500",method="GET"}[5m]))',
        # a pattern Python and RE2 might read differently
        'sum(rate(http_requests_total{service="api",code=~"5\\\\d\\\\d"}[5m]))',
        # another range, another function
        'sum(rate(http_requests_total{service="api",code="500"}[1m]))',
        'sum(increase(http_requests_total{service="api",code="500"}[5m]))',
    ],
)
def test_what_is_not_derived(bad: str) -> None:
    total = 'sum(rate(http_requests_total{service="api"}[5m]))'
    plan = plan_queries([(bad, total)], derive=True)
    assert not any(p.derived for p in plan.parts)
    assert sorted(a for p in plan.parts for a in p.answers) == [0, 1]


def test_a_parent_is_never_itself_derived() -> None:
    texts = [
        'sum(rate(m{a="1"}[5m]))',
        'sum(rate(m{a="1",b="2"}[5m]))',
        'sum(rate(m{a="1",b="2",c="3"}[5m]))',
    ]
    found = derivations(_selectors(*texts))
    # b derives from a; c could derive from b only, which is derived itself: asked alone.
    assert found == {1: (0, ("b", "=", "2"))}


@pytest.mark.parametrize(
    ("op", "value", "found", "expected"),
    [
        ("=", "500", "500", True),
        ("=", "500", "", False),
        ("!=", "200", "", True),  # a series without the label matches `!=` in PromQL
        ("=~", "5..", "503", True),
        ("=~", "5..", "5030", False),  # anchored, as Prometheus anchors regexes
        ("=~", "5..|429", "429", True),
        ("!~", "2..", "", True),
        ("!~", "2..", "204", False),
    ],
)
def test_matching_follows_prometheus(op: str, value: str, found: str, expected: bool) -> None:
    assert Derived("", "code", op, value, 0).matches(found) is expected


def _series(tag: str, value: float, **labels: str) -> dict:
    return {"metric": {SLO_LABEL: tag, **labels}, "value": [1000.0, str(value)]}


def test_a_response_fills_the_parent_with_the_sum_and_the_child_with_its_rows() -> None:
    pairs = [_events("a", 'code=~"5.."'), _events("b", 'code=~"5.."')]
    plan = plan_queries(pairs, derive=True)
    part = plan.parts[0]
    rates = np.full((len(plan.atoms), 1), np.nan)
    result = [
        _series("p0", 10.0, service="a", code="200"),
        _series("p0", 1.5, service="a", code="500"),
        _series("p0", 0.5, service="a", code="503"),
        _series("p0", 7.0, service="b", code="200"),  # b: no errors at all
    ]
    store_response(result, [part], np.array([1000.0]), 0, 1, None, rates)
    parent = {v: a for v, a in zip(part.values, part.atoms, strict=True)}
    child = {d.group: d.atom for d in part.derived}
    assert rates[parent["a"], 0] == 12.0 and rates[child["a"], 0] == 2.0
    assert rates[parent["b"], 0] == 7.0
    assert math.isnan(rates[child["b"], 0])  # no matching row: no data, as PromQL says


def test_a_range_response_adds_point_by_point() -> None:
    plan = plan_queries([_events("a", 'code="500"')], derive=True)
    part = plan.parts[0]
    times = np.array([0.0, 60.0, 120.0])
    rates = np.full((len(plan.atoms), 3), np.nan)
    result = [
        {"metric": {SLO_LABEL: "p0", "code": "200"}, "values": [[0, "1"], [60, "2"]]},
        {"metric": {SLO_LABEL: "p0", "code": "500"}, "values": [[60, "0.5"], [120, "1"]]},
    ]
    store_response(result, [part], times, 0, 3, Duration.parse("1m"), rates)
    parent, child = part.atoms[0], part.derived[0].atom
    np.testing.assert_array_equal(rates[parent], [1.0, 2.5, 1.0])
    np.testing.assert_array_equal(rates[child], [np.nan, 0.5, 1.0])


def test_a_failed_part_fails_its_derived_atoms_too() -> None:
    plan = plan_queries([_events("a", 'code="500"')], derive=True)
    outcome = FetchOutcome()
    outcome.fail(list(plan.parts), "down")
    assert set(outcome.errors) == {0, 1}


def test_moving_a_part_moves_its_derived_atoms() -> None:
    plan = plan_queries([_events("a", 'code="500"')], derive=True)
    moved = plan.parts[0].moved("x", 10)
    assert moved.expr == "x" and moved.answers == tuple(a + 10 for a in plan.parts[0].answers)
