"""The young-history profiles, `recent` and `daily`; the `weekly` one is in `scoring`.

A new service, or a Prometheus that keeps ten days, has no same-time-of-week history, yet a
90 % traffic drop is obvious from the last few hours alone. Every slot is scored with the
richest profile its history supports (`scoring.detect` picks, slot by slot): `weekly` once
two weeks of the same time of week exist, else `daily` once two days of the same time of day
exist, else `recent` once a few hours exist. Both young profiles follow one recipe, on the
signal scale (log for traffic), over a window of `level_window` slots (3 h by default):

    shape   D[t] = 0                                            recent: the level alone
                 = median of y at the same time of day on the previous
                   `recent_days` days (at least `DAILY_MIN_DAYS`)   daily: the day's shape
    level   L[t] = D[t] + median of (y − D) over the window before t
    lag     B[t] = median of (y − L) over the window before t
    expect  E[t] = L[t] + B[t]
    scale   σ[t] = 1.4826 × median of |(y − L) − B| over the window before t

`L` is where the signal has been lately, moved along the day's shape; the lag `B` is how far
that estimate has lately trailed the signal — on a morning ramp the recent level is always
behind, so the ramp is expected to go on — and `σ` the spread of that error, i.e. how well
the profile has been predicting lately. Medians keep one odd slot from moving any of them;
an anomaly lasting longer than half the window becomes the new level and clears (1.5 h by
default: long after `min_duration` has reported it).

What a profile cannot know it must not report: until two weeks have been seen, a quiet
Saturday looks like a drop. So a young profile's scale has a wider floor than the weekly one
(`PROFILE_FLOOR_FACTOR`: 4 × — for traffic 0.2 on the log scale, so at the default
sensitivity only drops of about 55 % or more are reported, and a 90 % drop scores ≥ 11).
Calibrated on four weeks of seasonal traffic with Poisson noise and slow level wander, with
smooth and with abrupt weekends: at most one false anomaly per series and week, and a 90 %
drop for 45 minutes caught at 98–100 % of times of day (tests/test_anomaly_profiles.py;
docs/anomaly.md has the figures).

Only the slots that need a young profile are computed (those with data the weekly profile
cannot score), so a mature service pays nothing for them. Pure numpy, no clock, no I/O.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Profile = Literal["recent", "daily", "weekly"]
# Poorest first: a profile's code is its index in PROFILES; NO_PROFILE = no score.
PROFILES: tuple[Profile, ...] = ("recent", "daily", "weekly")
NO_PROFILE = -1
RECENT, DAILY, WEEKLY = 0, 1, 2

# Scales a median absolute deviation to a standard deviation for normal noise.
MAD_TO_SIGMA = 1.4826
# Same-time-of-day values the daily shape needs.
DAILY_MIN_DAYS = 2
# How much wider than the weekly floor (`scoring.scale_floor`) a profile's scale floor is.
PROFILE_FLOOR_FACTOR: dict[Profile, float] = {"recent": 4.0, "daily": 4.0, "weekly": 1.0}
# Values a window median needs, as a share of the window.
_MIN_SHARE = 0.5
# Bound on the windowed values built at once (series × columns × window).
_CHUNK_VALUES = 1 << 21


def profile_floor(base_floor: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """The scale floor of each slot's profile; `base_floor` (S, 1) is the weekly one."""
    factors = np.array([PROFILE_FLOOR_FACTOR[p] for p in PROFILES])
    return base_floor * factors[np.clip(profile, 0, len(PROFILES) - 1)]


def _gather(y: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """`y[:, cols]`, NaN for columns before the first (negative indices)."""
    out = y[:, np.clip(cols, 0, None)]
    out[:, cols < 0] = np.nan
    return out


def _median_last_axis(values: np.ndarray, min_count: int) -> np.ndarray:
    """Median over the last axis ignoring NaN; NaN where fewer than `min_count` values.

    Sorting puts NaN last, so the median of the `n` valid values is read at (n−1)//2 and
    n//2 (as `scoring._nanmedian`, over the last axis)."""
    ordered = np.sort(values, axis=-1)
    n = np.sum(~np.isnan(values), axis=-1)
    width = values.shape[-1]
    lo = np.clip((n - 1) // 2, 0, width - 1)[..., None]
    hi = np.clip(n // 2, 0, width - 1)[..., None]
    med = 0.5 * (
        np.take_along_axis(ordered, lo, axis=-1)[..., 0]
        + np.take_along_axis(ordered, hi, axis=-1)[..., 0]
    )
    return np.where(n >= max(min_count, 1), med, np.nan)


def rolling_stats(
    x: np.ndarray, window: int, cols: np.ndarray, min_count: int, spread: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row and for each column `c` of `cols`, the median of the `window` values before
    it, `x[:, c − window : c]` (NaN ignored), and — with `spread` — their median absolute
    deviation from that median (else NaN). Shapes (S, len(cols))."""
    s_count = x.shape[0]
    padded = np.concatenate([np.full((s_count, window), np.nan), x], axis=1)
    offsets = np.arange(window)
    median = np.full((s_count, cols.size), np.nan)
    mad = np.full((s_count, cols.size), np.nan)
    chunk = max(1, _CHUNK_VALUES // max(1, s_count * window))
    for lo in range(0, cols.size, chunk):
        part = cols[lo : lo + chunk]
        # padded column c + k holds x[:, c − window + k].
        values = padded[:, part[:, None] + offsets[None, :]]
        med = _median_last_axis(values, min_count)
        median[:, lo : lo + chunk] = med
        if spread:
            mad[:, lo : lo + chunk] = _median_last_axis(np.abs(values - med[..., None]), min_count)
    return median, mad


def daily_shape(y: np.ndarray, cols: np.ndarray, per_day: int, days: int) -> np.ndarray:
    """At `cols`: the median of the same time of day on the previous `days` days; NaN with
    fewer than `DAILY_MIN_DAYS` of them."""
    stack = np.stack([_gather(y, cols - d * per_day) for d in range(1, days + 1)], axis=-1)
    return _median_last_axis(stack, DAILY_MIN_DAYS)


def _reach_back(cols: np.ndarray, window: int, n: int) -> np.ndarray:
    """The columns `c − window … c` of every `c` in `cols`, sorted."""
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, np.maximum(cols - window, 0), 1)
    np.add.at(marks, cols + 1, -1)
    return np.flatnonzero(np.cumsum(marks)[:n] > 0)


def level_baseline(
    y: np.ndarray, daily: bool, need: np.ndarray, window: int, per_day: int, days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and raw scale (S, N) of the daily profile (`daily`) or the recent one
    where `need` (S, N) is set; NaN elsewhere and where the history is too short."""
    s_count, n = y.shape
    expected = np.full((s_count, n), np.nan)
    scale = np.full((s_count, n), np.nan)
    cols = np.flatnonzero(need.any(axis=0))
    if cols.size == 0:
        return expected, scale
    # Lag and spread at c read the level errors of the window before c; each of those
    # levels reads the deviations from the shape of the window before it.
    level_cols = _reach_back(cols, window, n)
    shape_cols = _reach_back(level_cols, window, n)
    min_count = max(1, int(window * _MIN_SHARE))
    shape = np.zeros((s_count, n))
    if daily:
        shape[:, shape_cols] = daily_shape(y, shape_cols, per_day, days)
    deviation = np.full((s_count, n), np.nan)
    deviation[:, shape_cols] = y[:, shape_cols] - shape[:, shape_cols]
    level = np.full((s_count, n), np.nan)
    level_of_deviation, _ = rolling_stats(deviation, window, level_cols, min_count, False)
    level[:, level_cols] = shape[:, level_cols] + level_of_deviation
    lag, spread = rolling_stats(y - level, window, cols, min_count, True)
    expected[:, cols] = level[:, cols] + lag
    scale[:, cols] = MAD_TO_SIGMA * spread
    return np.where(need, expected, np.nan), np.where(need, scale, np.nan)
