"""The query planner: decomposition into atoms, sharing, grouping and the `or` tree."""

from __future__ import annotations

import numpy as np
import pytest

from engine.source.query_plan import decompose, or_tree, plan_queries
from engine.spec.durations import Duration
from engine.spec.models import SLI
from engine.spec.sli import bad_rate, total_rate

W = Duration.parse("1m")


def _sli(**kind: object) -> SLI:
    return SLI.model_validate(kind)


def test_latency_bad_is_count_minus_bucket() -> None:
    sli = _sli(
        latency={"histogram": "h", "selector": 'job="api"', "threshold": "250ms"},
    )
    combo, selectors = decompose(bad_rate(sli, W)) or ({}, {})
    assert combo == {
        'sum(rate(h_count{job="api"}[1m]))': 1.0,
        'sum(rate(h_bucket{job="api",le="0.25"}[1m]))': -1.0,
    }
    assert {s.metric for s in selectors.values()} == {"h_count", "h_bucket"}


def test_availability_is_samples_over_seconds() -> None:
    sli = _sli(availability={"metric": 'up{job="db"}'})
    window = Duration(59_999)
    bad, _ = decompose(bad_rate(sli, window)) or ({}, {})
    total, _ = decompose(total_rate(sli, window)) or ({}, {})
    count = 'sum(count_over_time(up{job="db"}[59s999ms]))'
    ones = 'sum(sum_over_time(up{job="db"}[59s999ms]))'
    assert total == {count: pytest.approx(1 / 59.999)}
    assert bad == {count: pytest.approx(1 / 59.999), ones: pytest.approx(-1 / 59.999)}


def test_expressions_outside_the_linear_subset_stay_whole() -> None:
    for expr in (
        "sum(rate(a[1m])) / on() group_left rate(b[1m])",
        "rate(a[1m])",  # not aggregated: the source sums it
        "sum by (job) (rate(a[1m]))",
        "sum(rate(a[1m])) / sum(rate(b[1m]))",
        "sum(rate(a{x=~'y'}[1m]))",  # single quotes: not parsed, kept as written
        "(time() - last_success) <= bool 900",
    ):
        assert decompose(expr) is None, expr


def test_matcher_order_and_spacing_do_not_matter_for_sharing() -> None:
    a, _ = decompose('sum( rate( m{ b="2", a="1" }[5m] ) )') or ({}, {})
    b, _ = decompose('sum(rate(m{a="1",b="2"}[5m]))') or ({}, {})
    assert a == b


def test_plan_shares_groups_and_combines() -> None:
    pairs = [
        (
            f'sum(rate(req{{job="{job}",code="500"}}[1m]))',
            f'sum(rate(req{{job="{job}"}}[1m]))',
        )
        for job in ("a", "b", "c")
    ]
    # A second SLO on job a with the same total, and one opaque expression.
    pairs.append(('sum(rate(req{job="a",code=~"5.."}[1m]))', 'sum(rate(req{job="a"}[1m]))'))
    pairs.append(("sum(rate(x[1m])) / on() group_left rate(y[1m])", "sum(rate(y[1m]))"))
    plan = plan_queries(pairs)

    assert len(plan.atoms) == 3 + 3 + 1 + 2  # 3 bad, 3 shared totals, 1 more bad, 2 opaque
    grouped = [p for p in plan.parts if p.group_label is not None]
    assert sorted(p.expr for p in grouped) == [
        'sum by (job) (rate(req{code="500",job=~"a|b|c"}[1m]))',
        'sum by (job) (rate(req{job=~"a|b|c"}[1m]))',
    ]
    assert sum(len(p.atoms) for p in plan.parts) == len(plan.atoms)

    rates = np.arange(len(plan.atoms), dtype=float)[:, None] + np.zeros((1, 2))
    bad = plan.bad.combine(rates, len(pairs))
    total = plan.total.combine(rates, len(pairs))
    # Each atom's "rate" is its index, so the combination is easy to read off.
    assert bad[0, 0] == plan.atoms.index('sum(rate(req{code="500",job="a"}[1m]))')
    assert bad[4, 0] == plan.atoms.index(pairs[4][0])
    # Rows 0 and 3 share their total atom.
    assert total[0, 0] == total[3, 0]


def test_nan_in_an_atom_reaches_every_row_using_it() -> None:
    pairs = [
        ('sum(rate(c{job="a"}[1m])) - sum(rate(g{job="a"}[1m]))', 'sum(rate(c{job="a"}[1m]))'),
        ('sum(rate(c{job="b"}[1m]))', 'sum(rate(c{job="b"}[1m]))'),
    ]
    plan = plan_queries(pairs)
    rates = np.ones((len(plan.atoms), 1))
    rates[plan.atoms.index('sum(rate(g{job="a"}[1m]))')] = np.nan
    bad = plan.bad.combine(rates, 2)
    assert np.isnan(bad[0, 0]) and bad[1, 0] == 1.0
    assert plan.total.combine(rates, 2)[0, 0] == 1.0


def test_group_size_caps_the_alternation() -> None:
    pairs = [
        (f'sum(rate(r{{job="j{i}"}}[1m]))', f'sum(rate(r{{job="j{i}"}}[1m]))') for i in range(5)
    ]
    plan = plan_queries(pairs, group_size=2)
    assert [len(p.atoms) for p in plan.parts] == [2, 2, 1]


def test_or_tree_is_balanced() -> None:
    assert or_tree(["a"]) == "a"
    assert or_tree(["a", "b", "c", "d"]) == "((a) or (b)) or ((c) or (d))"
    depth = or_tree([f"x{i}" for i in range(1024)]).count("(((((((((((")
    assert depth == 0  # log2(1024) = 10 levels, never 11 nested
