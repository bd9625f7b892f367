"""One evaluation instant: window event counts for S SLOs → `SLOEvaluation` per SLO.

The numbers are computed for all SLOs at once (budget.py, alerts.py); only the final
packaging into result objects loops over SLOs. `engine.evaluation.series` runs the same functions
at every step for backtest, and `status_codes` is shared, so the two cannot disagree.

Status precedence, first match wins:
    error     a query for this SLO failed (nothing else is reported for it)
    no_data   none of the SLO's windows has data
    page      a page rule fires and the low-traffic guard does not hold it
    exhausted the error budget over the period is spent (remaining ≤ 0)
    ticket    a ticket rule fires and is not held
    ok
Held alerts are listed (with `held="low_traffic"` and the reason) but set no status.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from engine.evaluation.budget import (
    EXHAUSTION_WINDOW,
    burn_rate,
    error_budget_remaining,
    error_ratio,
    time_to_exhaustion,
)
from engine.evaluation.cache import WindowEvents
from engine.evaluation.calendar import burn_length
from engine.evaluation.coverage import window_coverage
from engine.evaluation.decisions import (
    AlertDecision,
    RuleMatrix,
    decide_alerts,
    evaluation_windows,
    held_reason,
    rule_matrix,
)
from engine.evaluation.policy import AlertPolicy, BurnRateRule, policy_for
from engine.evaluation.result import AlertSignal, SLOEvaluation, Status, WindowValue
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Status codes for arrays (backtest stores an int8 per SLO and step): STATUSES[code].
STATUSES: tuple[Status, ...] = ("ok", "ticket", "exhausted", "page", "no_data", "error")
STATUS_CODE: dict[Status, int] = {s: i for i, s in enumerate(STATUSES)}


def status_codes(
    error: np.ndarray,
    has_data: np.ndarray,
    page_firing: np.ndarray,
    exhausted: np.ndarray,
    ticket_firing: np.ndarray,
) -> np.ndarray:
    """Status code per SLO (and step), by the precedence in the module docstring."""
    conditions = [error, ~np.asarray(has_data, dtype=bool), page_firing, exhausted, ticket_firing]
    shape = np.broadcast_shapes(*(np.shape(c) for c in conditions))
    return np.select(
        [np.broadcast_to(c, shape) for c in conditions],
        [STATUS_CODE[s] for s in ("error", "no_data", "page", "exhausted", "ticket")],
        default=STATUS_CODE["ok"],
    ).astype(np.int8)


def policy_window_mask(policies: Sequence[AlertPolicy], windows: Sequence[Duration]) -> np.ndarray:
    """bool[S, W]: which shared windows belong to each policy (its windows + period)."""
    members = np.zeros((len(policies), len(windows)), dtype=bool)
    where = {w: i for i, w in enumerate(windows)}
    for s, policy in enumerate(policies):
        for w in policy.windows:
            members[s, where[w]] = True
    return members


@dataclass(frozen=True)
class EvaluationPlan:
    """What does not change between cycles for a set of SLOs: build once, reuse every cycle
    (calling `policy_for` for 10,000 SLOs every cycle would cost more than the arithmetic)."""

    slo_ids: tuple[str, ...]
    windows: tuple[Duration, ...]
    matrix: RuleMatrix
    members: np.ndarray  # bool[S, W]
    error_budget: np.ndarray  # float64[S]
    period_seconds: np.ndarray  # float64[S]
    exhaustion_index: int  # position of EXHAUSTION_WINDOW in `windows`
    # Per SLO, (position, window) of its own windows: the keys of SLOEvaluation.windows.
    member_windows: tuple[tuple[tuple[int, Duration], ...], ...]


def plan_evaluation(
    slos: Sequence[SLO], windows: Sequence[Duration] | None = None
) -> EvaluationPlan:
    policies = [policy_for(s) for s in slos]
    windows = tuple(windows) if windows is not None else evaluation_windows(policies)
    members = policy_window_mask(policies, windows)
    if EXHAUSTION_WINDOW not in windows:
        raise ValueError(f"the window list must include {EXHAUSTION_WINDOW} (time to exhaustion)")
    return EvaluationPlan(
        slo_ids=tuple(s.id for s in slos),
        windows=windows,
        matrix=rule_matrix(policies, windows),
        members=members,
        error_budget=np.array([float(s.error_budget) for s in slos]),
        period_seconds=np.array([burn_length(s).seconds for s in slos]),
        exhaustion_index=windows.index(EXHAUSTION_WINDOW),
        member_windows=tuple(
            tuple((i, windows[i]) for i in np.flatnonzero(row).tolist()) for row in members
        ),
    )


def evaluate_window_events(
    slos: Sequence[SLO], events: WindowEvents, plan: EvaluationPlan | None = None
) -> list[SLOEvaluation]:
    """Evaluate every SLO from the window sums in `events` (rows are matched by SLO id).

    Pass the `plan` from `plan_evaluation(slos, events.windows)` to skip rebuilding it; a plan
    for other SLOs or windows is rebuilt.
    """
    if not slos:
        return []
    index = {slo_id: i for i, slo_id in enumerate(events.slo_ids)}
    missing = [s.id for s in slos if s.id not in index]
    if missing:
        raise ValueError(f"no window events for {', '.join(missing)}")
    if plan is None or plan.windows != events.windows or plan.slo_ids != tuple(s.id for s in slos):
        plan = plan_evaluation(slos, events.windows)
    bad, total, failed = _window_sums(slos, events, plan, index)
    coverage = _window_coverage(slos, events, plan, index, total)
    matrix, members = plan.matrix, plan.members

    ratio = error_ratio(bad, total)
    burn = burn_rate(ratio, plan.error_budget[:, None])
    recent = recent_values(events, slos, index, failed, plan.error_budget)
    all_rows = np.arange(len(slos))
    period = matrix.period_index
    remaining = error_budget_remaining(
        bad[all_rows, period], total[all_rows, period], plan.error_budget
    )
    to_exhaustion = time_to_exhaustion(
        remaining, burn[:, plan.exhaustion_index], plan.period_seconds
    )

    decision = decide_alerts(matrix, bad, total)
    firing = decision.firing & matrix.active
    has_data = np.any(~np.isnan(total) & members, axis=1)
    codes = status_codes(
        failed,
        has_data,
        np.any(firing & matrix.page, axis=1),
        remaining <= 0.0,
        np.any(firing & ~matrix.page, axis=1),
    )

    # Packaging into objects is the only per-SLO loop; plain lists make it cheap.
    with _gc_paused():
        bad_l, total_l, ratio_l, burn_l, coverage_l = (
            _none_for_nan(a) for a in (bad, total, ratio, burn, coverage)
        )
        remaining_l, exhaustion_l = _none_for_nan(remaining), _none_for_nan(to_exhaustion)
        alerts_by_slo = _alert_signals(matrix, decision)
        results = []
        for s, slo in enumerate(slos):
            b, t, r, u, c = bad_l[s], total_l[s], ratio_l[s], burn_l[s], coverage_l[s]
            values = {
                w: WindowValue(b[i], t[i], r[i], u[i], c[i]) for i, w in plan.member_windows[s]
            }
            results.append(
                SLOEvaluation(
                    slo=slo,
                    evaluated_at=events.at,
                    status=STATUSES[codes[s]],
                    windows=values,
                    error_budget_remaining=remaining_l[s],
                    time_to_exhaustion=exhaustion_l[s],
                    alerts=tuple(alerts_by_slo.get(s, ())),
                    error=events.errors.get(slo.id),
                    recent_window=events.recent_window if recent is not None else None,
                    recent=None if recent is None else recent[s],
                )
            )
    return results


def _window_sums(
    slos: Sequence[SLO], events: WindowEvents, plan: EvaluationPlan, index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bad[S, W], total[S, W] in the order of `slos` (copies: the caller's cache is not
    touched), and failed[S]: the SLOs whose query failed."""
    if events.slo_ids == plan.slo_ids:
        bad, total = events.bad.copy(), events.total.copy()
    else:
        rows = np.array([index[s.id] for s in slos], dtype=np.int64)
        bad, total = events.bad[rows], events.total[rows]
    failed = np.array([s.id in events.errors for s in slos], dtype=bool)
    # A failed SLO's cached steps are stale: report nothing rather than a half-true number.
    bad[failed] = np.nan
    total[failed] = np.nan
    return bad, total, failed


def _window_coverage(
    slos: Sequence[SLO],
    events: WindowEvents,
    plan: EvaluationPlan,
    index: dict[str, int],
    total: np.ndarray,
) -> np.ndarray:
    """float64[S, W] coverage of every window (engine.evaluation.coverage), in the order of
    `slos`; all NaN when `events` does not carry covered seconds (a producer that does not
    measure them). NaN wherever `total` is: no data and failed SLOs are not judged."""
    if events.covered_seconds is None:
        return np.full(total.shape, np.nan)
    covered = events.covered_seconds
    if events.slo_ids != plan.slo_ids:
        covered = covered[np.array([index[s.id] for s in slos], dtype=np.int64)]
    return window_coverage(covered, plan.windows, total)


def _alert_signals(matrix: RuleMatrix, decision: AlertDecision) -> dict[int, list[AlertSignal]]:
    """Per SLO row, the signal of each rule that fired (held ones with the guard's reason)."""
    alerts_by_slo: dict[int, list[AlertSignal]] = {}
    for s, r in np.argwhere(decision.fire).tolist():
        rule = matrix.rules[s][r]
        held = bool(decision.held[s, r])
        reason = None
        if held:
            reason = held_reason(
                float(decision.long_bad[s, r]),
                float(decision.long_total[s, r]),
                rule.long_window,
                float(decision.p_value[s, r]),
                matrix.guards[s],
            )
        alerts_by_slo.setdefault(s, []).append(alert_signal(rule, held, reason))
    return alerts_by_slo


def alert_signal(rule: BurnRateRule, held: bool, reason: str | None) -> AlertSignal:
    """The signal of one fired rule (backtest packages its steps with this too)."""
    return AlertSignal(
        severity=rule.severity,
        long_window=rule.long_window,
        short_window=rule.short_window,
        factor=rule.factor,
        held="low_traffic" if held else None,
        held_reason=reason,
    )


def recent_values(
    events: WindowEvents,
    slos: Sequence[SLO],
    index: dict[str, int],
    failed: np.ndarray,
    error_budget: np.ndarray,
) -> list[WindowValue] | None:
    """The recent window's values per SLO (None when `events` carries no recent sums).

    Same arithmetic as the policy windows (`error_ratio`, `burn_rate`, NaN → None); a failed
    SLO reports nothing here either."""
    if events.recent_window is None or events.recent_bad is None or events.recent_total is None:
        return None
    rows = np.array([index[s.id] for s in slos], dtype=np.int64)
    bad = np.asarray(events.recent_bad, dtype=np.float64)[rows]
    total = np.asarray(events.recent_total, dtype=np.float64)[rows]
    bad[failed] = np.nan
    total[failed] = np.nan
    return window_values(bad, total, error_budget)


def window_values(
    bad: np.ndarray, total: np.ndarray, error_budget: np.ndarray
) -> list[WindowValue]:
    """One WindowValue per row of 1-D `bad`/`total` sums (the backtest packs the same way)."""
    ratio = error_ratio(bad, total)
    burn = burn_rate(ratio, error_budget)
    return [
        WindowValue(*values)
        for values in zip(*(_none_for_nan(a) for a in (bad, total, ratio, burn)), strict=True)
    ]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building result objects.

    Creating ~100,000 small objects triggers full collections that walk every live object
    (10,000 parsed SLO specs); that tripled the evaluation time at 10,000 SLOs. The objects
    built here hold no reference cycles, so nothing is lost by collecting afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _none_for_nan(values: np.ndarray) -> list:
    """Nested lists of Python floats with None for NaN (None = no data in results)."""
    boxed = values.astype(object)
    boxed[np.isnan(values)] = None
    return boxed.tolist()
