"""Days of an SLO: UTC calendar days, and the events and budget of each from step rates.

Pure (no I/O): the daemon's daily compliance rows (engine/daemon/budgets.py) and the
monthly report rebuilt from Prometheus history (engine/reports/) count a day the same way —
the sum of the per-step events whose step ends inside (day start, day end]. A day without
a single step of data is None, never zero events.
"""

from __future__ import annotations

import calendar
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np

from engine.evaluation.source import StepRates

DAY_SECONDS = 86_400.0


def utc_day(ts: float) -> str:
    """The UTC day of the instant, YYYY-MM-DD (an instant exactly at midnight closes the
    day before: steps are (start, end] intervals)."""
    return datetime.fromtimestamp(math.ceil(ts) - 1, tz=UTC).date().isoformat()


def day_start(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp()


def month_days(month: str) -> list[str]:
    """Every day of `YYYY-MM`; ValueError for anything else."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"{month!r} is not a month: write it as YYYY-MM, e.g. 2026-11") from None
    count = calendar.monthrange(first.year, first.month)[1]
    return [(first + timedelta(days=i)).isoformat() for i in range(count)]


def day_events(rates: StepRates, row: int, day: str) -> tuple[float, float] | None:
    """(bad, total) events of SLO `row` on `day`, or None without data that day.

    A step with a total but no bad series counts 0 bad (StepRates' convention)."""
    start = day_start(day)
    inside = (rates.times > start) & (rates.times <= start + DAY_SECONDS)
    total = rates.total[row, inside]
    known = ~np.isnan(total)
    if not known.any():
        return None
    bad = np.nan_to_num(rates.bad[row, inside][known], nan=0.0)
    step = rates.step.seconds
    return float(bad.sum() * step), float(total[known].sum() * step)


def budget_remaining(
    rates: StepRates, row: int, at: float, period: float, error_budget: float
) -> float | None:
    """The error budget left at `at` over the rolling `period` before it, as a ratio
    (negative: overspent); None without events."""
    inside = (rates.times > at - period) & (rates.times <= at)
    total = rates.total[row, inside]
    known = ~np.isnan(total)
    events = float(total[known].sum())
    if events <= 0:
        return None
    bad = float(np.nan_to_num(rates.bad[row, inside][known], nan=0.0).sum())
    return 1.0 - (bad / events) / error_budget
