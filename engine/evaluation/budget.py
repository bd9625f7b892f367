"""Error ratios, burn rates and error budgets, vectorized.

All functions take numpy arrays that broadcast against each other: per-SLO parameters such
as the error budget are passed shaped to line up with the event arrays, e.g. `budget[:, None]`
against `[S, W]` counts or `budget[:, None, None]` against `[S, W, T]`.

Two rules make the numbers trustworthy:
- A ratio over no events (total 0 or unknown) is NaN, "no data", never 0 % or 100 %.
- The budget over the period is event-weighted: bad events in the period ÷ total events in
  the period. Averaging per-step ratios (what Sloth's period rule does) lets a quiet night
  with one failed request weigh as much as a busy hour; with varying traffic it is simply a
  different, wrong number.
"""

from __future__ import annotations

import numpy as np

from engine.spec.durations import Duration

# Time to exhaustion projects the burn rate of this window: long enough not to swing with
# each scrape, short enough to describe what is happening now (it is the fast page window).
EXHAUSTION_WINDOW = Duration.parse("1h")


def error_ratio(bad: np.ndarray, total: np.ndarray) -> np.ndarray:
    """bad ÷ total, NaN where total is 0 or NaN."""
    bad = np.asarray(bad, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bad / total
    return np.where(total > 0, ratio, np.nan)


def burn_rate(ratio: np.ndarray, error_budget: np.ndarray | float) -> np.ndarray:
    """How many times faster than sustainable the budget burns: ratio ÷ (1 − objective).

    Burn 1 spends exactly the whole budget over the period. NaN stays NaN.
    """
    return np.asarray(ratio, dtype=np.float64) / np.asarray(error_budget, dtype=np.float64)


def budget_consumed(
    bad_period: np.ndarray, total_period: np.ndarray, error_budget: np.ndarray | float
) -> np.ndarray:
    """Share of the period's error budget spent: (bad ÷ total over the period) ÷ budget.

    Can exceed 1 (budget overspent). NaN when the period holds no events.
    """
    return burn_rate(error_ratio(bad_period, total_period), error_budget)


def error_budget_remaining(
    bad_period: np.ndarray, total_period: np.ndarray, error_budget: np.ndarray | float
) -> np.ndarray:
    """1 − budget consumed; negative once overspent, NaN without events in the period."""
    return 1.0 - budget_consumed(bad_period, total_period, error_budget)


def time_to_exhaustion(
    remaining: np.ndarray, burn: np.ndarray, period_seconds: np.ndarray | float
) -> np.ndarray:
    """Seconds until the remaining budget is gone if the current burn rate holds.

    At burn b the whole budget lasts period ÷ b, so what remains lasts remaining × period ÷ b.
    `burn` is the burn rate over `EXHAUSTION_WINDOW` (1h). The projection is linear: it
    ignores old events rolling out of the period, which only matters for slow burns. NaN
    (reported as None) when the burn is ≤ 1 (sustainable: the budget does not run out at this
    pace), when the budget is already spent (remaining ≤ 0: the status says `exhausted`), or
    without data.
    """
    remaining = np.asarray(remaining, dtype=np.float64)
    burn = np.asarray(burn, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        seconds = remaining * np.asarray(period_seconds, dtype=np.float64) / burn
    return np.where((burn > 1.0) & (remaining > 0.0), seconds, np.nan)
