"""Alerts each variant of each SLO would have fired over the replayed range, in one pass.

A variant is the SLO with another objective (the ladder) or another alerting override (the
policy alternatives). Its window sums do not depend on the objective or the rules, so the
backtest's evaluation (`engine.evaluation.series.iter_series`, the daemon's window sums over
the time axis) runs once per SLO over the union of every variant's windows, and each variant
is then decided by the daemon's own `decide_alerts` (multiwindow rules and low-traffic guard)
on those sums. What counts as an alert is what the backtest reports (`Evaluated.add`): a
run of steps where some rule of the severity fires and the guard does not hold it.

Only compact results leave this module — per SLO and variant, the number of page and ticket
alerts and the page intervals — so a variant that fires at every step (an objective far
tighter than the service) costs no memory. SLO groups run in forked processes as in
`engine.backtest.evaluated`.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from engine.backtest.evaluated import runs
from engine.backtest.plan import Progress, no_progress
from engine.evaluation.decisions import (
    AlertDecision,
    RuleMatrix,
    decide_alerts,
    evaluation_windows,
    rule_matrix,
)
from engine.evaluation.policy import AlertPolicy, BurnRateRule, policy_for
from engine.evaluation.series import SeriesEvaluation, chunk_size, iter_series
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO, LowTrafficSpec

Interval = tuple[float, float | None]  # start, end (None: still firing at the end)
# Evaluation chunks are this many times smaller than `iter_series` would make them.
_CHUNK_DIVISOR = 4


@dataclass
class VariantAlerts:
    """Per SLO row and variant: alerts fired over the replayed range (−1: no such variant)."""

    pages: np.ndarray  # int64[S, V]
    tickets: np.ndarray  # int64[S, V]
    page_intervals: list[list[list[Interval]]]  # [S][V]


def variant_windows(variants: Sequence[Sequence[SLO | None]]) -> tuple[Duration, ...]:
    return evaluation_windows([policy_for(v) for row in variants for v in row if v is not None])


def _rounds(variants: Sequence[Sequence[SLO | None]]) -> list[list[list[int]]]:
    """Which variant slots of each row are decided together, round by round.

    `decide_alerts` decides every rule of a policy independently, with one low-traffic guard
    per SLO; so the rules of all variants of an SLO that share a guard can be stacked into
    one policy and decided in one call, reading the window sums once. Variants with another
    guard (the stricter-guard alternative) go in a later round."""
    per_row: list[list[list[int]]] = []
    for row in variants:
        groups: dict[object, list[int]] = {}
        for v, variant in enumerate(row):
            if variant is not None:
                groups.setdefault(variant.alerting.low_traffic, []).append(v)
        per_row.append(list(groups.values()))
    n_rounds = max((len(g) for g in per_row), default=0)
    return [[g[i] if i < len(g) else [] for g in per_row] for i in range(n_rounds)]


def _stacked(
    ev: SeriesEvaluation, variants: Sequence[Sequence[SLO | None]], slots: Sequence[list[int]]
) -> tuple[AlertDecision, RuleMatrix, list[list[int]]]:
    """One decision for the rules of `slots[k]` of each row k, side by side; returns which
    variant slot each rule column of each row belongs to."""
    policies, owners = [], []
    for row, (row_variants, wanted) in enumerate(zip(variants, slots, strict=True)):
        chosen = [policy_for(row_variants[v]) for v in wanted]  # type: ignore[arg-type]
        rules: tuple[BurnRateRule, ...] = tuple(r for p in chosen for r in p.rules)
        owners.append([v for v, p in zip(wanted, chosen, strict=True) for _ in p.rules])
        # The variants of a row share their period (only objectives and alerting differ);
        # a row without variants this round decides no rule at all.
        period = chosen[0].period if chosen else ev.windows[-1]
        guard = chosen[0].low_traffic if chosen else LowTrafficSpec()
        policies.append(AlertPolicy(ev.slo_ids[row], Decimal(0), period, rules, guard))
    matrix = rule_matrix(policies, ev.windows)
    return decide_alerts(matrix, ev.bad, ev.total), matrix, owners


def _starts(on: np.ndarray) -> np.ndarray:
    """Alerts per row of a bool[..., T]: the runs of True (rising edges, and one at t=0)."""
    return on[..., 0].astype(np.int64) + np.count_nonzero(on[..., 1:] & ~on[..., :-1], axis=-1)


def _alerts(
    ev: SeriesEvaluation,
    variants: Sequence[Sequence[SLO | None]],
    times: np.ndarray,
    with_intervals: Sequence[bool],
) -> tuple[np.ndarray, np.ndarray, list[list[list[Interval]]]]:
    """The alerts of each variant of the SLOs of one evaluated chunk: a run of steps where
    some rule of the severity fires and the guard does not hold it (`Evaluated.add`)."""
    n_rows, n_var, n_steps = len(variants), len(with_intervals), ev.times.size
    on = np.zeros((n_rows, n_var, 2, n_steps), dtype=bool)  # [..., 0] page, [..., 1] ticket
    for slots in _rounds(variants):
        decision, matrix, owners = _stacked(ev, variants, slots)
        for k, owner in enumerate(owners):
            for r, v in enumerate(owner):
                firing = decision.fire[k, r] & ~decision.held[k, r]
                on[k, v, 0 if matrix.page[k, r] else 1] |= firing
    counts = _starts(on)
    missing = np.array([[x is None for x in row] for row in variants], dtype=bool)
    counts[missing] = -1
    intervals: list[list[list[Interval]]] = [[[] for _ in range(n_var)] for _ in range(n_rows)]
    for k in range(n_rows):
        for v in range(n_var):
            if with_intervals[v] and not missing[k, v]:
                intervals[k][v] = [
                    (float(times[a]), float(times[b]) if b < times.size else None)
                    for a, b in runs(on[k, v, 0])
                ]
    return counts[:, :, 0], counts[:, :, 1], intervals


def _replay_rows(
    slos: Sequence[SLO],
    variants: Sequence[Sequence[SLO | None]],
    with_intervals: Sequence[bool],
    rates: StepRates,
    first: int,
    windows: tuple[Duration, ...],
    lo: int,
    hi: int,
) -> tuple[int, VariantAlerts]:
    sub = StepRates(
        step=rates.step,
        times=rates.times,
        bad=rates.bad[lo:hi],
        total=rates.total[lo:hi],
        errors={s.id: rates.errors[s.id] for s in slos[lo:hi] if s.id in rates.errors},
    )
    times = rates.times[first:]
    parts = []
    # The stacked decisions hold [S, R, T] arrays with R = every variant's rules, several
    # times the evaluation's own [S, W, T]: smaller chunks keep a worker's memory bounded.
    chunk = max(1, chunk_size(len(windows), times.size) // _CHUNK_DIVISOR)
    for rows, ev in iter_series(slos[lo:hi], sub, chunk=chunk, windows=windows, from_step=first):
        part = variants[lo + rows.start : lo + rows.stop]
        parts.append(_alerts(ev, part, times, with_intervals))
    return lo, VariantAlerts(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        [row for p in parts for row in p[2]],
    )


# Set just before forking: workers read the history from the parent's memory.
_SHARED: tuple | None = None
_GROUPS_PER_WORKER = 4


def _replay_group(bounds: tuple[int, int]) -> tuple[int, VariantAlerts]:
    assert _SHARED is not None
    return _replay_rows(*_SHARED, *bounds)


def replay_variants(
    slos: Sequence[SLO],
    variants: Sequence[Sequence[SLO | None]],
    with_intervals: Sequence[bool],
    rates: StepRates,
    first: int,
    workers: int = 1,
    progress: Progress = no_progress,
) -> VariantAlerts:
    """Alerts of `variants[s][v]` (a version of `slos[s]`, or None) over `rates.times[first:]`.

    Every row of `variants` has one entry per slot of `with_intervals`, which says for which
    slots the page intervals are wanted (the rest are only counted); the window sums are
    those of `slos`."""
    global _SHARED
    slos = list(slos)
    n = len(slos)
    n_var = len(with_intervals)
    out = VariantAlerts(
        np.full((n, n_var), -1, dtype=np.int64),
        np.full((n, n_var), -1, dtype=np.int64),
        [[[] for _ in range(n_var)] for _ in range(n)],
    )
    if n == 0:
        return out
    windows = variant_windows([*variants, [*slos]])
    progress("alerts", 0, n)
    if workers <= 1 or n < 2 * workers or "fork" not in mp.get_all_start_methods():
        _merge(out, _replay_rows(slos, variants, with_intervals, rates, first, windows, 0, n))
        progress("alerts", n, n)
        return out
    edges = np.linspace(0, n, workers * _GROUPS_PER_WORKER + 1).round().astype(int)
    bounds = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    _SHARED = (slos, variants, with_intervals, rates, first, windows)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            done = 0
            for part in pool.imap_unordered(_replay_group, bounds):
                _merge(out, part)
                done += part[1].pages.shape[0]
                progress("alerts", done, n)
    finally:
        _SHARED = None
    return out


def _merge(out: VariantAlerts, part: tuple[int, VariantAlerts]) -> None:
    lo, alerts = part
    hi = lo + alerts.pages.shape[0]
    out.pages[lo:hi] = alerts.pages
    out.tickets[lo:hi] = alerts.tickets
    out.page_intervals[lo:hi] = alerts.page_intervals
