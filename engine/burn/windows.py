"""Window sums of per-step event counts, by prefix sums.

Every window (5m … 30d) is the difference of two entries of one running sum, so the cost of
"all windows at every step" is one `cumsum` plus one subtraction per window, whatever the
window lengths. There is no Python loop over steps or over SLOs.

Missing data rules (the same for `backtest` and the daemon):
- A step whose *total* is NaN has no data: it adds nothing to a window's sums.
- A step with a total but a NaN *bad* counts as 0 bad events. PromQL returns an empty
  result for `sum(rate(errors[5m]))` until the first error series exists, so "no bad series"
  with traffic present is a healthy step, not a missing one.
- A window in which no step has data is NaN (no data), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def normalize_step_counts(bad: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the missing-data rules above to per-step values (any shape, same for both).

    Returns new float64 arrays: bad is 0 where total is known and bad is not; both are NaN
    where total is unknown.
    """
    bad = np.asarray(bad, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    missing_total = np.isnan(total)
    bad = np.where(np.isnan(bad), 0.0, bad)
    bad = np.where(missing_total, np.nan, bad)
    return bad, total.copy()


def prefix_sums(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums along the last axis with a leading 0: (sums[..., T+1], observed[..., T+1]).

    NaN steps add 0 to `sums` and 0 to `observed` (the number of steps with data). Adding an
    exact 0.0 leaves a float unchanged, so a window of zero-valued steps differences to an
    exact 0, not to rounding noise.
    """
    counts = np.asarray(counts, dtype=np.float64)
    shape = (*counts.shape[:-1], counts.shape[-1] + 1)
    sums = np.zeros(shape, dtype=np.float64)
    observed = np.zeros(shape, dtype=np.int64)
    present = ~np.isnan(counts)
    np.cumsum(np.where(present, counts, 0.0), axis=-1, out=sums[..., 1:])
    np.cumsum(present, axis=-1, out=observed[..., 1:])
    return sums, observed


def rolling_window_sums(
    counts: np.ndarray, window_steps: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Trailing window sums at every step: (sums[W, S, T], covered[W, S, T]).

    `counts[S, T]` are per-step event counts (rate × step seconds), NaN for no data.
    sums[w, s, t] = Σ counts[s, t−k+1 … t] for k = window_steps[w], skipping NaN steps;
    a window reaching before the first step only sums what exists. covered[w, s, t] is the
    number of steps with data in that window (int64); where it is 0 the sum is NaN.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n_steps = counts.shape[1]
    steps = np.asarray(window_steps, dtype=np.int64)
    if steps.ndim != 1 or np.any(steps < 1):
        raise ValueError(f"window lengths must be whole numbers of steps ≥ 1, got {window_steps}")
    sums_p, obs_p = prefix_sums(counts)
    end = np.arange(1, n_steps + 1)  # prefix index just after step t
    start = np.maximum(end[None, :] - steps[:, None], 0)  # [W, T]
    sums = sums_p[:, end][None, :, :] - sums_p[:, start].transpose(1, 0, 2)
    covered = obs_p[:, end][None, :, :] - obs_p[:, start].transpose(1, 0, 2)
    # Cancellation in the subtraction can leave −1e-13 where the true sum is 0.
    np.maximum(sums, 0.0, out=sums)
    sums[covered == 0] = np.nan
    return sums, covered


def segment_sum(
    sums_p: np.ndarray, obs_p: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of steps lo … hi−1 (array positions) from `prefix_sums` output, for every row.

    Positions are clamped to the stored range, so a segment reaching before the oldest stored
    step only counts what is stored. Returns (sum[S], observed_steps[S]).
    """
    n = sums_p.shape[-1] - 1
    lo_c, hi_c = min(max(lo, 0), n), min(max(hi, 0), n)
    if hi_c <= lo_c:
        zeros = np.zeros(sums_p.shape[:-1])
        return zeros, zeros.astype(np.int64)
    return sums_p[..., hi_c] - sums_p[..., lo_c], obs_p[..., hi_c] - obs_p[..., lo_c]


# --- Composing one window at one instant from several resolutions -------------------------
#
# The cache keeps the same event counts at several step sizes (tiers): fine steps for the
# recent past, coarse steps for the long tail. A window ending at `at` is read as
#
#     [ oldest part: one coarse tier, oldest step prorated | … | newest part: finest tier ]
#
# The boundary between tier i−1 and tier i is the newest *settled* grid point of tier i: one
# tier-i step before the newest one. The newest coarse step was fetched right as it ended,
# possibly before every sample had been scraped; it is re-fetched on the next advance of its
# tier, so only steps fetched at least one step after they closed are read from coarse tiers.
# The oldest part uses the finest tier that still holds the window's start, so a 1d window is
# read at 5m resolution, not 1h, when 5m steps reach back that far.


@dataclass(frozen=True)
class TierGrid:
    """Where one tier's stored steps sit on the epoch-aligned grid."""

    step: int  # seconds
    end: int  # grid time (unix seconds) of the newest stored step
    length: int  # number of stored steps: they end at end − (length−1)·step … end

    @property
    def start(self) -> int:
        """The time the oldest stored step begins."""
        return self.end - self.length * self.step

    def position(self, grid_time: int) -> int:
        """Array position of the step ending at `grid_time` (may fall outside 0 … length−1)."""
        return self.length - 1 - (self.end - grid_time) // self.step


@dataclass(frozen=True)
class Segment:
    """Whole steps at positions lo … hi−1 of one tier."""

    tier: int
    lo: int
    hi: int


@dataclass(frozen=True)
class WindowPlan:
    segments: tuple[Segment, ...]
    # (tier, position, fraction): the oldest step, only partly inside the window.
    partial: tuple[int, int, float] | None


def settled_boundaries(at: int, tiers: Sequence[TierGrid]) -> list[int]:
    """B[0] = at; B[i] = the newest settled grid point of tier i, never after B[i−1]."""
    bounds = [at]
    for tier in tiers[1:]:
        bounds.append(min(bounds[-1], (at // tier.step) * tier.step - tier.step))
    return bounds


def plan_window(at: int, window: int, tiers: Sequence[TierGrid]) -> WindowPlan:
    """Which stored steps make up the window (at − window, at]. All times in seconds.

    `tiers` are finest first; each step is a multiple of the previous one and `at` lies on
    the finest grid.
    """
    if window <= 0:
        raise ValueError(f"a window must be positive, got {window}s")
    begin = at - window
    bounds = settled_boundaries(at, tiers)
    # The finest tier whose stored steps reach back to the step holding the window's start.
    last = len(tiers) - 1
    for index, tier in enumerate(tiers):
        if (begin // tier.step) * tier.step >= tier.start:
            last = index
            break
    segments = []
    for index in range(last):
        tier = tiers[index]
        lo_time, hi_time = bounds[index + 1], bounds[index]
        segments.append(Segment(index, tier.position(lo_time) + 1, tier.position(hi_time) + 1))
    tier = tiers[last]
    first_full = -(-begin // tier.step) * tier.step  # end of the oldest step touching the window
    partial = None
    if first_full != begin:
        fraction = (first_full - begin) / tier.step
        partial = (last, tier.position(first_full), fraction)
    if first_full <= bounds[last]:
        segments.append(
            Segment(last, tier.position(first_full) + 1, tier.position(bounds[last]) + 1)
        )
    return WindowPlan(tuple(segments), partial)


def sum_planned(
    plan: WindowPlan,
    prefixes: Sequence[tuple[np.ndarray, np.ndarray]],
    values: Sequence[np.ndarray],
    steps: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """(sum[S], seconds with data[S]) of one planned window over every row.

    `prefixes[i]` is `prefix_sums(values[i])` for tier i; values are per-step counts [S, N].
    The sum is NaN where no part of the window has data.
    """
    n_rows = values[0].shape[0]
    total = np.zeros(n_rows)
    seconds = np.zeros(n_rows)
    for seg in plan.segments:
        part, observed = segment_sum(*prefixes[seg.tier], seg.lo, seg.hi)
        total += part
        seconds += observed * steps[seg.tier]
    if plan.partial is not None:
        tier, pos, fraction = plan.partial
        if 0 <= pos < values[tier].shape[1]:
            column = values[tier][:, pos]
            present = ~np.isnan(column)
            total += np.where(present, column * fraction, 0.0)
            seconds += present * (fraction * steps[tier])
    np.maximum(total, 0.0, out=total)
    total[seconds == 0] = np.nan
    return total, seconds
