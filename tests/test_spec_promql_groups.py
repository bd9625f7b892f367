"""PromQL rewriting for grouped SLOs: instance queries, grouped rule queries and the
groupings validation reads — on tokens, so strings, ranges, modifiers and comments are
never mistaken for selectors or clauses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine.spec.promql_groups import (
    Grouping,
    PromQLSyntaxError,
    aggregation_groupings,
    matchers_text,
    outer_sum_labels,
    with_group_matchers,
    with_grouping,
)
from engine.spec.promql_parse import tokenize

ROUTE = {"route": "/cart"}

# (query, the query of group ROUTE)
INSTANCE_CASES = [
    # The common forms: `by (route)` goes, the matcher goes on every selector.
    (
        'sum by (route) (rate(http_requests_total{code=~"5.."}[{{window}}]))',
        'sum(rate(http_requests_total{code=~"5..",route="/cart"}[{{window}}]))',
    ),
    ("sum(rate(x[5m])) by (route)", 'sum(rate(x{route="/cart"}[5m]))'),
    ("sum(rate(x[5m]))", 'sum(rate(x{route="/cart"}[5m]))'),
    ("SUM BY (route) (rate(x[5m]))", 'SUM(rate(x{route="/cart"}[5m]))'),
    # Bare selectors, empty braces, a name-less selector, a trailing comma.
    ("rate(x[5m])", 'rate(x{route="/cart"}[5m])'),
    ("rate(x{}[5m])", 'rate(x{route="/cart"}[5m])'),
    ('{__name__="x", job="a"}', '{__name__="x", job="a",route="/cart"}'),
    ('rate(x{job="a",}[5m])', 'rate(x{job="a",route="/cart"}[5m])'),
    ('rate(x{ job = "a" }[5m])', 'rate(x{ job = "a",route="/cart" }[5m])'),
    # Metric names with colons, recording-rule style.
    ("sum(job:requests:rate5m)", 'sum(job:requests:rate5m{route="/cart"})'),
    # Subqueries, offset and @ stay where they are.
    (
        "max_over_time(sum(rate(x[1m]))[1h:30s] offset 5m)",
        'max_over_time(sum(rate(x{route="/cart"}[1m]))[1h:30s] offset 5m)',
    ),
    ("rate(x[5m] @ end())", 'rate(x{route="/cart"}[5m] @ end())'),
    ("rate(x[5m] offset -1h @ 1609746000)", 'rate(x{route="/cart"}[5m] offset -1h @ 1609746000)'),
    ("x offset 5m", 'x{route="/cart"} offset 5m'),
    # Binary operators: both sides, matching clauses untouched.
    (
        "sum by (route) (rate(a[5m])) / on(route) group_left sum by (route) (rate(b[5m]))",
        'sum(rate(a{route="/cart"}[5m])) / on(route) group_left sum(rate(b{route="/cart"}[5m]))',
    ),
    (
        "a and on() b or c unless d",
        'a{route="/cart"} and on() b{route="/cart"} or c{route="/cart"} unless d{route="/cart"}',
    ),
    ("(a > bool 0) * 2", '(a{route="/cart"} > bool 0) * 2'),
    # Other groupings stay: within one group they change nothing that matters.
    (
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
        'histogram_quantile(0.9, sum by (le) (rate(h_bucket{route="/cart"}[5m])))',
    ),
    (
        "sum by (route, method) (rate(x[5m]))",
        'sum by (route, method) (rate(x{route="/cart"}[5m]))',
    ),
    # Strings that look like PromQL are strings.
    (
        'sum(rate(x{path="{by (route)}"}[5m]))',
        'sum(rate(x{path="{by (route)}",route="/cart"}[5m]))',
    ),
    (
        "label_replace(x, 'dst', '$1', 'src', '(.*)')",
        "label_replace(x{route=\"/cart\"}, 'dst', '$1', 'src', '(.*)')",
    ),
    # A metric named like a keyword's neighbour is a metric.
    ("sum(by_route)", 'sum(by_route{route="/cart"})'),
    # Parameters of topk/quantile/count_values, scalar() arguments: selectors get it too.
    ("topk(3, x)", 'topk(3, x{route="/cart"})'),
    ('count_values("v", x)', 'count_values("v", x{route="/cart"})'),
    ("x > scalar(y)", 'x{route="/cart"} > scalar(y{route="/cart"})'),
    # Numbers that look like names.
    ("x / Inf + NaN", 'x{route="/cart"} / Inf + NaN'),
    ("x * 1e3 + 0x1f - .5", 'x{route="/cart"} * 1e3 + 0x1f - .5'),
    # The matcher already written is not repeated; other matchers on the label stay.
    ('rate(x{route="/cart"}[5m])', 'rate(x{route="/cart"}[5m])'),
    ('rate(x{route=~"/c.*"}[5m])', 'rate(x{route=~"/c.*",route="/cart"}[5m])'),
    # Availability expressions.
    (
        "time() - backup_last_success_timestamp_seconds <= bool 900",
        'time() - backup_last_success_timestamp_seconds{route="/cart"} <= bool 900',
    ),
]


@pytest.mark.parametrize(("query", "expected"), INSTANCE_CASES)
def test_with_group_matchers(query: str, expected: str) -> None:
    assert with_group_matchers(query, ROUTE) == expected


def test_with_group_matchers_keeps_comments_and_layout() -> None:
    query = (
        "sum by (route) (  # errors only\n"
        '  rate(http_requests_total{code=~"5..", # server side\n'
        "  }[{{window}}])\n"
        ")"
    )
    assert with_group_matchers(query, ROUTE) == (
        "sum(  # errors only\n"
        '  rate(http_requests_total{code=~"5..",route="/cart" # server side\n'
        "  }[{{window}}])\n"
        ")"
    )


def test_with_group_matchers_escapes_values_and_sorts_labels() -> None:
    group = {"region": 'eu "west"', "route": "a\\b\nc"}
    query = "sum by (route, region) (rate(x[5m]))"
    assert with_group_matchers(query, group) == (
        'sum(rate(x{region="eu \\"west\\"",route="a\\\\b\\nc"}[5m]))'
    )
    assert matchers_text(group) == 'region="eu \\"west\\"",route="a\\\\b\\nc"'


def test_with_group_matchers_without_group_is_the_query() -> None:
    assert with_group_matchers("sum by (route) (x)", {}) == "sum by (route) (x)"


# (query, grouped by route)
GROUPING_CASES = [
    ("sum(rate(x[5m]))", "sum by (route) (rate(x[5m]))"),
    ("sum (rate(x[5m]))", "sum by (route) (rate(x[5m]))"),
    ("sum by (route) (rate(x[5m]))", "sum by (route) (rate(x[5m]))"),
    ("sum(rate(x[5m])) by (route)", "sum(rate(x[5m])) by (route)"),
    ("sum by () (rate(x[5m]))", "sum by (route) (rate(x[5m]))"),
    # Every aggregation on the way to the result, at any depth, keeps the label.
    (
        "sum(rate(a[5m])) / (sum(rate(b[5m])) + count(c))",
        "sum by (route) (rate(a[5m])) / (sum by (route) (rate(b[5m])) + count by (route) (c))",
    ),
    ("sum(max by (instance) (up))", "sum by (route) (max by (instance, route) (up))"),
    ("sum without (instance, route) (x)", "sum without (instance) (x)"),
    ("sum without (instance) (x)", "sum without (instance) (x)"),
    (
        "histogram_quantile(0.9, sum by (le) (rate(h[5m])))",
        "histogram_quantile(0.9, sum by (le, route) (rate(h[5m])))",
    ),
    ("topk(5, x)", "topk by (route) (5, x)"),
    # Vector matching keeps matching group by group.
    (
        "sum(rate(a[5m])) / on() group_left sum(rate(b[5m]))",
        "sum by (route) (rate(a[5m])) / on(route) group_left sum by (route) (rate(b[5m]))",
    ),
    ("a / ignoring(route, code) b", "a / ignoring(code) b"),
    # A scalar stays a scalar: aggregations inside scalar() and parameters are left alone.
    ("sum(x) > scalar(sum(y))", "sum by (route) (x) > scalar(sum(y))"),
    ("topk(scalar(count(y)), x)", "topk by (route) (scalar(count(y)), x)"),
    # No aggregation: unchanged (the caller sums by the labels).
    ("rate(x[5m])", "rate(x[5m])"),
    # Native-histogram latency (engine.spec.sli): both sums, so `*` and `or` match per group.
    (
        "(histogram_fraction(0, 0.3, sum(rate(h[5m]))) >= 0) * histogram_count(sum(rate(h[5m])))"
        " or 0 * histogram_count(sum(rate(h[5m])))",
        "(histogram_fraction(0, 0.3, sum by (route) (rate(h[5m]))) >= 0) * histogram_count(sum by (route) (rate(h[5m])))"
        " or 0 * histogram_count(sum by (route) (rate(h[5m])))",
    ),
    # Availability, as engine.spec.sli writes it.
    (
        '(sum(count_over_time(up{job="db"}[5m])) - sum(sum_over_time(up{job="db"}[5m]))) / 300',
        '(sum by (route) (count_over_time(up{job="db"}[5m])) - sum by (route) (sum_over_time(up{job="db"}[5m]))) / 300',
    ),
]


@pytest.mark.parametrize(("query", "expected"), GROUPING_CASES)
def test_with_grouping(query: str, expected: str) -> None:
    assert with_grouping(query, ["route"]) == expected


def test_with_grouping_several_labels_in_order() -> None:
    assert with_grouping("sum by (region) (x)", ["route", "region"]) == (
        "sum by (region, route) (x)"
    )
    assert with_grouping("sum(x)", ["route", "region"]) == "sum by (route, region) (x)"


def test_with_grouping_without_labels_is_the_query() -> None:
    assert with_grouping("sum(x)", []) == "sum(x)"


def test_aggregation_groupings_are_the_outermost_with_positions() -> None:
    query = "sum(rate(a[5m]))\n  / on() group_left\n  sum by (route) (max without (i) (b))"
    assert aggregation_groupings(query) == [
        Grouping("by", (), 0, 0),
        Grouping("by", ("route",), 2, 6),
    ]
    assert aggregation_groupings("sum(x) without (instance)") == [
        Grouping("without", ("instance",), 0, 7)
    ]
    # Inside another aggregation, a parameter or scalar(): not what the result carries.
    assert aggregation_groupings("topk(scalar(sum by (a) (y)), sum by (b) (x))") == [
        Grouping("by", (), 0, 0)
    ]
    assert aggregation_groupings("rate(x[5m])") == []
    # A clause in a comment or a string is no clause.
    assert aggregation_groupings('sum(x{a="by (b)"}) # by (c)') == [Grouping("by", (), 0, 0)]


def test_outer_sum_labels() -> None:
    assert outer_sum_labels(" sum by (route) (x) ") == ("route",)
    assert outer_sum_labels("sum(x) by (a, b)") == ("a", "b")
    assert outer_sum_labels("sum(x)") == ()
    assert outer_sum_labels("sum(x) / 2") is None
    assert outer_sum_labels("max by (a) (x)") is None
    assert outer_sum_labels("sum without (a) (x)") is None
    assert outer_sum_labels("sum(") is None


def test_tokens_keep_ranges_strings_and_durations_whole() -> None:
    tokens = tokenize('rate(x{a="]["}[1h:30s] offset 1h30m) # ) comment')
    assert [(t.kind, t.text) for t in tokens] == [
        ("ident", "rate"),
        ("punct", "("),
        ("ident", "x"),
        ("punct", "{"),
        ("ident", "a"),
        ("op", "="),
        ("string", '"]["'),
        ("punct", "}"),
        ("range", "[1h:30s]"),
        ("ident", "offset"),
        ("duration", "1h30m"),
        ("punct", ")"),
    ]


@pytest.mark.parametrize(
    "query",
    ["", "sum(", "sum(x))", "x{a=}", "x{a b}", "rate(x[5m)", "a ; b", "sum by route (x)"],
)
def test_unreadable_queries_raise(query: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        with_group_matchers(query, ROUTE)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
def test_every_rewrite_is_valid_promql(tmp_path: Path) -> None:
    import yaml

    rewritten = [with_group_matchers(q, ROUTE) for q, _ in INSTANCE_CASES]
    rewritten += [with_grouping(q, ["route"]) for q, _ in GROUPING_CASES]
    rules = [
        {"record": f"check:{i}", "expr": q.replace("{{window}}", "5m")}
        for i, q in enumerate(rewritten)
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]}))
    proc = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
