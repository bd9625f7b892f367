"""Seasonal anomaly detection on plain arrays with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from engine.anomaly.profiles import DAILY, RECENT, WEEKLY
from engine.anomaly.scoring import (
    DAY,
    WEEK,
    AnomalyParams,
    detect,
    intervals,
    scale_floor,
    signal_values,
    to_slots,
)

RES = 300
PER_DAY = DAY // RES
PER_WEEK = WEEK // RES
# A Monday 00:00 UTC, so "weekend" below means Saturday and Sunday.
MONDAY = 1_704_067_200


def seasonal_rate(n_slots: int, base: float = 40.0, start: int = MONDAY) -> np.ndarray:
    """Requests per second with a strong daily cycle (night at 20 % of the peak) and
    quieter weekends (55 % of a weekday)."""
    t = start + RES * np.arange(n_slots)
    hour = (t % DAY) / 3600
    daily = 0.6 + 0.4 * np.cos(2 * np.pi * (hour - 14) / 24)  # peak 14:00, trough 02:00 → 0.2
    weekday = ((t - MONDAY) // DAY) % 7
    weekly = np.where(weekday >= 5, 0.55, 1.0)
    return base * daily * weekly


def poisson_traffic(rate: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(rate * RES) / RES


def traffic_signal(total: np.ndarray) -> np.ndarray:
    return signal_values("traffic", np.zeros_like(total), total, RES)


def test_traffic_drop_without_errors_is_found_and_seasonality_is_quiet() -> None:
    """Three weeks of daily- and weekly-seasonal traffic; in week three the traffic of one
    afternoon falls to 10 % for 2 h — no errors at all. Exactly that is reported."""
    params = AnomalyParams()
    n = 3 * PER_WEEK
    rate = seasonal_rate(n)
    total = poisson_traffic(rate, seed=7)
    drop = slice(2 * PER_WEEK + 2 * PER_DAY + 15 * 12, 2 * PER_WEEK + 2 * PER_DAY + 17 * 12)
    total[drop] *= 0.1
    scores = detect(traffic_signal(total[None]), MONDAY // RES, ["low"], [0.05], params)

    found = intervals(scores)
    inside = [
        iv for iv in found if drop.start * RES + MONDAY <= iv.start <= drop.stop * RES + MONDAY
    ]
    assert len(inside) == 1
    # Fires once min_duration (10 min = 2 slots) of the drop has completed.
    assert inside[0].start == MONDAY + (drop.start + params.min_slots) * RES
    # Clears at the end of the first normal slot after the drop.
    assert inside[0].end == MONDAY + (drop.stop + 1) * RES
    assert inside[0].peak_score > 20
    # Weeks two and three are scored (week one is history); at most one false anomaly per
    # simulated week, and here none.
    others = [iv for iv in found if iv not in inside]
    assert len(others) <= 2
    assert others == []
    # Every week is scored, each slot with the profile its history supports: nothing for the
    # first three hours, then the recent level, the daily profile after two days, the weekly
    # one once two weeks of history exist (tests/test_anomaly_profiles.py).
    profile = scores.profile[0]
    assert np.all(np.isnan(scores.score[0, :36]))
    assert set(profile[36 : 2 * PER_DAY].tolist()) == {RECENT}
    assert set(profile[2 * PER_DAY + 36 : 2 * PER_WEEK].tolist()) == {DAILY}
    assert set(profile[2 * PER_WEEK :].tolist()) == {WEEKLY}
    assert np.isfinite(scores.score[0, PER_WEEK + PER_DAY :]).mean() > 0.99


def test_six_quiet_weeks_raise_at_most_one_false_anomaly_per_week() -> None:
    params = AnomalyParams()
    n = 6 * PER_WEEK
    totals = np.vstack(
        [
            poisson_traffic(seasonal_rate(n, base), seed)
            for base, seed in [(40, 1), (3, 2), (400, 3), (0.3, 4)]
        ]
    )
    # Growth of 15 % over the six weeks: the recent-level correction absorbs it.
    totals *= np.linspace(1.0, 1.15, n)[None]
    scores = detect(traffic_signal(totals), MONDAY // RES, ["low"] * 4, [0.05] * 4, params)
    found = intervals(scores)
    for series in range(4):
        weeks = [int((iv.start - MONDAY) // WEEK) for iv in found if iv.series == series]
        assert all(weeks.count(w) <= 1 for w in range(6)), (series, weeks)


def test_harness_shaped_sine_seasonality_without_noise_is_quiet() -> None:
    """The harness's deterministic load: daily and weekly sines, whole events only."""
    n = 4 * PER_WEEK
    t = RES * np.arange(n)
    rate = 10 * (1 + 0.5 * np.sin(2 * np.pi * t / DAY) + 0.3 * np.sin(2 * np.pi * t / WEEK))
    total = np.floor(rate * RES) / RES
    scores = detect(traffic_signal(total[None]), 0, ["low"], [0.05], AnomalyParams())
    assert intervals(scores) == []
    assert np.nanmax(scores.score) < 2


def test_traffic_spike_is_not_a_traffic_anomaly_but_an_error_spike_is() -> None:
    params = AnomalyParams()
    n = 3 * PER_WEEK
    total = poisson_traffic(seasonal_rate(n), seed=11)
    spike = slice(n - PER_DAY, n - PER_DAY + 24)
    total[spike] *= 5
    bad = np.random.default_rng(5).binomial((total * RES).astype(int), 0.001) / RES
    bad[spike] = total[spike] * 0.05  # 5 % errors while the budget is 0.1 %
    y = np.vstack([traffic_signal(total), signal_values("errors", bad, total, RES)])
    floors = [scale_floor("traffic", 0.001), scale_floor("errors", 0.001)]
    scores = detect(y, MONDAY // RES, ["low", "high"], floors, params)
    found = intervals(scores)
    assert [iv.series for iv in found if iv.series == 0] == []
    errors = [iv for iv in found if iv.series == 1]
    assert len(errors) == 1
    assert errors[0].start == MONDAY + (spike.start + params.min_slots) * RES


def test_latency_shift_is_found() -> None:
    """The share of requests slower than the SLO threshold goes from ~1 % to 6 %."""
    params = AnomalyParams()
    n = 3 * PER_WEEK
    total = poisson_traffic(seasonal_rate(n), seed=3)
    rng = np.random.default_rng(4)
    share = np.full(n, 0.01)
    shift = slice(n - 2 * PER_DAY, n - 2 * PER_DAY + 36)
    share[shift] = 0.06
    slow = rng.binomial((total * RES).astype(int), share) / RES
    y = signal_values("latency", slow, total, RES)[None]
    scores = detect(y, MONDAY // RES, ["high"], [scale_floor("latency", 0.01)], params)
    found = intervals(scores)
    assert len(found) == 1
    assert found[0].start == MONDAY + (shift.start + params.min_slots) * RES
    assert found[0].end == MONDAY + (shift.stop + 1) * RES


def test_a_dip_shorter_than_min_duration_is_not_an_anomaly() -> None:
    params = AnomalyParams(min_duration=900)  # three slots
    n = 3 * PER_WEEK
    total = poisson_traffic(seasonal_rate(n), seed=9)
    total[n - 100 : n - 98] *= 0.05  # two slots
    scores = detect(traffic_signal(total[None]), MONDAY // RES, ["low"], [0.05], params)
    assert scores.breach[0, n - 100 : n - 98].all()
    assert not scores.active.any()


def test_missing_data_has_no_score_and_never_alerts() -> None:
    n = 3 * PER_WEEK
    total = poisson_traffic(seasonal_rate(n), seed=1)
    total[n - PER_DAY :] = np.nan  # the scrape target vanished
    scores = detect(traffic_signal(total[None]), MONDAY // RES, ["low"], [0.05], AnomalyParams())
    assert np.all(np.isnan(scores.score[0, n - PER_DAY :]))
    assert not scores.active[0, n - PER_DAY :].any()
    ratio = signal_values("errors", np.zeros(3), np.array([0.0, np.nan, 2.0]), RES)
    assert np.isnan(ratio[0]) and np.isnan(ratio[1]) and ratio[2] == 0.0


def test_to_slots_averages_aligned_complete_slots() -> None:
    # 1-minute steps starting 2 minutes into a 5-minute slot; the last slot is incomplete.
    start = MONDAY + 120
    rates = np.arange(14, dtype=float)[None]
    rates[0, 4] = np.nan
    first, slots = to_slots(start, 60, rates, RES)
    assert first == MONDAY // RES
    # slot 0: samples 0..2; slot 1: samples 3..7 (4 is missing); slot 2: 8..12; 13 is cut.
    np.testing.assert_allclose(slots[0], [1.0, (3 + 5 + 6 + 7) / 4, 10.0])


def test_state_index_reads_the_last_completed_slot() -> None:
    n = PER_WEEK
    scores = detect(np.zeros((1, n)), 100, ["low"], [0.05], AnomalyParams())
    times = np.array([100 * RES, 101 * RES, 101 * RES + 299, 102 * RES])
    np.testing.assert_array_equal(scores.state_index(times), [-1, 0, 0, 1])


def test_params_reject_misaligned_resolution() -> None:
    with pytest.raises(ValueError, match="divide a day"):
        AnomalyParams(resolution=7)
    assert AnomalyParams().min_slots == 2
    # Weekly profile, correction and scale pools, and the band back to its first slot.
    assert AnomalyParams(history_weeks=3).warmup_seconds == 3 * WEEK + 14 * DAY + 55 * 60
