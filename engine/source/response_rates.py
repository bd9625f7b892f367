"""A Prometheus query response written into the rates array of a query plan's atoms.

Each series comes back tagged with the part of the batched request it answers
(`query_plan.tagged`): an opaque part's one atom, or a grouped part's atom found by the
value of its group label.
"""

from __future__ import annotations

import math

import numpy as np

from engine.source.derived_atoms import Derived
from engine.source.query_plan import SLO_LABEL, Part
from engine.spec.durations import Duration


def store_response(
    result: list[dict],
    batch: list[Part],
    times: np.ndarray,
    i0: int,
    i1: int,
    step: Duration | None,
    rates: np.ndarray,
) -> None:
    """One response's series into `rates` (rows: atoms, columns: points of `times`). A
    one-shot run reads ~17,000 series: an instant query's value is stored as is (point i0,
    whatever its timestamp's rounding) and groups looked up by dict, not numpy and index."""
    origin, step_s = times[0], step.seconds if step is not None else math.inf
    where = [dict(zip(p.values, p.atoms, strict=True)) if p.values else {} for p in batch]
    kids = [_derived_by_group(p) for p in batch]
    for series in result:
        labels = series.get("metric", {})
        tag = labels.get(SLO_LABEL, "")
        if not tag.startswith("p") or not tag[1:].isdigit() or int(tag[1:]) >= len(batch):
            continue
        k = int(tag[1:])
        part = batch[k]
        group = labels.get(part.group_label, "") if part.group_label is not None else ""
        found = part.atoms[0] if part.group_label is None else where[k].get(group)
        if found is None:
            continue  # a '.' in a grouped value matched a series nobody asked for
        atom = found
        if part.split_label is not None:
            # One row per split value: the atom is their sum, derived atoms the sum of
            # the rows they match.
            value = labels.get(part.split_label, "")
            targets = [atom, *(d.atom for d in kids[k].get(group, ()) if d.matches(value))]
            if step is None and "value" in series:
                number = float(series["value"][1])
                for target in targets:
                    current = rates[target, i0]
                    rates[target, i0] = number if current != current else current + number
                continue
            _add(rates, targets, series, (i0, i1), origin, step_s)
            continue
        if step is None and "value" in series:
            rates[atom, i0] = float(series["value"][1])
            continue
        at, points = _points(series, origin, step_s, i0, i1)
        rates[atom, at] = points


def _derived_by_group(part: Part) -> dict[str, list[Derived]]:
    found: dict[str, list[Derived]] = {}
    for d in part.derived:
        found.setdefault(d.group, []).append(d)
    return found


def _points(
    series: dict, origin: float, step_s: float, i0: int, i1: int
) -> tuple[np.ndarray, np.ndarray]:
    """A range series' point indexes within [i0, i1) and their values."""
    values = series["values"] if "values" in series else [series.get("value", ())]
    points = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    at = np.rint((points[:, 0] - origin) / step_s).astype(np.int64)
    inside = (at >= i0) & (at < i1)
    return at[inside], points[inside, 1]


def _add(
    rates: np.ndarray,
    targets: list[int],
    series: dict,
    span: tuple[int, int],
    origin: float,
    step_s: float,
) -> None:
    """Add a range series' points within `span` to each target atom's (NaN, no data yet,
    counts as 0)."""
    at, points = _points(series, origin, step_s, *span)
    for atom in targets:
        current = rates[atom, at]
        rates[atom, at] = np.where(np.isnan(current), points, current + points)
