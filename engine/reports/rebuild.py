"""Daily rows rebuilt from Prometheus history, for SLOs the store has no days of.

The same fetch as `backtest` (engine/backtest/plan.py `fetch_history`: chunked, failures
per SLO) over the month plus one SLO period before it, so the budget left at each day's
end is computed over a full rolling period. Events per day are counted exactly like the
daemon's (engine/evaluation/daily.py). Burning time is not rebuilt (it needs the alert
replay `backtest` does); the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.backtest.plan import ReplayPlan, fetch_history
from engine.evaluation.daily import DAY_SECONDS, budget_remaining, day_events, day_start
from engine.evaluation.source import EventSource
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.store.history import ComplianceDay

REBUILD_STEP = Duration.parse("5m")


def rebuild_days(
    source: EventSource,
    slos: Sequence[SLO],
    days: Sequence[str],
    now: float,
    step: Duration = REBUILD_STEP,
) -> list[ComplianceDay]:
    """One row per SLO and day of `days` with events (up to `now`)."""
    if not slos or not days:
        return []
    step_s = step.seconds
    start = math.floor(day_start(days[0]) / step_s) * step_s
    end = math.floor(min(now, day_start(days[-1]) + DAY_SECONDS) / step_s) * step_s
    if end <= start:
        return []
    longest = max(s.period.seconds for s in slos)
    warmup = Duration(math.ceil(longest / step_s) * step.ms)
    rates = fetch_history(source, slos, ReplayPlan(step, float(start), float(end), warmup))
    out: list[ComplianceDay] = []
    for row, slo in enumerate(slos):
        if slo.id in rates.errors:
            continue
        for day in days:
            counted = day_events(rates, row, day)
            if counted is None:
                continue
            bad, total = counted
            closes = min(now, day_start(day) + DAY_SECONDS)
            out.append(
                ComplianceDay(
                    slo_id=slo.id,
                    day=day,
                    service=slo.service,
                    objective=float(slo.objective_percent),
                    good=total - bad,
                    bad=bad,
                    total=total,
                    budget_remaining=budget_remaining(
                        rates, row, closes, slo.period.seconds, float(slo.error_budget)
                    ),
                )
            )
    return out
