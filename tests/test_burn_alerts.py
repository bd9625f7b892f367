"""Multiwindow burn-rate decisions over S × R rule matrices, and the low-traffic guard."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from harness.specs import events_slo

from engine.evaluation.decisions import decide_alerts, evaluation_windows, held_reason, rule_matrix
from engine.evaluation.policy import policy_for
from engine.spec.durations import Duration
from engine.spec.models import LowTrafficSpec

D = Duration.parse


def window_events(windows, rows: list[dict[str, tuple[float, float]]]):
    """bad/total [S, W] from {window: (bad, total)} per SLO; windows not given are NaN."""
    bad = np.full((len(rows), len(windows)), np.nan)
    total = np.full((len(rows), len(windows)), np.nan)
    for s, row in enumerate(rows):
        for name, (b, t) in row.items():
            w = windows.index(D(name))
            bad[s, w], total[s, w] = b, t
    return bad, total


def busy(ratio_by_window: dict[str, float], total: float = 1e6) -> dict[str, tuple[float, float]]:
    return {w: (r * total, total) for w, r in ratio_by_window.items()}


def test_thresholds_are_strict_and_need_both_windows() -> None:
    policy = policy_for(events_slo())
    matrix = rule_matrix([policy])
    assert [float(r.threshold) for r in policy.rules] == [0.0144, 0.006, 0.003, 0.001]
    windows = matrix.windows
    rows = [
        {"1h": (144.0, 10_000.0), "5m": (1.0, 10.0)},  # exactly at 14.4×: does not fire
        {"1h": (145.0, 10_000.0), "5m": (145.0, 10_000.0)},  # just above: fires
        {"1h": (145.0, 10_000.0), "5m": (144.0, 10_000.0)},  # short window at threshold
        {"1h": (145.0, 10_000.0)},  # short window without data
    ]
    decision = decide_alerts(matrix, *window_events(windows, rows))
    assert decision.fire[:, 0].tolist() == [False, True, False, False]
    assert not decision.held.any()  # 10,000 × 0.0144 = 144 expected bad: plenty of evidence


def test_no_data_never_fires() -> None:
    matrix = rule_matrix([policy_for(events_slo())])
    bad = np.full((1, len(matrix.windows)), np.nan)
    decision = decide_alerts(matrix, bad, bad.copy())
    assert not decision.fire.any()
    zero_traffic = np.zeros((1, len(matrix.windows)))
    assert not decide_alerts(matrix, zero_traffic, zero_traffic).fire.any()


def test_mixed_policies_share_one_window_list() -> None:
    default = events_slo("a")
    tight_28d = events_slo("b", objective="99.99", period="28d")
    custom = events_slo(
        "c",
        objective="99",
        alerting={
            "ticket": False,
            "burn_rates": [
                {"severity": "page", "long_window": "2h", "short_window": "10m", "factor": 10},
                {"severity": "ticket", "long_window": "3d", "short_window": "6h", "factor": 1},
            ],
        },
    )
    policies = [policy_for(s) for s in (default, tight_28d, custom)]
    matrix = rule_matrix(policies)
    assert matrix.windows == evaluation_windows(policies)
    assert {D("10m"), D("28d"), D("30d")} <= set(matrix.windows)
    assert matrix.active.sum(axis=1).tolist() == [4, 4, 1]
    assert matrix.threshold[1, 0] == pytest.approx(0.001344)
    assert matrix.threshold[2, 0] == 0.1 and np.isnan(matrix.threshold[2, 1])
    rows = [
        busy({"1h": 0.02, "5m": 0.02}),  # 20×: a's 14.4× page fires
        busy({"1h": 0.002, "5m": 0.002, "6h": 0.002, "30m": 0.002}),  # 20× of 0.01 %
        busy({"2h": 0.09, "10m": 0.5}),  # 9× a 1 % budget: below c's 10× page
    ]
    decision = decide_alerts(matrix, *window_events(matrix.windows, rows))
    assert decision.fire[0].tolist() == [True, False, False, False]
    assert decision.fire[1].tolist() == [True, True, False, False]  # 13.44× and 5.6×
    assert not decision.fire[2].any()


def guard_case(bad: float, total: float, objective: str = "99.9", **guard: Any):
    slo = events_slo(objective=objective, alerting={"low_traffic": guard} if guard else {})
    matrix = rule_matrix([policy_for(slo)])
    rows = [{"1h": (bad, total), "5m": (bad, total)}]
    return matrix, decide_alerts(matrix, *window_events(matrix.windows, rows))


def test_guard_holds_one_failure_in_ten_requests() -> None:
    matrix, decision = guard_case(1, 10)
    assert decision.fire[0, 0] and decision.held[0, 0]
    assert decision.p_value[0, 0] == pytest.approx(0.135, abs=5e-4)
    reason = held_reason(1, 10, D("1h"), decision.p_value[0, 0], matrix.guards[0])
    assert reason.startswith("low traffic: 1 bad of 10 events in 1h, p=0.135 > 0.01")


def test_guard_releases_three_failures_in_ten_requests() -> None:
    _, decision = guard_case(3, 10)
    assert decision.fire[0, 0] and not decision.held[0, 0]
    assert decision.p_value[0, 0] == pytest.approx(3.3e-4, rel=0.02)
    assert decision.firing[0, 0]


def test_guard_needs_the_minimum_number_of_bad_events() -> None:
    # 99.999 %: one failure in ten requests is significant (p ≈ 0.0014) but is one event.
    matrix, decision = guard_case(1, 10, objective="99.999")
    assert decision.p_value[0, 0] < 0.01 and decision.held[0, 0]
    reason = held_reason(1, 10, D("1h"), decision.p_value[0, 0], matrix.guards[0])
    assert "fewer than 2 bad events" in reason
    _, passes = guard_case(2, 10, objective="99.999")
    assert not passes.held[0, 0]


def test_guard_only_applies_to_low_traffic() -> None:
    # 700 events × 0.0144 = 10.08 expected bad ≥ 10: enough traffic, no test.
    _, decision = guard_case(11, 700)
    assert decision.fire[0, 0] and not decision.held[0, 0] and np.isnan(decision.p_value[0, 0])
    # 690 × 0.0144 = 9.94 < 10: guarded; 11 bad of 690 (1.6 %) is not significant.
    _, decision = guard_case(11, 690)
    assert decision.held[0, 0]


def test_guard_can_be_disabled_or_tuned() -> None:
    _, decision = guard_case(1, 10, enabled=False)
    assert decision.fire[0, 0] and not decision.held[0, 0]
    # At 80 % confidence p = 0.135 ≤ 0.2 is evidence enough, and one bad event may do.
    _, decision = guard_case(1, 10, confidence="0.8", min_bad_events=1)
    assert decision.fire[0, 0] and not decision.held[0, 0]
    _, decision = guard_case(1, 10, confidence="0.8")
    assert decision.held[0, 0]  # still fewer than the default 2 bad events


def test_guard_rounds_fractional_counts() -> None:
    # Rates × seconds are not whole numbers: 2.6 bad of 9.6 events is tested as 3 of 10.
    _, fractional = guard_case(2.6, 9.6)
    _, whole = guard_case(3, 10)
    assert fractional.p_value[0, 0] == pytest.approx(whole.p_value[0, 0])
    assert not fractional.held[0, 0]


def test_decisions_over_time_match_decisions_at_each_instant() -> None:
    rng = np.random.default_rng(11)
    slos = [events_slo("a"), events_slo("b", objective="99"), events_slo("c", period="28d")]
    matrix = rule_matrix([policy_for(s) for s in slos])
    n_windows, n_steps = len(matrix.windows), 40
    total = rng.choice([5.0, 20.0, 1e4], size=(3, n_windows, n_steps))
    bad = total * rng.choice([0.0, 0.005, 0.02, 0.3], size=total.shape)
    total[rng.random(total.shape) < 0.05] = np.nan
    over_time = decide_alerts(matrix, bad, total)
    assert over_time.fire.shape == (3, matrix.n_rules, n_steps)
    for t in range(n_steps):
        at_t = decide_alerts(matrix, bad[:, :, t], total[:, :, t])
        np.testing.assert_array_equal(over_time.fire[:, :, t], at_t.fire)
        np.testing.assert_array_equal(over_time.held[:, :, t], at_t.held)
    assert over_time.fire.any() and over_time.held.any() and (~over_time.fire).any()


def test_reason_mentions_confidence() -> None:
    guard = LowTrafficSpec(confidence=Decimal("0.999"))
    assert "> 0.001" in held_reason(1, 10, D("6h"), 0.2, guard)
