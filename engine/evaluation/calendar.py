"""Calendar periods at an evaluation instant: the budget since the period began.

A calendar SLO (engine.spec.calendar) is evaluated through a *pinned* copy for the instant:

- its `period` becomes the part of the current period elapsed at the instant, (start, at],
  rounded up to whole evaluation steps (at least one): every reader of `slo.period` — the
  budget window, its coverage, the JSON maps — then reads the calendar budget, which resets
  at the boundary;
- its `calendar` becomes a `CurrentPeriod` carrying the period's start and end, so burn
  factors scale with this period's real length (`burn_length`): a burn rate of 1 spends
  exactly the budget over this month, 28 days or 31 (engine.evaluation.policy), and time to
  exhaustion projects over the same length.

An unpinned calendar SLO (rules, dashboards, resolution) keeps the nominal length (7d, 31d,
92d). Pinning is pure; the one-shot path, the daemon and the backtest each pin at their
instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from engine.evaluation.windows import TierGrid, plan_window, prefix_sums, sum_planned
from engine.spec.calendar import CalendarPeriod
from engine.spec.durations import Duration
from engine.spec.models import SLO


class CurrentPeriod(CalendarPeriod):
    """A calendar period resolved at one instant: [start, end) in unix seconds."""

    start: float
    end: float

    @property
    def length(self) -> Duration:
        return Duration(round((self.end - self.start) * 1000))


def elapsed(calendar: CalendarPeriod, at: float, step: Duration) -> Duration:
    """(start, at] of the period holding `at`, rounded up to whole steps, at least one: at
    the boundary instant itself the budget reads the step that ends there."""
    start, _ = calendar.bounds(at)
    return Duration(max(step.ms, -(-round((at - start) * 1000) // step.ms) * step.ms))


def pin(slo: SLO, at: float, step: Duration, *, keep_period: bool = False) -> SLO:
    """`slo` as evaluated at `at` (on the `step` grid): unchanged unless it has a calendar.

    `keep_period`: the period stays the nominal window (the cache path, whose nominal
    window column already holds the sums since the period began, `since_start_rows`)."""
    calendar = slo.calendar
    if calendar is None:
        return slo
    start, end = calendar.bounds(at)
    current = CurrentPeriod(kind=calendar.kind, timezone=calendar.timezone, start=start, end=end)
    period = slo.period if keep_period else elapsed(calendar, at, step)
    return replace(slo, period=period, calendar=current)


def pin_all(
    slos: Sequence[SLO], at: float, step: Duration, *, keep_period: bool = False
) -> list[SLO]:
    return [pin(slo, at, step, keep_period=keep_period) for slo in slos]


def burn_length(slo: SLO) -> Duration:
    """The length a burn rate of 1 spends the budget over: the current calendar period's for
    a pinned SLO, else `period` (rolling, or a calendar SLO's nominal length)."""
    if isinstance(slo.calendar, CurrentPeriod):
        return slo.calendar.length
    return slo.period


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def calendar_json(slo: SLO, at: float) -> dict[str, Any] | None:
    """`{"period", "timezone", "start", "end", "length", "remaining_seconds"}` for a pinned
    calendar SLO evaluated at `at`; None otherwise (rolling SLOs carry no such key)."""
    calendar = slo.calendar
    if not isinstance(calendar, CurrentPeriod):
        return None
    return {
        "period": calendar.spelling,
        "timezone": calendar.timezone,
        "start": _iso(calendar.start),
        "end": _iso(calendar.end),
        "length": str(calendar.length),
        "remaining_seconds": max(0.0, calendar.end - at),
    }


def since_start_rows(
    slos: Sequence[SLO],
    now: int,
    windows: Sequence[Duration],
    grids: Sequence[TierGrid],
    steps: Sequence[int],
    counts: tuple[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray]],
    sums: tuple[np.ndarray, np.ndarray, np.ndarray],
    kept: tuple[np.ndarray, Sequence[np.ndarray | None]] | None = None,
) -> None:
    """The cache path: overwrite each calendar SLO's nominal-period column of `sums` (bad,
    total, covered seconds [S, W]) with its steps summed over (period start, now].

    `counts` are the cache's (bad, total, present) rings per tier. Covered seconds are
    scaled to the nominal window so that coverage reads as the share of the elapsed part
    (a full month so far is coverage 1, not 10/31). `kept` is (rows, per-tier kept share
    [length, len(rows)] or None) for the SLOs with maintenance windows: their steps are
    weighted by it, so a window's events leave the calendar budget as they leave a rolling
    one (engine.evaluation.maintenance)."""
    bad_rings, total_rings, present = counts
    bad, total, covered = sums
    masked_rows = {int(r): j for j, r in enumerate(kept[0])} if kept is not None else {}
    for row, slo in enumerate(slos):
        if slo.calendar is None:
            continue
        column = windows.index(slo.period)
        length = elapsed(slo.calendar, now, Duration(steps[0] * 1000))
        plan = plan_window(now, length.ms // 1000, grids)
        mine = [p[:, [row]] for p in present]
        j = masked_rows.get(row)
        shares = [None if j is None or k is None else k[:, [j]] for k in kept[1]] if kept else []
        b_rings = [c[:, [row]] for c in bad_rings]
        t_rings = [c[:, [row]] for c in total_rings]
        if any(k is not None for k in shares):
            b_rings = [c if k is None else c * k for c, k in zip(b_rings, shares, strict=True)]
            t_rings = [c if k is None else c * k for c, k in zip(t_rings, shares, strict=True)]
        b, _ = sum_planned(plan, b_rings, mine, steps)
        t, seconds = sum_planned(plan, t_rings, mine, steps)
        bad[row, column], total[row, column] = b[0], t[0]
        covered[row, column] = seconds[0] * (slo.period.seconds / length.seconds)


def period_starts(calendar: CalendarPeriod, times: np.ndarray) -> np.ndarray:
    """float64[T]: the start of the period holding each instant of sorted `times`."""
    starts = [calendar.bounds(float(times[0]))[0]]
    end = calendar.bounds(float(times[0]))[1]
    while end <= times[-1]:
        starts.append(end)
        end = calendar.bounds(end)[1]
    boundaries = np.array(starts)
    return boundaries[np.searchsorted(boundaries, times, side="right") - 1]


def since_start_series(
    slos: Sequence[SLO],
    times: np.ndarray,
    steps: tuple[np.ndarray, np.ndarray],
    from_step: int,
    period_index: np.ndarray,
    sums: tuple[np.ndarray, np.ndarray],
) -> None:
    """The backtest: overwrite each calendar SLO's period column of `sums` (bad, total
    [S, W, T − from_step]) with, at every replayed step, the sums over (start of the period
    holding that step, step] — the budget resets at each boundary of the replay.

    `times` are the end times of all steps (warm-up included), `steps` the per-step
    (bad, total) counts [S, T] with NaN for no data."""
    bad_steps, total_steps = steps
    bad, total = sums
    ends = np.arange(from_step + 1, len(times) + 1)  # prefix index just after each step
    for row, slo in enumerate(slos):
        if slo.calendar is None:
            continue
        begins = np.searchsorted(times, period_starts(slo.calendar, times[from_step:]), "right")
        bad_p, _ = prefix_sums(bad_steps[row])
        total_p, observed = prefix_sums(total_steps[row])
        column = period_index[row]
        with_data = observed[ends] - observed[begins] > 0
        bad[row, column] = np.where(with_data, np.maximum(bad_p[ends] - bad_p[begins], 0), np.nan)
        total[row, column] = np.where(
            with_data, np.maximum(total_p[ends] - total_p[begins], 0), np.nan
        )


class PinnedPlans:
    """The daemon's evaluation plan for pinned calendar SLOs, rebuilt only when the SLO set
    changes (a new base plan) or a calendar period turns over (its factors change) — not
    every cycle: planning 10,000 SLOs costs more than evaluating them."""

    def __init__(self) -> None:
        self._base: object = None
        self._periods: tuple[CalendarPeriod, ...] = ()
        self._plan: Any = None

    def plan(self, base: Any, pinned: Sequence[SLO], build: Callable[[], Any]) -> Any:
        periods = tuple(s.calendar for s in pinned if s.calendar is not None)
        if self._base is not base or self._periods != periods:
            self._base, self._periods, self._plan = base, periods, build()
        return self._plan
