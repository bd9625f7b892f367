"""Window sums by prefix sums, checked against plain loops."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.windows import (
    TierGrid,
    normalize_step_counts,
    plan_window,
    prefix_sums,
    rolling_window_sums,
    sum_planned,
)


def naive_window_sums(counts: np.ndarray, steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
    n_series, n_steps = counts.shape
    sums = np.full((len(steps), n_series, n_steps), np.nan)
    covered = np.zeros((len(steps), n_series, n_steps), dtype=int)
    for w, k in enumerate(steps):
        for s in range(n_series):
            for t in range(n_steps):
                part = counts[s, max(0, t - k + 1) : t + 1]
                seen = part[~np.isnan(part)]
                covered[w, s, t] = seen.size
                if seen.size:
                    sums[w, s, t] = seen.sum()
    return sums, covered


def test_rolling_sums_match_naive_loops_with_gaps() -> None:
    rng = np.random.default_rng(7)
    counts = rng.exponential(50.0, size=(4, 300))
    counts[rng.random(counts.shape) < 0.15] = np.nan
    counts[2, 100:180] = np.nan  # a long gap: short windows inside it have no data
    counts[3, :] = np.nan  # a series that never reported
    steps = [1, 5, 60, 299, 1000]  # the last is longer than the history
    sums, covered = rolling_window_sums(counts, steps)
    expected, expected_covered = naive_window_sums(counts, steps)
    np.testing.assert_array_equal(covered, expected_covered)
    np.testing.assert_array_equal(np.isnan(sums), np.isnan(expected))
    np.testing.assert_allclose(sums, expected, rtol=1e-10, equal_nan=True)
    assert np.isnan(sums[1, 2, 150])  # 5-step window inside the gap: no data, not 0
    assert np.all(np.isnan(sums[:, 3, :]))


def test_window_of_zeros_after_errors_is_exactly_zero() -> None:
    counts = np.array([[0.1, 0.7, 1e9 / 3, 0.0, 0.0, 0.0]])
    sums, _ = rolling_window_sums(counts, [3])
    assert sums[0, 0, 5] == 0.0  # not 1e-7 of rounding noise from the earlier big value


def test_rejects_non_positive_windows() -> None:
    with pytest.raises(ValueError, match="whole numbers of steps"):
        rolling_window_sums(np.zeros((1, 3)), [0])


def test_normalize_treats_missing_bad_with_traffic_as_zero() -> None:
    bad = np.array([np.nan, np.nan, 2.0, 1.0])
    total = np.array([10.0, np.nan, np.nan, 5.0])
    b, t = normalize_step_counts(bad, total)
    np.testing.assert_array_equal(b, [0.0, np.nan, np.nan, 1.0])
    np.testing.assert_array_equal(t, [10.0, np.nan, np.nan, 5.0])


def test_prefix_sums_count_observed_steps() -> None:
    sums, observed = prefix_sums(np.array([[1.0, np.nan, 2.0]]))
    np.testing.assert_array_equal(sums, [[0.0, 1.0, 1.0, 3.0]])
    np.testing.assert_array_equal(observed, [[0, 1, 1, 2]])


def _tiers_from_minutes(minutes: np.ndarray, at: int, steps: list[int], lengths: list[int]):
    """Aggregate per-minute counts [S, M] (the last minute ending at `at`) into epoch-aligned
    tiers stored the way the cache stores them: time-major rings with a has-data mask."""
    n_minutes = minutes.shape[1]
    ends = at - 60 * np.arange(n_minutes)[::-1]
    grids, counts, present = [], [], []
    for step, length in zip(steps, lengths, strict=True):
        grid = TierGrid(step=step, end=(at // step) * step, length=length)
        ring = np.zeros((length, minutes.shape[0]))
        has = np.zeros((length, minutes.shape[0]), dtype=bool)
        for number in range(grid.oldest, grid.newest + 1):
            inside = (ends > (number - 1) * step) & (ends <= number * step)
            if inside.sum() == step // 60:
                ring[number % length] = minutes[:, inside].sum(axis=1)
                has[number % length] = True
        grids.append(grid)
        counts.append(ring)
        present.append(has)
    return grids, counts, present


STEPS = [60, 300, 3600]


@pytest.mark.parametrize("window_minutes", [1, 5, 30, 60, 360, 1440, 4320, 43200])
@pytest.mark.parametrize("offset_minutes", [0, 7, 59])
def test_composed_windows_equal_fine_sum_for_constant_traffic(
    window_minutes: int, offset_minutes: int
) -> None:
    at = 1_700_000_000 // 3600 * 3600 + offset_minutes * 60
    minutes = np.full((2, 43200 + 120), 60.0)
    minutes[1] *= 3
    grids, counts, present = _tiers_from_minutes(minutes, at, STEPS, [420, 876, 721])
    plan = plan_window(at, window_minutes * 60, grids)
    got, seconds = sum_planned(plan, counts, present, STEPS)
    np.testing.assert_allclose(got, [60.0 * window_minutes, 180.0 * window_minutes], rtol=1e-12)
    np.testing.assert_allclose(seconds, window_minutes * 60)


def test_composed_window_with_a_step_change_is_exact_on_aligned_edges() -> None:
    # Poisson noise per minute; a window whose start is on the 1h grid is reproduced exactly.
    at = 1_700_000_000 // 3600 * 3600 + 23 * 60
    rng = np.random.default_rng(3)
    minutes = rng.poisson(100, size=(1, 5000)).astype(float)
    grids, counts, present = _tiers_from_minutes(minutes, at, STEPS, [420, 876, 80])
    window = 70 * 3600 + 23 * 60  # starts exactly on an hour boundary
    got, _ = sum_planned(plan_window(at, window, grids), counts, present, STEPS)
    assert got[0] == pytest.approx(minutes[0, -window // 60 :].sum(), rel=1e-12)


def test_composed_window_without_data_is_nan_and_gaps_count_as_missing() -> None:
    at = 1_700_000_000 // 3600 * 3600
    minutes = np.full((2, 500), 10.0)
    grids, counts, present = _tiers_from_minutes(minutes, at, STEPS, [420, 876, 80])
    present[0][:, 0] = False  # SLO 0 never reported at 1m resolution
    counts[0][:, 0] = 0.0
    got, seconds = sum_planned(plan_window(at, 1800, grids), counts, present, STEPS)
    assert np.isnan(got[0]) and seconds[0] == 0
    assert got[1] == 300.0 and seconds[1] == 1800


def test_plan_uses_finest_tier_that_reaches_the_window_start() -> None:
    at = 1_700_000_000 // 3600 * 3600 + 17 * 60
    grids = [
        TierGrid(60, at, 420),
        TierGrid(300, at // 300 * 300, 876),
        TierGrid(3600, at // 3600 * 3600, 721),
    ]
    assert {s.tier for s in plan_window(at, 6 * 3600, grids).segments} == {0}
    one_day = plan_window(at, 86400, grids)
    assert {s.tier for s in one_day.segments} == {0, 1}  # 5m resolution, not 1h
    thirty_days = plan_window(at, 30 * 86400, grids)
    assert [s.tier for s in thirty_days.segments] == [0, 1, 2]
    assert thirty_days.partial is not None and thirty_days.partial[0] == 2
    assert thirty_days.partial[2] == pytest.approx((60 - 17) / 60)
