"""Error ratios, burn rates and event-weighted budgets."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.budget import (
    budget_consumed,
    burn_rate,
    error_budget_remaining,
    error_ratio,
    time_to_exhaustion,
)

THIRTY_DAYS = 30 * 86400


def test_error_ratio_without_events_is_no_data_not_zero_or_one() -> None:
    ratio = error_ratio(
        np.array([0.0, 1.0, np.nan, 5.0, 0.0]), np.array([0.0, np.nan, 10.0, 10.0, 8.0])
    )
    assert np.isnan(ratio[0]) and np.isnan(ratio[1])
    assert np.isnan(ratio[2])  # bad unknown, total known: the ratio is unknown too
    assert ratio[3] == 0.5 and ratio[4] == 0.0


def test_burn_rate_broadcasts_per_slo_budgets() -> None:
    ratio = np.array([[0.001, 0.0144], [0.01, 0.5]])
    budgets = np.array([0.001, 0.01])
    np.testing.assert_allclose(burn_rate(ratio, budgets[:, None]), [[1.0, 14.4], [1.0, 50.0]])


def test_budget_is_event_weighted_not_an_average_of_step_ratios() -> None:
    # A 99.9 % SLO over a day: 23 busy hours at 0.05 % errors, one quiet night hour in which
    # 2 of 20 requests fail. Sloth's period rule averages the 24 hourly ratios.
    total = np.array([36_000.0] * 23 + [20.0])
    bad = np.array([18.0] * 23 + [2.0])
    remaining = error_budget_remaining(bad.sum(), total.sum(), 0.001)
    event_weighted = 1 - ((18 * 23 + 2) / (36_000 * 23 + 20)) / 0.001
    assert remaining == pytest.approx(event_weighted)
    assert remaining == pytest.approx(0.4976, abs=1e-4)  # half the budget is left
    averaged_ratio = np.mean(bad / total)
    sloth_remaining = 1 - averaged_ratio / 0.001
    assert sloth_remaining < -3  # the averaged ratio claims the budget is blown 4× over
    assert budget_consumed(bad.sum(), total.sum(), 0.001) == pytest.approx(1 - event_weighted)


def test_remaining_is_negative_when_overspent_and_nan_without_events() -> None:
    remaining = error_budget_remaining(np.array([30.0, 0.0]), np.array([10_000.0, 0.0]), 0.001)
    assert remaining[0] == pytest.approx(-2.0)
    assert np.isnan(remaining[1])


@pytest.mark.parametrize(
    ("objective", "expected_seconds"),
    [(0.99, 7.2 * 3600), (0.999, 43.2 * 60), (0.9999, 4.32 * 60), (0.99999, 25.92)],
)
def test_time_to_exhaust_a_full_budget_at_total_outage(
    objective: float, expected_seconds: float
) -> None:
    budget = 1 - objective
    burn = burn_rate(1.0, budget)
    assert time_to_exhaustion(1.0, burn, THIRTY_DAYS) == pytest.approx(expected_seconds, rel=1e-9)


def test_a_35x_burn_exhausts_a_30d_budget_in_about_20_6_hours() -> None:
    assert time_to_exhaustion(1.0, 35.0, THIRTY_DAYS) / 3600 == pytest.approx(20.57, abs=0.01)


def test_time_to_exhaustion_uses_what_remains_and_is_none_when_sustainable() -> None:
    seconds = time_to_exhaustion(
        np.array([0.5, 0.5, 0.5, 0.0, -1.0, np.nan]),
        np.array([10.0, 1.0, 0.5, 10.0, 10.0, 10.0]),
        THIRTY_DAYS,
    )
    assert seconds[0] == pytest.approx(0.5 * THIRTY_DAYS / 10)
    assert np.all(np.isnan(seconds[1:]))  # burn ≤ 1, already spent, no data
