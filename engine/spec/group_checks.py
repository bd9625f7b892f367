"""Checks of grouping: a query's own `by (...)` / `without (...)` must agree with the SLO's
`group_by`, and a group label must not be one the SLO also sets to a fixed value.

Without `group_by`, the daemon and the rules sum whatever an SLI query returns into one
series. A query written `sum by (route) (...)` would be collapsed silently into one SLO
over every route — a route failing completely reads as a small error ratio overall. So an
aggregation whose result keeps labels other than the SLO's `group_by` is an error, located
at the query, that says how to fix it either way. `without (...)` always is: the labels it
keeps depend on the series, not on the spec.

Ungrouped SLOs of imported formats (Sloth, OpenSLO) are not checked: those formats cannot
declare a grouping, so their files would have no fix; they keep today's behaviour (the
result is summed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from engine.spec.document import NativeUnit
from engine.spec.load_result import LoadResult
from engine.spec.models import ServiceSpec, SLOSpec
from engine.spec.promql_groups import Grouping, PromQLSyntaxError, aggregation_groupings
from engine.spec.reading import NATIVE_API_VERSION

Path = tuple[Any, ...]

# A query without these words has only clause-less aggregations (`by ()`) or none: nothing
# to check for an ungrouped SLO, and most queries of a fleet need no parse at all.
_CLAUSE = re.compile(r"\b(?:by|without)\b")


def _group_by(spec: ServiceSpec, index: int) -> tuple[tuple[str, ...], Path]:
    """The SLO's effective group_by and where it is written."""
    slo = spec.slos[index]
    if slo.group_by is not None:
        return tuple(slo.group_by), ("slos", index, "group_by")
    return tuple(spec.group_by), ("group_by",)


def _queries(slo: SLOSpec, index: int) -> list[tuple[Path, str]]:
    base = ("slos", index, "sli")
    if slo.sli.events is not None:
        return [
            ((*base, "events", key), text)
            for key in ("bad", "good", "total")
            if (text := getattr(slo.sli.events, key)) is not None
        ]
    if slo.sli.availability is not None:
        return [((*base, "availability", "metric"), slo.sli.availability.metric)]
    return []  # a latency selector is matchers only: nothing aggregates


def _fixed_labels(spec: ServiceSpec, slo: SLOSpec) -> dict[str, str]:
    """Labels the rules or alerts set to one value for every group; ours would be lost."""
    alerting = slo.alerting
    return {**spec.labels, **alerting.labels, **alerting.page_labels, **alerting.ticket_labels}


def _label_problems(unit: NativeUnit, spec: ServiceSpec, index: int, result: LoadResult) -> bool:
    labels, where = _group_by(spec, index)
    slo = spec.slos[index]
    fixed = _fixed_labels(spec, slo)
    found = False
    for position, label in enumerate(labels):
        if label in fixed:
            message = (
                f"cannot group by {label!r}: the SLO also sets {label}={fixed[label]!r} as a "
                "fixed label, which would overwrite every group's value"
            )
            hint = f"remove {label} from the SLO's labels, or group by another label"
        elif label == "le" and slo.sli.latency is not None:
            message = "cannot group a latency SLI by 'le': it is the bucket bound, not a group"
            hint = "group by the label that tells the requests apart, e.g. route"
        else:
            continue
        doc, path = unit.origins.resolve((*where, position))
        result.errors.append(doc.error(path, message, hint))
        found = True
    return found


def _list(labels: Sequence[str]) -> str:
    return "[" + ", ".join(labels) + "]"


def _problem(grouping: Grouping, group_by: tuple[str, ...]) -> tuple[str, str] | None:
    written = f"{grouping.kind} ({', '.join(grouping.labels)})"
    if grouping.kind == "without":
        if group_by:
            return (
                f"`{written}` keeps whatever other labels the series have, not the SLO's "
                f"group_by {_list(group_by)}",
                f"aggregate with sum by ({', '.join(group_by)}) (...) or sum(...)",
            )
        return (
            f"`{written}` leaves one series per remaining label set, and the SLO has no "
            "group_by: they would be summed into one SLO silently",
            "aggregate with sum(...) to get one SLO, or with sum by (<labels>) (...) and "
            "add group_by: [<labels>] to the SLO",
        )
    if not grouping.labels or set(grouping.labels) == set(group_by):
        return None
    if not group_by:
        labels = grouping.labels
        per = labels[0] if len(labels) == 1 else f"combination of {', '.join(labels)}"
        return (
            f"`{written}` makes one series per {per}, but the SLO has no group_by: they "
            "would be summed into one SLO silently",
            f"add `group_by: {_list(labels)}` to the SLO, or aggregate with sum(...) to get "
            f"one SLO over all {' and '.join(f'{label}s' for label in labels)}",
        )
    return (
        f"`{written}` does not match the SLO's group_by {_list(group_by)}",
        f"aggregate with sum by ({', '.join(group_by)}) (...) or sum(...), or set "
        f"`group_by: {_list(grouping.labels)}`",
    )


def _query_problem(text: str, group_by: tuple[str, ...]) -> tuple[str, str] | None:
    if not group_by and _CLAUSE.search(text) is None:
        return None
    try:
        groupings = aggregation_groupings(text)
    except PromQLSyntaxError as exc:
        if not group_by:
            return None  # promtool judges the syntax; only grouped SLOs need our parse
        return (
            f"cannot split this query by group: {exc}",
            "write the query as plain PromQL (selectors, functions, aggregations, "
            "operators) so each group's series can be selected",
        )
    for grouping in groupings:
        problem = _problem(grouping, group_by)
        if problem is not None:
            message, hint = problem
            if grouping.line:
                message += f" (line {grouping.line + 1} of the query)"
            return message, hint
    return None


def check_groupings(
    validated: list[tuple[NativeUnit, ServiceSpec]], skip: set[str], result: LoadResult
) -> set[str]:
    """Group labels and query aggregations of every SLO not already in `skip` (ids with
    other query errors); returns the ids of SLOs found wrong."""
    bad_ids: set[str] = set()
    for unit, spec in validated:
        native = unit.doc.data.get("apiVersion") == NATIVE_API_VERSION
        for index, slo in enumerate(spec.slos):
            slo_id = f"{spec.service}/{slo.name}"
            group_by, _ = _group_by(spec, index)
            if slo_id in skip or not (native or group_by):
                continue
            if _label_problems(unit, spec, index, result):
                bad_ids.add(slo_id)
            for loc, text in _queries(slo, index):
                problem = _query_problem(text, group_by)
                if problem is None:
                    continue
                doc, path = unit.origins.resolve(loc)
                result.errors.append(doc.error(path, *problem))
                bad_ids.add(slo_id)
    return bad_ids
