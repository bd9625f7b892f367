"""One evaluation instant: window event counts for S SLOs → `SLOEvaluation` per SLO.

The numbers are computed for all SLOs at once (budget.py, alerts.py); only the final
packaging into result objects loops over SLOs. `engine.burn.series` runs the same functions
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

from collections.abc import Sequence

import numpy as np

from engine.burn.alerts import decide_alerts, held_reason, rule_matrix
from engine.burn.budget import (
    EXHAUSTION_WINDOW,
    burn_rate,
    error_budget_remaining,
    error_ratio,
    time_to_exhaustion,
)
from engine.burn.policy import policy_for
from engine.burn.result import AlertSignal, SLOEvaluation, Status, WindowValue
from engine.source.cache import WindowEvents
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


def policy_window_mask(slos: Sequence[SLO], windows: Sequence) -> np.ndarray:
    """bool[S, W]: which shared windows belong to each SLO's policy (its windows + period)."""
    members = np.zeros((len(slos), len(windows)), dtype=bool)
    where = {w: i for i, w in enumerate(windows)}
    for s, slo in enumerate(slos):
        for w in policy_for(slo).windows:
            members[s, where[w]] = True
    return members


def evaluate_window_events(slos: Sequence[SLO], events: WindowEvents) -> list[SLOEvaluation]:
    """Evaluate every SLO from the window sums in `events` (rows are matched by SLO id)."""
    if not slos:
        return []
    index = {slo_id: i for i, slo_id in enumerate(events.slo_ids)}
    missing = [s.id for s in slos if s.id not in index]
    if missing:
        raise ValueError(f"no window events for {', '.join(missing)}")
    rows = np.array([index[s.id] for s in slos], dtype=np.int64)
    windows = events.windows
    policies = [policy_for(s) for s in slos]
    matrix = rule_matrix(policies, windows)

    failed = np.array([s.id in events.errors for s in slos], dtype=bool)
    bad = events.bad[rows].astype(np.float64)
    total = events.total[rows].astype(np.float64)
    # A failed SLO's cached steps are stale: report nothing rather than a half-true number.
    bad[failed] = np.nan
    total[failed] = np.nan

    budget = np.array([float(s.error_budget) for s in slos])
    ratio = error_ratio(bad, total)
    burn = burn_rate(ratio, budget[:, None])
    period = matrix.period_index
    all_rows = np.arange(len(slos))
    remaining = error_budget_remaining(bad[all_rows, period], total[all_rows, period], budget)
    exhaustion_at = windows.index(EXHAUSTION_WINDOW)
    period_seconds = np.array([s.period.seconds for s in slos])
    to_exhaustion = time_to_exhaustion(remaining, burn[:, exhaustion_at], period_seconds)

    decision = decide_alerts(matrix, bad, total)
    firing = decision.firing & matrix.active
    members = policy_window_mask(slos, windows)
    has_data = np.any(~np.isnan(total) & members, axis=1)
    codes = status_codes(
        failed,
        has_data,
        np.any(firing & matrix.page, axis=1),
        remaining <= 0.0,
        np.any(firing & ~matrix.page, axis=1),
    )

    results = []
    for s, slo in enumerate(slos):
        status = STATUSES[codes[s]]
        values = {
            w: WindowValue(
                bad=_value(bad[s, i]),
                total=_value(total[s, i]),
                error_ratio=_value(ratio[s, i]),
                burn_rate=_value(burn[s, i]),
            )
            for i, w in enumerate(windows)
            if members[s, i]
        }
        alerts = []
        for r, rule in enumerate(matrix.rules[s]):
            if not decision.fire[s, r]:
                continue
            held = bool(decision.held[s, r])
            alerts.append(
                AlertSignal(
                    severity=rule.severity,
                    long_window=rule.long_window,
                    short_window=rule.short_window,
                    factor=rule.factor,
                    held="low_traffic" if held else None,
                    held_reason=held_reason(
                        float(decision.long_bad[s, r]),
                        float(decision.long_total[s, r]),
                        rule.long_window,
                        float(decision.p_value[s, r]),
                        matrix.guards[s],
                    )
                    if held
                    else None,
                )
            )
        results.append(
            SLOEvaluation(
                slo=slo,
                evaluated_at=events.at,
                status=status,
                windows=values,
                error_budget_remaining=_value(remaining[s]),
                time_to_exhaustion=_value(to_exhaustion[s]),
                alerts=tuple(alerts),
                error=events.errors.get(slo.id),
            )
        )
    return results


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
