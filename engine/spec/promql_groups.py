"""PromQL rewriting for grouped SLOs: one query written for every group, read three ways.

An SLO with `group_by: [route]` is written once, e.g.
`sum by (route) (rate(http_requests_total{code=~"5.."}[{{window}}]))` or plainly with
`sum(...)`, and used

- per instance (`with_group_matchers`): `route="checkout"` is added to every vector
  selector and the `by (route)` clauses go, so each instance's query is an ordinary
  ungrouped query over its own series — the daemon's query planner then batches the
  instances of one atom back into a single `sum by (route)` request by itself;
- in the generated rules (`with_grouping`): every aggregation on the way to the result
  keeps the group labels, so one recording rule records one series per group;
- in validation (`aggregation_groupings`): the outermost aggregations say which labels
  the result carries; a `by (...)` other than the SLO's `group_by` would be collapsed
  silently, so the loader rejects it.

The rewrites work on tokens and a small parse of the expression, never on regular
expressions over the whole text: strings, durations and subqueries (`[5m]`, `[1h:30s]`),
`offset`, `@`, comments and the label lists after by/without/on/ignoring/group_left/
group_right are all recognised for what they are, so a `{` inside a string or a metric
called `by_route` is left alone. Edits are spliced into the original text, keeping the
SRE's spacing and comments everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

from engine.spec.group_labels import escape_label_value
from engine.spec.promql_parse import (
    Aggregation,
    Clause,
    PromQLSyntaxError,
    Selector,
    parse,
)

# --- what validation needs ----------------------------------------------------------------


class Grouping(NamedTuple):
    """How one outermost aggregation groups: kind, labels and where its clause is.

    An aggregation written without a clause is `by ()`, labels empty (one series). `line`
    and `column` are 0-based offsets inside the query text, at the `by`/`without` keyword
    (the aggregation's name when there is no clause).
    """

    kind: Literal["by", "without"]
    labels: tuple[str, ...]
    line: int
    column: int


def _line_column(query: str, offset: int) -> tuple[int, int]:
    line = query.count("\n", 0, offset)
    return line, offset - (query.rfind("\n", 0, offset) + 1)


def aggregation_groupings(query: str) -> list[Grouping]:
    """The groupings of the aggregations whose output is the query's result: those not
    inside another aggregation (which regroups them) nor inside a parameter or scalar().

    A query with no aggregation at all returns []: its result keeps every label of its
    series (the rules and the daemon sum them). Raises PromQLSyntaxError.
    """
    found = []
    for agg in sorted(parse(query).aggregations, key=lambda a: a.name.start):
        if agg.nested or agg.scalar:
            continue
        where = agg.clause.keyword.start if agg.clause else agg.name.start
        line, column = _line_column(query, where)
        if agg.clause is None:
            found.append(Grouping("by", (), line, column))
        else:
            kind: Literal["by", "without"] = "without" if agg.clause.kind == "without" else "by"
            found.append(Grouping(kind, agg.clause.labels.labels, line, column))
    return found


# --- rewriting ----------------------------------------------------------------------------

Edit = tuple[int, int, str]  # replace query[start:end] with text


def _apply(query: str, edits: Iterable[Edit]) -> str:
    out = query
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out = out[:start] + text + out[end:]
    return out


def matchers_text(group: Mapping[str, str]) -> str:
    """`a="1",b="2"`: equality matchers for a group, labels sorted."""
    return ",".join(f'{name}="{escape_label_value(group[name])}"' for name in sorted(group))


def _selector_edit(selector: Selector, group: Mapping[str, str]) -> Edit | None:
    present = {(label, op, value) for label, op, value in selector.matchers}
    wanted = {n: v for n, v in group.items() if (n, "=", escape_label_value(v)) not in present}
    if not wanted:
        return None
    text = matchers_text(wanted)
    if selector.braces is None:
        assert selector.name is not None
        return (selector.name.end, selector.name.end, "{" + text + "}")
    if not selector.matchers:
        open_, close = selector.braces
        return (open_ + 1, close, text)
    separator = "" if selector.trailing_comma else ","
    return (selector.inner_end, selector.inner_end, separator + text)


def _clause_removal(agg: Aggregation) -> Edit:
    assert agg.clause is not None
    if agg.clause_first:
        return (agg.name.end, agg.args_start, "")
    return (agg.args_end, agg.clause.labels.end, "")


def with_group_matchers(query: str, group: Mapping[str, str]) -> str:
    """The query of one group: `label="value"` on every vector selector (also inside
    subqueries and function arguments), and every `by (...)` naming exactly the group's
    labels dropped — within one group it changes nothing but the result's labels, and a
    plain `sum(...)` is what the query planner batches into one `sum by` request.

    An identical matcher already written is not repeated; other matchers on a group label
    (`route=~"a|b"`) stay and are ANDed. Raises PromQLSyntaxError.
    """
    if not group:
        return query
    parsed = parse(query)
    edits = [e for s in parsed.selectors if (e := _selector_edit(s, group)) is not None]
    names = set(group)
    edits += [
        _clause_removal(agg)
        for agg in parsed.aggregations
        if agg.clause is not None
        and agg.clause.kind == "by"
        and set(agg.clause.labels.labels) == names
    ]
    return _apply(query, edits)


def _list_text(labels: Sequence[str]) -> str:
    return "(" + ", ".join(labels) + ")"


def _regrouped(clause: Clause, labels: Sequence[str]) -> Edit | None:
    """Keep `labels` through a by/on (add the missing ones) or without/ignoring (take
    them out of the list)."""
    written = clause.labels.labels
    if clause.kind in ("by", "on"):
        missing = [label for label in labels if label not in written]
        new = [*written, *missing] if missing else None
    else:
        kept = [label for label in written if label not in labels]
        new = kept if len(kept) != len(written) else None
    if new is None:
        return None
    return (clause.labels.start, clause.labels.end, _list_text(new))


def with_grouping(query: str, labels: Sequence[str]) -> str:
    """The query grouped by `labels`, for recording rules: every aggregation on the way to
    the result (at any depth, not inside a parameter or scalar()) keeps the labels —
    `sum(x)` becomes `sum by (route) (x)`, `by (le)` becomes `by (le, route)`, a `without`
    list loses them — and so do `on (...)`/`ignoring (...)` of binary operators, so both
    sides still match group by group. `by (labels)` already written is left as it is.

    A query without any aggregation is returned unchanged: the caller sums it by the
    labels. Raises PromQLSyntaxError.
    """
    if not labels:
        return query
    parsed = parse(query)
    edits: list[Edit] = []
    for agg in parsed.aggregations:
        if agg.scalar:
            continue
        if agg.clause is None:
            edits.append((agg.name.end, agg.args_start, f" by {_list_text(labels)} "))
        elif (edit := _regrouped(agg.clause, labels)) is not None:
            edits.append(edit)
    for matching in parsed.matchings:
        if not matching.scalar and (edit := _regrouped(matching.clause, labels)) is not None:
            edits.append(edit)
    return _apply(query, edits)


def outer_sum_labels(query: str) -> tuple[str, ...] | None:
    """The `by` labels when the whole query is one `sum by (...) (...)` (or `sum(...)`,
    labels empty); None for anything else or a query this module cannot read."""
    try:
        parsed = parse(query)
    except PromQLSyntaxError:
        return None
    text = query.strip()
    start = len(query) - len(query.lstrip())
    for agg in parsed.aggregations:
        if agg.name.start != start or agg.name.text.lower() != "sum":
            continue
        end = max(agg.args_end, agg.clause.labels.end if agg.clause else 0)
        if end == start + len(text) and (agg.clause is None or agg.clause.kind == "by"):
            return agg.clause.labels.labels if agg.clause else ()
    return None
