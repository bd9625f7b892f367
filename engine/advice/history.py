"""The history `suggest` reads: the last `days` on the step grid, fetched once.

    plan = history_plan(slos, end, days, step)     # the backtest's ReplayPlan
    rates = fetch_history(source, slos, plan)       # engine.backtest.plan: bulk, chunked

The whole history is fetched — periods are judged on all of it — and the alert replays
start after a warm-up of the longest alert window any variant evaluates (3d by default),
so every alert is computed from complete windows. Budgets are judged per period from the
events themselves, so no longer warm-up is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.advice.latency import (
    InstantQueries,
    ThresholdShare,
    bucket_bounds,
    candidate_thresholds,
    is_native,
    threshold_variants,
)
from engine.advice.periods import DAY, Grid, rolling_periods, span_values, step_counts
from engine.advice.policies import policy_variants
from engine.backtest.plan import (
    Progress,
    ReplayPlan,
    fetch_history,
    make_plan,
    minimum_warmup,
    no_progress,
)
from engine.evaluation.source import EventSource, StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO


def history_plan(slos: Sequence[SLO], end: float, days: int, step: Duration) -> ReplayPlan:
    """`days` of history ending at `end` (aligned down to the step grid); the replayed part
    starts after the warm-up. ValueError when the history is not longer than the warm-up."""
    if step.ms <= 0 or step.ms % 1000:
        raise ValueError("step must be a whole number of seconds, e.g. 5m")
    if days <= 0:
        raise ValueError("--days must be at least 1")
    step_s = step.ms // 1000
    aligned_end = math.floor(end / step_s) * step_s
    variants = [v for s in slos for v in policy_variants(s) if v is not None]
    warm = minimum_warmup([*slos, *variants])
    warm = Duration(math.ceil(warm.ms / step.ms) * step.ms)
    start = aligned_end - days * DAY
    if start + warm.seconds >= aligned_end:
        raise ValueError(
            f"--days {days} is not longer than the longest alert window ({warm}): "
            "the alert replays need that much history before their first step"
        )
    return make_plan(slos, start + warm.seconds, aligned_end, step, warm)


def with_instances(slos: Sequence[SLO], instances: Sequence[SLO]) -> list[SLO]:
    """The SLOs to advise on: every spec-level SLO (a grouped one judged over all its groups,
    the one its spec can change), each grouped SLO followed by its instances."""
    out: list[SLO] = []
    for slo in slos:
        out.append(slo)
        if slo.grouped:
            out += [i for i in instances if i.group and i.base_id == slo.base_id]
    return out


def rows_of(rates: StepRates, slos: Sequence[SLO], keep: Sequence[SLO]) -> StepRates:
    """The rows of `rates` (which follow `slos`) for the SLOs `keep`, in that order."""
    where = {s.id: k for k, s in enumerate(slos)}
    index = [where[s.id] for s in keep]
    return StepRates(
        step=rates.step,
        times=rates.times,
        bad=rates.bad[index],
        total=rates.total[index],
        errors={s.id: rates.errors[s.id] for s in keep if s.id in rates.errors},
    )


def first_replayed(rates: StepRates, plan: ReplayPlan) -> int:
    """Index of the replay's first step in `rates.times`."""
    first = int(np.searchsorted(rates.times, plan.start - 1e-6))
    if first >= rates.times.size or abs(rates.times[first] - plan.start) > 1e-6:
        raise ValueError("the fetched history does not contain the replay start on its grid")
    return first


def latency_shares(
    source: EventSource,
    queries: InstantQueries,
    slos: Sequence[SLO],
    plan: ReplayPlan,
    progress: Progress = no_progress,
) -> dict[str, list[ThresholdShare] | str]:
    """Per latency SLO: the share of requests under each candidate threshold, per period and
    over the whole history (or why there is none). One history fetch for all candidates."""
    rows: list[tuple[SLO, SLO]] = []
    out: dict[str, list[ThresholdShare] | str] = {}
    for slo in slos:
        latency = slo.sli.latency
        if latency is None:
            continue
        try:
            bounds = [] if is_native(latency) else bucket_bounds(queries, latency, plan.end)
        except Exception as exc:  # the source's own errors: the bounds are advice, not data
            out[slo.id] = f"could not read the bucket bounds of {latency.histogram}: {exc}"
            continue
        thresholds = candidate_thresholds(slo, bounds)
        if not thresholds:
            out[slo.id] = f"{latency.histogram} had no finite bucket bound in the last day"
        for variant in threshold_variants(slo, thresholds):
            rows.append((slo, variant))
    if not rows:
        return out
    rates = fetch_history(source, [v for _, v in rows], plan, progress)
    grid = Grid(rates.times, plan.step.seconds)
    whole = grid.span("history", grid.start, grid.end)
    for row, (slo, variant) in enumerate(rows):
        latency = variant.sli.latency
        assert latency is not None
        bad, total = step_counts(rates, row)
        periods = span_values(bad, total, rolling_periods(grid, slo.period))
        (overall,) = span_values(bad, total, [whole])
        error = rates.errors.get(variant.id)
        shares = out.setdefault(slo.id, [])
        assert isinstance(shares, list)
        shares.append(ThresholdShare(latency.threshold, periods, overall, error))
    return out
