"""What an SLI achieved per period: rolling periods ending at the history's end, calendar
months, and the spread of the rolling SLI over the history.

A period is a range of the fetched step grid. Its event counts are differences of one
running sum per SLO (`engine.evaluation.windows.prefix_sums`) over per-step counts that
follow the same missing-data rules as every window the daemon sums
(`normalize_step_counts`): a step without a total is no data, never zero traffic, and a
period without events has no achieved SLI — reported as "no data", never as 0 % or 100 %.

A period counts towards a recommendation only with data at `MIN_COVERAGE` of its steps:
an SLI measured on a third of a month says little about the month.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from engine.evaluation.budget import error_ratio
from engine.evaluation.source import StepRates
from engine.evaluation.windows import normalize_step_counts, prefix_sums
from engine.spec.durations import Duration

DAY = 86_400
# Share of a period's steps that must have data for the period to count.
MIN_COVERAGE = 0.9
# Quantiles of the rolling-period SLI reported as its distribution over the history.
QUANTILES = (("min", 0.0), ("p10", 0.1), ("median", 0.5), ("p90", 0.9), ("max", 1.0))


@dataclass(frozen=True)
class Span:
    """The range (start, end] of the step grid, as step indices [lo, hi)."""

    label: str
    start: float
    end: float
    lo: int
    hi: int
    # Cut by the history's bounds (a calendar month the history only partly covers).
    partial: bool = False


@dataclass(frozen=True)
class PeriodValue:
    """Events of one SLO in one span, and what they achieved."""

    span: Span
    bad: float
    total: float
    coverage: float  # share of the span's steps with data
    # The SLI in percent; None without events (no data, never 0 % or 100 %).
    achieved: float | None

    @property
    def usable(self) -> bool:
        """Enough data to judge an objective by: events at MIN_COVERAGE of the steps."""
        return not self.span.partial and self.coverage >= MIN_COVERAGE and self.total > 0

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.span.label,
            "start": self.span.start,
            "end": self.span.end,
            "partial": self.span.partial,
            "achieved": self.achieved,
            "bad_events": self.bad,
            "total_events": self.total,
            "coverage": round(self.coverage, 4),
            "usable": self.usable,
        }


@dataclass(frozen=True)
class Grid:
    """The fetched step grid: step t covers (times[t] − step, times[t]]."""

    times: np.ndarray
    step: float

    @property
    def start(self) -> float:
        return float(self.times[0]) - self.step

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def span(self, label: str, start: float, end: float, partial: bool = False) -> Span:
        # Half a step of slack: grid times are floats from `first + step × k`.
        lo = int(np.searchsorted(self.times, start + self.step / 2))
        hi = int(np.searchsorted(self.times, end + self.step / 2))
        return Span(label, start, end, lo, hi, partial)


def rolling_periods(grid: Grid, period: Duration) -> list[Span]:
    """Whole periods ending at the history's end, newest first; none when the history is
    shorter than one period."""
    out = []
    k = 0
    while grid.end - (k + 1) * period.seconds >= grid.start - 1e-6:
        end = grid.end - k * period.seconds
        out.append(grid.span(f"-{period * k}" if k else "latest", end - period.seconds, end))
        k += 1
    return out


def calendar_months(grid: Grid) -> list[Span]:
    """UTC calendar months the history touches, oldest first; cut ones are `partial`."""
    out = []
    first = datetime.fromtimestamp(grid.start, UTC)
    year, month = first.year, first.month
    while True:
        begin = datetime(year, month, 1, tzinfo=UTC).timestamp()
        if begin >= grid.end:
            break
        days = calendar.monthrange(year, month)[1]
        end = begin + days * DAY
        lo, hi = max(begin, grid.start), min(end, grid.end)
        if hi > lo:
            partial = lo > begin or hi < end
            out.append(grid.span(f"{year:04d}-{month:02d}", lo, hi, partial))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def rolling_samples(grid: Grid, period: Duration) -> list[Span]:
    """One rolling period ending at each day boundary counted back from the history's end:
    what the SLI over the period read, day after day."""
    out = []
    j = 0
    while grid.end - j * DAY - period.seconds >= grid.start - 1e-6:
        end = grid.end - j * DAY
        out.append(grid.span(f"-{j}d", end - period.seconds, end))
        j += 1
    return out


def step_counts(rates: StepRates, row: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step bad and total events of one SLO, with the missing-data rules applied."""
    seconds = rates.step.seconds
    return normalize_step_counts(rates.bad[row] * seconds, rates.total[row] * seconds)


class Sums:
    """Running sums of one SLO's per-step events (from `step_counts`), so that the events
    of any span are two lookups."""

    def __init__(self, bad: np.ndarray, total: np.ndarray) -> None:
        self.bad, _ = prefix_sums(bad)
        self.total, self.observed = prefix_sums(total)

    def values(self, spans: Sequence[Span]) -> list[PeriodValue]:
        """Events of the SLO in each span, and what they achieved."""
        if not spans:
            return []
        lo = np.array([s.lo for s in spans])
        hi = np.array([s.hi for s in spans])
        n_bad = np.maximum(self.bad[hi] - self.bad[lo], 0.0)
        n_total = np.maximum(self.total[hi] - self.total[lo], 0.0)
        coverage = (self.observed[hi] - self.observed[lo]) / np.maximum(hi - lo, 1)
        achieved = 100.0 * (1.0 - error_ratio(n_bad, n_total))
        return [
            PeriodValue(span, b, t, c, None if np.isnan(a) else a)
            for span, b, t, c, a in zip(
                spans,
                n_bad.tolist(),
                n_total.tolist(),
                coverage.tolist(),
                achieved.tolist(),
                strict=True,
            )
        ]


def span_values(bad: np.ndarray, total: np.ndarray, spans: Sequence[Span]) -> list[PeriodValue]:
    """Events of one SLO (per-step counts from `step_counts`) in each span."""
    return Sums(bad, total).values(spans)


def distribution(samples: Sequence[PeriodValue]) -> dict[str, float | int] | None:
    """Quantiles of the rolling-period SLI over the history (None without any sample)."""
    values = np.array([v.achieved for v in samples if v.usable and v.achieved is not None])
    if values.size == 0:
        return None
    out: dict[str, float | int] = {name: float(np.quantile(values, q)) for name, q in QUANTILES}
    out["samples"] = int(values.size)
    return out
