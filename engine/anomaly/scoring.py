"""Seasonal anomaly detection: the outages an error-ratio SLO cannot see.

A service whose clients cannot reach it raises no errors — its traffic just falls away. Burn
rates are blind to that, so traffic, error ratio and latency are also compared with what is
*normal for this time of the week*. Everything here is pure numpy over `S × N` arrays (S
series, N slots); no I/O, no clock.

The method, per series, on a grid of fixed slots (default 5 minutes, aligned to the Unix
epoch so phases are stable across runs):

1. **Signal.** Traffic is compared on a log scale (`log(rate + one event per slot)`), so a
   daily swing from 20 to 200 req/s is a shape, not noise, and a drop to 10 % is −2.3 whatever
   the volume. Error ratio and latency (the latency SLI's share of slow requests) stay linear.
2. **Weekly profile.** `W[t]` = median of the same slot 1, 2 … `history_weeks` weeks ago.
   This carries both daily and weekly seasonality (Monday 09:00 is compared with Mondays at
   09:00). It scores a slot once two weeks exist (see Profiles); with three (the default
   `history_weeks`) a single bad week in the history cannot drag the baseline.
3. **Recent-level correction.** `C[t]` = median over the last `recent_days` days of
   `y[t − d·day] − W[t − d·day]`, i.e. how far the same time of day has recently run above
   or below its weekly profile (growth, a migration, a holiday week). Used only when at least
   three days are available so one bad day cannot move it. Expected value `E = W + C`.
4. **Residual scale.** `σ[t]` = 1.4826 × the median absolute residual `|y − E|` over the same
   phase-of-day band (default 1 hour) on each of the previous `recent_days` days — a robust
   standard deviation that is phase-aware, because night-time traffic is sparser and noisier
   than the daily peak. A floor keeps a perfectly regular series from turning every tiny
   wobble into a huge score (traffic: 0.05 on the log scale ≈ 5 %, and never below the
   counting noise of the requests expected in the slot; ratios: a quarter of the SLO's
   error budget — see `scale_floor`).
5. **Score.** Robust z = `(y − E) / max(σ, floor)`, signed so that positive is the harmful
   direction (traffic low, errors and latency high). A slot *breaches* when the score is at
   least `sensitivity` (default 4: far outside the ±3 of ordinary noise, and for traffic at
   the floor a drop of ≥ 18 %). An anomaly is *active* once `min_duration` of consecutive
   slots breach, and stays active until a slot stops breaching.

**Profiles.** The method above is the `weekly` profile. A young history gets a poorer one
(`engine.anomaly.profiles`): each slot is scored with the richest profile its history
supports — `weekly` once the slot has `min(2, history_weeks)` same-time-of-week values and
three days of residuals for its scale (so from two weeks of history on), else `daily` (the
same time of day over the last days, moved to today's level) from two days on, else
`recent` (the level of the last hours) from three hours on. `AnomalyScores.profile` says
which; a young profile has a wider scale floor, since it cannot know a quiet weekend.

No data is its own state: a slot without samples has no score and never breaches, and
history gaps just leave fewer values for the medians (a slot whose weekly history has a gap
falls back to a younger profile). Full strength needs `history_weeks` weeks + 2 ×
`recent_days` days + `band` − 1 slot (`AnomalyParams.warmup_seconds`), and a slot's `active`
and `sustained` flags read the slots before it as well (`AnomalySeries.history_slots`).

A slot is scored once it is complete, so at an evaluation time `t` the state is that of the
slot that ended at or before `t` (`state_index`); detection therefore lags the signal by up
to one slot on top of `min_duration`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.anomaly.profiles import (
    DAILY,
    MAD_TO_SIGMA,
    NO_PROFILE,
    PROFILES,
    RECENT,
    WEEKLY,
    Profile,
    level_baseline,
    profile_floor,
)

Signal = Literal["traffic", "errors", "latency"]
Direction = Literal["low", "high"]

SIGNALS: tuple[Signal, ...] = ("traffic", "errors", "latency")
# The side of the baseline that hurts users: missing traffic, extra errors, extra slowness.
DIRECTION: dict[Signal, Direction] = {"traffic": "low", "errors": "high", "latency": "high"}

DAY = 86_400
WEEK = 7 * DAY
# Traffic scale floor on the log scale: ~5 % relative change.
TRAFFIC_SCALE_FLOOR = 0.05
# Ratio scale floor as a share of the SLO's error budget.
RATIO_FLOOR_BUDGET_SHARE = 0.25
# The level correction needs this many days so that one unusual day cannot move it.
_MIN_CORRECTION_DAYS = 3
# The weekly profile scores a slot once it has this many same-time-of-week values (at most
# `history_weeks`) and its scale pool this many days of residuals: one week of history is a
# single noisy value, no better than the daily profile and blind to a bad week.
WEEKLY_MIN_WEEKS = 2
WEEKLY_SCALE_DAYS = 3
# Share of a slot's steps that must have data for the slot to have a value (see to_slots).
MIN_SLOT_COVERAGE = 0.75
# Series per block when scoring: bounds memory (the scale pools are S × days × day × days).
_BLOCK = 64


@dataclass(frozen=True)
class AnomalyParams:
    """How sensitive the detector is and how much history it reads. Times in seconds."""

    sensitivity: float = 4.0
    min_duration: float = 600.0
    history_weeks: int = 3
    resolution: int = 300
    recent_days: int = 7
    band: int = 3600
    # The recent and daily profiles' level and scale window (engine.anomaly.profiles).
    level_window: int = 3 * 3600
    # Profiles a slot may be scored with (all by default; tests force one).
    profiles: tuple[Profile, ...] = PROFILES

    def __post_init__(self) -> None:
        if self.resolution <= 0 or DAY % self.resolution:
            raise ValueError("resolution must divide a day evenly, e.g. 60, 300 or 900 seconds")
        if self.band % self.resolution or DAY % self.band:
            raise ValueError("band must be a multiple of the resolution that divides a day")
        if self.level_window < self.resolution or self.level_window % self.resolution:
            raise ValueError("level_window must be a whole number of slots")
        if not self.profiles or set(self.profiles) - set(PROFILES):
            raise ValueError(f"profiles must be some of {', '.join(PROFILES)}")
        if self.history_weeks < 1 or self.recent_days < 1:
            raise ValueError("history_weeks and recent_days must be at least 1")
        if self.sensitivity <= 0 or self.min_duration < 0:
            raise ValueError("sensitivity must be positive and min_duration non-negative")

    @property
    def slots_per_day(self) -> int:
        return DAY // self.resolution

    @property
    def slots_per_week(self) -> int:
        return WEEK // self.resolution

    @property
    def min_slots(self) -> int:
        """Consecutive breaching slots that make an anomaly (at least one)."""
        return max(1, math.ceil(self.min_duration / self.resolution))

    @property
    def lookback_slots(self) -> int:
        """Slots before a scored slot that its score depends on: the weekly profile, then the
        correction and the scale pools (`recent_days` each), and `band − 1` more because a
        slot late in its band pools residuals from the band's first slot onwards."""
        return (
            self.history_weeks * self.slots_per_week
            + 2 * self.recent_days * self.slots_per_day
            + self.band // self.resolution
            - 1
        )

    @property
    def warmup_seconds(self) -> int:
        """History before the first slot to score for full-strength baselines."""
        return self.lookback_slots * self.resolution


@dataclass(frozen=True)
class AnomalyScores:
    """Per slot: observed signal, expected value, scale, score, breach and active flags.

    Column `j` is the slot `[ (first_slot + j) × resolution, … + resolution )` in Unix seconds.
    `observed`/`expected` are on the signal scale (log for traffic).
    """

    first_slot: int
    resolution: int
    observed: np.ndarray
    expected: np.ndarray
    scale: np.ndarray
    score: np.ndarray
    breach: np.ndarray
    active: np.ndarray
    # Per slot, the profile that scored it: an index into PROFILES, NO_PROFILE without a score.
    profile: np.ndarray

    def profile_name(self, series: int, column: int) -> Profile | None:
        code = int(self.profile[series, column]) if column >= 0 else NO_PROFILE
        return None if code == NO_PROFILE else PROFILES[code]

    @property
    def slot_ends(self) -> np.ndarray:
        n = self.observed.shape[1]
        return (self.first_slot + 1 + np.arange(n)) * self.resolution

    def state_index(self, times: np.ndarray) -> np.ndarray:
        """Column holding the state at each evaluation time (the last slot completed by
        then); -1 where no scored slot has completed yet."""
        idx = np.floor_divide(np.asarray(times, dtype=np.int64), self.resolution) - 1
        idx = idx - self.first_slot
        idx[(idx < 0) | (idx >= self.observed.shape[1])] = -1
        return idx


@dataclass(frozen=True)
class AnomalyInterval:
    """One anomaly of one series: fired at the end of the slot that completed
    `min_duration`, cleared at the end of the first slot that no longer breached."""

    series: int
    start: float
    end: float | None
    peak_score: float


def scale_floor(signal: Signal, error_budget: float) -> float:
    """Smallest residual scale a series may have (see the module docstring)."""
    if signal == "traffic":
        return TRAFFIC_SCALE_FLOOR
    return RATIO_FLOOR_BUDGET_SHARE * error_budget


# ---------------------------------------------------------------------------------------
# From per-step rates to slot signals


def to_slots(
    start: float, step: float, rates: np.ndarray, resolution: int
) -> tuple[int, np.ndarray]:
    """Average per-step rates `(S, T)` (sample `i` at `start + i·step`) into epoch-aligned
    slots. Returns `(first_slot, (S, N))`. A trailing slot whose last sample is beyond the
    data is dropped (it is not complete yet).

    A slot is NaN unless at least `MIN_SLOT_COVERAGE` of its steps have data. A scrape gap
    (a Prometheus restart, a target unreachable) leaves the steps inside it without data,
    and the steps at its edges with a `rate()` over part of their range only — read as
    less traffic. Averaging only the steps with data, and only in slots mostly covered, keeps
    a gap from looking like a traffic drop: over 15 s scrapes, 120 random gaps of 30 s to
    10 min add no breach with 1m steps (with 5m steps, one per slot: 26 and 4 anomalies)."""
    rates = np.asarray(rates, dtype=np.float64)
    s_count, t_count = rates.shape
    if t_count == 0:
        return int(start // resolution), np.empty((s_count, 0))
    times = start + step * np.arange(t_count)
    slot = np.floor_divide(times, resolution).astype(np.int64)
    first_slot = int(slot[0])
    last = int(slot[-1])
    if times[-1] + step < (last + 1) * resolution - 1e-9:
        last -= 1
    keep = slot <= last
    slot, values = slot[keep] - first_slot, rates[:, keep]
    n = last - first_slot + 1
    if n <= 0:
        return first_slot, np.empty((s_count, 0))
    valid = np.isfinite(values)
    # Samples are in time order, so each slot is one contiguous run: reduceat sums runs.
    occupied, starts = np.unique(slot, return_index=True)
    sums = np.add.reduceat(np.where(valid, values, 0.0), starts, axis=1)
    counts = np.add.reduceat(valid.astype(np.float64), starts, axis=1)
    steps = np.diff(np.append(starts, slot.size)).astype(np.float64)
    covered = (counts > 0) & (counts >= MIN_SLOT_COVERAGE * steps - 1e-9)
    out = np.full((s_count, n), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, occupied] = np.where(covered, sums / np.maximum(counts, 1), np.nan)
    return first_slot, out


def signal_values(
    signal: Signal, bad_rate: np.ndarray, total_rate: np.ndarray, resolution: int
) -> np.ndarray:
    """Slot-mean bad and total event rates → the signal the detector compares.

    Ratios are taken from event sums (mean bad ÷ mean total), never averaged ratios; a slot
    without traffic has no error ratio (NaN), not 0."""
    total = np.asarray(total_rate, dtype=np.float64)
    if signal == "traffic":
        # One event per slot keeps log() finite at zero traffic and damps noise in sparse
        # series, where a single request more or less is not news.
        return np.log(np.maximum(total, 0.0) + 1.0 / resolution)
    bad = np.asarray(bad_rate, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.clip(bad, 0.0, None) / np.where(total > 0, total, 1), np.nan)


# ---------------------------------------------------------------------------------------
# Robust statistics over small stacks


def _nanmedian(stack: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Median over axis 0 ignoring NaN; NaN where fewer than `min_count` values exist.

    Sorting puts NaN last, so the median of the `n` valid values is read at (n−1)//2 and
    n//2 — much faster than np.nanmedian for the short stacks used here."""
    ordered = np.sort(stack, axis=0)
    n = np.sum(~np.isnan(stack), axis=0)
    lo = np.clip((n - 1) // 2, 0, None)[None]
    hi = np.clip(n // 2, 0, stack.shape[0] - 1)[None]
    med = 0.5 * (
        np.take_along_axis(ordered, lo, axis=0)[0] + np.take_along_axis(ordered, hi, axis=0)[0]
    )
    return np.where(n >= min_count, med, np.nan)


def _lag(y: np.ndarray, k: int) -> np.ndarray:
    """`y` shifted right by `k` slots (value from k slots earlier), NaN where unknown."""
    out = np.full_like(y, np.nan)
    if k < y.shape[1]:
        out[:, k:] = y[:, : y.shape[1] - k]
    return out


def seasonal_baseline(
    y: np.ndarray, first_slot: int, params: AnomalyParams, scale_days: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Expected value `E` and raw residual scale `σ` (before the floor) for every slot; σ
    is NaN where fewer than `scale_days` days of the band's residuals exist."""
    per_week, per_day = params.slots_per_week, params.slots_per_day
    profile = _nanmedian(
        np.stack([_lag(y, k * per_week) for k in range(1, params.history_weeks + 1)])
    )
    deviation = y - profile
    correction = _nanmedian(
        np.stack([_lag(deviation, d * per_day) for d in range(1, params.recent_days + 1)]),
        min_count=_MIN_CORRECTION_DAYS,
    )
    expected = profile + np.where(np.isnan(correction), 0.0, correction)
    scale = _band_scale(np.abs(y - expected), first_slot, params, scale_days)
    return expected, scale


def _band_scale(
    abs_residual: np.ndarray, first_slot: int, params: AnomalyParams, days_needed: int = 1
) -> np.ndarray:
    """1.4826 × median |residual| over the same phase-of-day band on each previous day."""
    s_count, n = abs_residual.shape
    per_day = params.slots_per_day
    band = params.band // params.resolution
    bands = per_day // band
    lead = first_slot % per_day
    days = math.ceil((lead + n) / per_day)
    padded = np.full((s_count, days * per_day), np.nan)
    padded[:, lead : lead + n] = abs_residual
    by_day = padded.reshape(s_count, days, bands, band)
    recent = params.recent_days
    # pool[:, day, b] holds the band's residuals from days day−recent … day−1.
    pool = np.full((s_count, days, bands, recent, band), np.nan)
    for d in range(1, recent + 1):
        if d < days:
            pool[:, d:, :, d - 1, :] = by_day[:, : days - d]
    pool = pool.reshape(s_count, days, bands, recent * band)
    # At least one full day's band of residuals, so the scale is not a guess from a handful.
    scale = MAD_TO_SIGMA * _nanmedian(np.moveaxis(pool, 3, 0), min_count=band * days_needed)
    per_slot = np.repeat(scale, band, axis=2).reshape(s_count, days * per_day)
    return per_slot[:, lead : lead + n]


def run_lengths(flags: np.ndarray) -> np.ndarray:
    """Length of the run of True ending at each position (0 where False)."""
    n = flags.shape[1]
    idx = np.broadcast_to(np.arange(n), flags.shape)
    last_false = np.maximum.accumulate(np.where(flags, -1, idx), axis=1)
    return np.where(flags, idx - last_false, 0)


# ---------------------------------------------------------------------------------------
# Detection


def detect(
    y: np.ndarray,
    first_slot: int,
    directions: Sequence[Direction],
    floors: Sequence[float] | np.ndarray,
    params: AnomalyParams,
    score_from: int = 0,
    counts: Sequence[bool] | None = None,
) -> AnomalyScores:
    """Score every slot of `y` (S, N) with the richest profile its history supports and
    flag anomalies. `floors` are the weekly profile's scale floors (see `scale_floor`).

    Slots before column `score_from` are only scored where the weekly profile can: a caller
    that reads the newest states only (the live tracker) spares the young profiles' work on
    history it never reads. A slot's values never depend on which other slots are scored.

    `counts`: per series, whether `y` is a traffic signal (log of events per slot + 1); its
    scale is then never below the counting noise of the expected events (`_counting_noise`)."""
    y = np.asarray(y, dtype=np.float64)
    s_count = y.shape[0]
    if len(directions) != s_count or len(floors) != s_count:
        raise ValueError("need one direction and one floor per series")
    sign = np.array([-1.0 if d == "low" else 1.0 for d in directions])[:, None]
    floor = np.asarray(floors, dtype=np.float64)[:, None]
    expected = np.full_like(y, np.nan)
    raw_scale = np.full_like(y, np.nan)
    profile = np.full(y.shape, NO_PROFILE, dtype=np.int8)
    for lo in range(0, s_count, _BLOCK):
        hi = min(lo + _BLOCK, s_count)
        expected[lo:hi], raw_scale[lo:hi], profile[lo:hi] = _profiled_baseline(
            y[lo:hi], first_slot, params, score_from
        )
    floor = profile_floor(floor, profile)
    if counts is not None:
        floor = np.maximum(floor, _counting_noise(expected, counts, params.resolution))
    scale = np.where(np.isnan(raw_scale), np.nan, np.maximum(raw_scale, floor))
    with np.errstate(invalid="ignore"):
        score = sign * (y - expected) / scale
        breach = score >= params.sensitivity
    profile[np.isnan(score)] = NO_PROFILE
    active = run_lengths(breach) >= params.min_slots
    return AnomalyScores(
        first_slot, params.resolution, y, expected, scale, score, breach, active, profile
    )


def _counting_noise(expected: np.ndarray, counts: Sequence[bool], resolution: int) -> np.ndarray:
    """Standard deviation of log(events + 1) for Poisson events with the expected count: a
    slot expecting half a request sees 0 or 1 of them, which is noise, not a drop — however
    still the history was (a median absolute deviation of such data is often 0). Only for
    the series flagged in `counts`; 0 elsewhere."""
    with np.errstate(over="ignore", invalid="ignore"):
        events = np.clip(np.exp(expected) * resolution - 1.0, 0.0, None)
        noise = np.sqrt(events) / (events + 1.0)
    flagged = np.asarray(counts, dtype=bool)[:, None]
    return np.where(flagged & ~np.isnan(noise), noise, 0.0)


def _profiled_baseline(
    y: np.ndarray, first_slot: int, params: AnomalyParams, score_from: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected value, raw scale and profile code per slot: weekly where it has a value,
    else daily, else recent (each only where allowed by `params.profiles`)."""
    expected = np.full_like(y, np.nan)
    scale = np.full_like(y, np.nan)
    profile = np.full(y.shape, NO_PROFILE, dtype=np.int8)
    todo = ~np.isnan(y)
    if "weekly" in params.profiles:
        weekly, weekly_scale = seasonal_baseline(y, first_slot, params, WEEKLY_SCALE_DAYS)
        weeks = sum(
            (~np.isnan(_lag(y, k * params.slots_per_week))).astype(np.int8)
            for k in range(1, params.history_weeks + 1)
        )
        done = (
            todo
            & ~np.isnan(weekly)
            & ~np.isnan(weekly_scale)
            & (weeks >= min(WEEKLY_MIN_WEEKS, params.history_weeks))
        )
        expected[done], scale[done], profile[done] = weekly[done], weekly_scale[done], WEEKLY
        todo &= ~done
    todo[:, : max(score_from, 0)] = False
    window = params.level_window // params.resolution
    for code, name in ((DAILY, "daily"), (RECENT, "recent")):
        if name not in params.profiles or not todo.any():
            continue
        e, sc = level_baseline(
            y, name == "daily", todo, window, params.slots_per_day, params.recent_days
        )
        done = todo & ~np.isnan(e) & ~np.isnan(sc)
        expected[done], scale[done], profile[done] = e[done], sc[done], code
        todo &= ~done
    return expected, scale, profile


def intervals(scores: AnomalyScores, from_slot: int | None = None) -> list[AnomalyInterval]:
    """Active anomalies as intervals, optionally only those still active or firing at or
    after slot `from_slot` (absolute slot number)."""
    active = scores.active
    s_count, n = active.shape
    out: list[AnomalyInterval] = []
    padded = np.zeros((s_count, n + 2), dtype=np.int8)
    padded[:, 1:-1] = active
    edges = np.diff(padded, axis=1)
    ends = scores.slot_ends
    for s in range(s_count):
        rises = np.flatnonzero(edges[s] == 1)
        falls = np.flatnonzero(edges[s] == -1)
        for a, b in zip(rises, falls, strict=True):
            # Fires at the end of slot a; clears at the end of slot b (the first quiet slot).
            if from_slot is not None and scores.first_slot + b <= from_slot:
                continue
            end = float(ends[b]) if b < n else None
            peak = float(np.nanmax(scores.score[s, a:b]))
            out.append(AnomalyInterval(s, float(ends[a]), end, peak))
    return out
