"""Window sums of per-step event counts, by prefix sums.

Every window (5m … 30d) is the difference of two entries of one running sum, so the cost of
"all windows at every step" is one `cumsum` plus one subtraction per window, whatever the
window lengths. There is no Python loop over steps or over SLOs.

Missing data rules (the same for `backtest` and the daemon):
- A step whose *total* is NaN has no data: it adds nothing to a window's sums.
- A step with a total but a NaN *bad* counts as 0 bad events. PromQL returns an empty
  result for `sum(rate(errors[5m]))` until the first error series exists, so "no bad series"
  with traffic present is a healthy step, not a missing one. This is about explicit `bad`
  queries only: where bad is derived as total − good (latency SLIs, `good` queries), a
  missing good series is not evidence of health, and the source reports such a step as no
  data (NaN total) or the SLO as an error (`engine.source.prometheus`), so it never
  reaches this rule.
- A window in which no step has data is NaN (no data), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.spec.durations import Duration

# The freshest evidence an evaluation reports besides its policy windows: the error ratio
# over the newest minute (`SLOEvaluation.recent`). It refines a page's severity (a complete
# outage is SEV1 from the first page, see engine/incidents/classify.py); it never decides
# whether to alert. Why one minute and not two:
# - The 1h/14.4× rule of a 99.9 % SLO fires 52 s into a complete outage. The newest minute is
#   then ≥ 86 % bad; a 2m window could be 43 %, under the 50 % outage threshold — the very
#   understatement this window exists to remove.
# - It costs no new query and no new data requirement: it is the finest cache tier's newest
#   step, itself `rate(x[1m])`, which needs two samples in the minute; that holds at 15 s and
#   30 s scrape intervals, and at coarser scrapes the page windows (sums of 1m steps) have no
#   data either. A ratio is also robust to a newest step that missed its last scrape: bad
#   and total come from the same samples.
RECENT_WINDOW = Duration.parse("1m")


def recent_window_for(step: Duration) -> Duration:
    """The recent window on a grid of `step`: RECENT_WINDOW rounded up to whole steps.

    The daemon's finest step is 1m, so this is 1m; a backtest with `--step 5m` gets its
    newest 5m step, the freshest it has.
    """
    if step.ms <= 0:
        raise ValueError(f"a step must be positive, got {step}")
    return Duration(-(-RECENT_WINDOW.ms // step.ms) * step.ms)


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
    counts: np.ndarray, window_steps: Sequence[int], first: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Trailing window sums at every step from `first` on: (sums[W, S, T − first], covered).

    `counts[S, T]` are per-step event counts (rate × step seconds), NaN for no data.
    sums[w, s, t] = Σ counts[s, t−k+1 … t] for k = window_steps[w], skipping NaN steps;
    a window reaching before the first step only sums what exists. covered[w, s, t] is the
    number of steps with data in that window (int64); where it is 0 the sum is NaN.
    Steps before `first` are read by the windows but get no sums of their own (a backtest's
    warm-up history).
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n_steps = counts.shape[1]
    steps = np.asarray(window_steps, dtype=np.int64)
    if steps.ndim != 1 or np.any(steps < 1):
        raise ValueError(f"window lengths must be whole numbers of steps ≥ 1, got {window_steps}")
    sums_p, obs_p = prefix_sums(counts)
    end = np.arange(first + 1, n_steps + 1)  # prefix index just after step t
    start = np.maximum(end[None, :] - steps[:, None], 0)  # [W, T]
    sums = sums_p[:, end][None, :, :] - sums_p[:, start].transpose(1, 0, 2)
    covered = obs_p[:, end][None, :, :] - obs_p[:, start].transpose(1, 0, 2)
    # Cancellation in the subtraction can leave −1e-13 where the true sum is 0.
    np.maximum(sums, 0.0, out=sums)
    sums[covered == 0] = np.nan
    return sums, covered


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
    """Where one tier's stored steps sit on the epoch-aligned grid.

    Step number k is the interval ((k−1)·step, k·step]. A tier stores the `length` newest
    steps up to `end` in a ring: step k lives in slot k mod length, time-major (`[slot, S]`),
    so advancing the grid never moves data and a window is at most two contiguous slices.
    """

    step: int  # seconds
    end: int  # grid time (unix seconds) of the newest stored step
    length: int  # number of stored steps

    @property
    def newest(self) -> int:
        """Step number of the newest stored step."""
        return self.end // self.step

    @property
    def oldest(self) -> int:
        """Step number of the oldest stored step."""
        return self.newest - self.length + 1

    @property
    def start(self) -> int:
        """The time the oldest stored step begins."""
        return self.end - self.length * self.step


@dataclass(frozen=True)
class Segment:
    """Whole steps number lo … hi−1 of one tier."""

    tier: int
    lo: int
    hi: int


@dataclass(frozen=True)
class WindowPlan:
    segments: tuple[Segment, ...]
    # (tier, step number, fraction): the oldest step, only partly inside the window.
    partial: tuple[int, int, float] | None


def settled_boundaries(at: int, tiers: Sequence[TierGrid]) -> list[int]:
    """B[0] = at; B[i] = the newest settled grid point of tier i, never after B[i−1]."""
    bounds = [at]
    for tier in tiers[1:]:
        bounds.append(min(bounds[-1], (at // tier.step) * tier.step - tier.step))
    return bounds


def _segment(index: int, tier: TierGrid, after: int, upto: int) -> Segment:
    """Steps ending in (after, upto], both grid times of the tier, clamped to what is stored."""
    lo = max(after // tier.step + 1, tier.oldest)
    hi = min(upto // tier.step, tier.newest) + 1
    return Segment(index, lo, max(lo, hi))


def plan_window(at: int, window: int, tiers: Sequence[TierGrid]) -> WindowPlan:
    """Which stored steps make up the window (at − window, at]. All times in seconds.

    `tiers` are finest first; each step is a multiple of the previous one and `at` lies on
    the finest grid. Steps older than a tier's storage are left out (they count as no data).
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
    segments = [_segment(i, tiers[i], bounds[i + 1], bounds[i]) for i in range(last)]
    tier = tiers[last]
    first_full = -(-begin // tier.step) * tier.step  # end of the oldest step touching the window
    partial = None
    if first_full != begin:
        number = first_full // tier.step
        if tier.oldest <= number <= tier.newest:
            partial = (last, number, (first_full - begin) / tier.step)
    if first_full < bounds[last]:
        segments.append(_segment(last, tier, first_full, bounds[last]))
    return WindowPlan(tuple(s for s in segments if s.hi > s.lo), partial)


def _ring_sum(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Σ over step numbers lo … hi−1 of a ring stored time-major as values[slot, S]."""
    length = values.shape[0]
    first, count = lo % length, hi - lo
    if first + count <= length:
        return values[first : first + count].sum(axis=0)
    return values[first:].sum(axis=0) + values[: first + count - length].sum(axis=0)


def sum_planned(
    plan: WindowPlan,
    counts: Sequence[np.ndarray],
    present: Sequence[np.ndarray],
    steps: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """(sum[S], seconds with data[S]) of one planned window for every SLO.

    Per tier i: `counts[i]` are event counts per step as a ring `[length, S]` holding 0 where
    `present[i]` (bool, same shape) says the step has no data. The sum is NaN where no part
    of the window has data.
    """
    n_slos = counts[0].shape[1]
    total = np.zeros(n_slos)
    seconds = np.zeros(n_slos)
    for seg in plan.segments:
        total += _ring_sum(counts[seg.tier], seg.lo, seg.hi)
        seconds += _ring_sum(present[seg.tier], seg.lo, seg.hi) * steps[seg.tier]
    if plan.partial is not None:
        tier, number, fraction = plan.partial
        slot = number % counts[tier].shape[0]
        total += counts[tier][slot] * fraction
        seconds += present[tier][slot] * (fraction * steps[tier])
    total[seconds == 0] = np.nan
    return total, seconds
