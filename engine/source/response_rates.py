"""A Prometheus query response written into the rates array of a query plan's atoms.

Each series comes back tagged with the part of the batched request it answers
(`query_plan.tagged`): an opaque part's one atom, or a grouped part's atom found by the
value of its group label.
"""

from __future__ import annotations

import math

import numpy as np

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
    for series in result:
        labels = series.get("metric", {})
        tag = labels.get(SLO_LABEL, "")
        if not tag.startswith("p") or not tag[1:].isdigit() or int(tag[1:]) >= len(batch):
            continue
        k = int(tag[1:])
        part = batch[k]
        found = (
            part.atoms[0]
            if part.group_label is None
            else where[k].get(labels.get(part.group_label))
        )
        if found is None:
            continue  # a '.' in a grouped value matched a series nobody asked for
        atom = found
        if step is None and "value" in series:
            rates[atom, i0] = float(series["value"][1])
            continue
        values = series["values"] if "values" in series else [series.get("value", ())]
        points = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        at = np.rint((points[:, 0] - origin) / step_s).astype(np.int64)
        inside = (at >= i0) & (at < i1)
        rates[atom, at[inside]] = points[inside, 1]
