"""Multiwindow, multi-burn-rate alert decisions for many SLOs at once, with the low-traffic guard.

The rules come from `policy_for()` and nowhere else. SLOs may have different objectives,
periods and rule overrides, so the rules are laid out as S × R matrices (R = the most rules
any SLO has; shorter rows are padded with inactive rules) whose windows point into one shared
window list. A decision is then a handful of array expressions, whether over `[S, W]` window
sums at one instant (the daemon) or `[S, W, T]` at every step (backtest).

A rule fires when both its long and its short window have an error ratio strictly above the
threshold (factor × error budget). Ratios are compared, not burn rates, so the only rounding
is the one of the Decimal threshold to the nearest double: 144 bad of 10,000 events at a
0.0144 threshold is exactly at it and does not fire. NaN (no data) never fires.

The low-traffic guard holds an alert that lacks statistical evidence. It applies when the
long window holds so few events that fewer than `expected_bad_events` bad events would be
expected at the threshold (total × threshold < expected_bad_events). A held alert is released
only when a one-sided binomial test rejects "true error ratio ≤ threshold" at the configured
confidence, P(X ≥ bad | total, threshold) ≤ 1 − confidence, AND at least `min_bad_events` bad
events were seen. Counts from Prometheus are rates × seconds and need not be whole numbers;
they are rounded to the nearest integer for the test. The guard applies to page and ticket
rules alike: a ticket on one failed request out of ten is as much noise as a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from engine.evaluation.budget import EXHAUSTION_WINDOW, error_ratio
from engine.evaluation.policy import AlertPolicy, BurnRateRule, policy_windows
from engine.spec.durations import Duration
from engine.spec.models import LowTrafficSpec


def evaluation_windows(policies: Sequence[AlertPolicy]) -> tuple[Duration, ...]:
    """Every window an evaluation of these SLOs needs, shortest first.

    The union of the policies' windows and periods, plus `EXHAUSTION_WINDOW` (1h) for the
    time-to-exhaustion projection even when an override dropped the 1h rule.
    """
    return tuple(sorted({*policy_windows(list(policies)), EXHAUSTION_WINDOW}))


@dataclass(frozen=True)
class RuleMatrix:
    """The rules of S policies as S × R arrays over a shared window list."""

    windows: tuple[Duration, ...]
    # rules[s] are policy s's rules in order; column r of every matrix is rules[s][r].
    rules: tuple[tuple[BurnRateRule, ...], ...]
    guards: tuple[LowTrafficSpec, ...]
    long_index: np.ndarray  # int[S, R], position in `windows`
    short_index: np.ndarray  # int[S, R]
    threshold: np.ndarray  # float64[S, R]; NaN where inactive
    active: np.ndarray  # bool[S, R]
    page: np.ndarray  # bool[S, R]: severity page (else ticket)
    guard_enabled: np.ndarray  # bool[S]
    guard_alpha: np.ndarray  # float64[S]: 1 − confidence
    guard_min_bad: np.ndarray  # float64[S]
    guard_expected_bad: np.ndarray  # float64[S]
    period_index: np.ndarray  # int[S]: position of each SLO's period in `windows`

    @property
    def n_rules(self) -> int:
        return self.threshold.shape[1]

    def take(self, rows: slice) -> RuleMatrix:
        """The same rules for a subset of the SLOs (columns and windows unchanged)."""
        return RuleMatrix(
            windows=self.windows,
            rules=self.rules[rows],
            guards=self.guards[rows],
            long_index=self.long_index[rows],
            short_index=self.short_index[rows],
            threshold=self.threshold[rows],
            active=self.active[rows],
            page=self.page[rows],
            guard_enabled=self.guard_enabled[rows],
            guard_alpha=self.guard_alpha[rows],
            guard_min_bad=self.guard_min_bad[rows],
            guard_expected_bad=self.guard_expected_bad[rows],
            period_index=self.period_index[rows],
        )


def rule_matrix(
    policies: Sequence[AlertPolicy], windows: Sequence[Duration] | None = None
) -> RuleMatrix:
    """Lay the policies' rules out over `windows` (default: `evaluation_windows(policies)`)."""
    windows = tuple(windows) if windows is not None else evaluation_windows(policies)
    where = {w: i for i, w in enumerate(windows)}
    n_slos = len(policies)
    n_rules = max((len(p.rules) for p in policies), default=0)
    long_index = np.zeros((n_slos, n_rules), dtype=np.int64)
    short_index = np.zeros((n_slos, n_rules), dtype=np.int64)
    threshold = np.full((n_slos, n_rules), np.nan)
    active = np.zeros((n_slos, n_rules), dtype=bool)
    page = np.zeros((n_slos, n_rules), dtype=bool)
    period_index = np.zeros(n_slos, dtype=np.int64)
    for s, policy in enumerate(policies):
        missing = [w for w in (policy.period, *policy.windows) if w not in where]
        if missing:
            raise ValueError(
                f"{policy.slo_id}: windows {', '.join(map(str, missing))} are not in the "
                "evaluated window list — build it with evaluation_windows()"
            )
        period_index[s] = where[policy.period]
        for r, rule in enumerate(policy.rules):
            long_index[s, r] = where[rule.long_window]
            short_index[s, r] = where[rule.short_window]
            threshold[s, r] = float(rule.threshold)
            active[s, r] = True
            page[s, r] = rule.severity == "page"
    guards = tuple(p.low_traffic for p in policies)
    return RuleMatrix(
        windows=windows,
        rules=tuple(p.rules for p in policies),
        guards=guards,
        long_index=long_index,
        short_index=short_index,
        threshold=threshold,
        active=active,
        page=page,
        guard_enabled=np.array([g.enabled for g in guards], dtype=bool),
        guard_alpha=np.array([float(1 - g.confidence) for g in guards]),
        guard_min_bad=np.array([float(g.min_bad_events) for g in guards]),
        guard_expected_bad=np.array([float(g.expected_bad_events) for g in guards]),
        period_index=period_index,
    )


@dataclass(frozen=True)
class AlertDecision:
    """Per rule (and per step when given `[S, W, T]` sums): shapes [S, R] or [S, R, T].

    `fire` is the burn condition (both windows above the threshold); `held` ⊆ `fire` are
    the alerts the low-traffic guard holds back. What pages is `fire & ~held`.
    """

    fire: np.ndarray
    held: np.ndarray
    long_bad: np.ndarray  # bad events in the long window
    long_total: np.ndarray
    p_value: np.ndarray  # binomial test p-value where the guard ran, else NaN

    @property
    def firing(self) -> np.ndarray:
        return self.fire & ~self.held


def _by_rule(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[S, W, ...] → values[S, R, ...] picking window index[s, r] for each rule."""
    rows = np.arange(values.shape[0])[:, None]
    return values[rows, index]


def decide_alerts(matrix: RuleMatrix, bad: np.ndarray, total: np.ndarray) -> AlertDecision:
    """Alert decisions from window event sums bad/total of shape [S, W] or [S, W, T]."""
    ratio = error_ratio(bad, total)
    extra = (None,) * (ratio.ndim - 2)  # broadcast [S, R] parameters over a trailing T axis
    threshold = matrix.threshold[(..., *extra)]
    long_ratio = _by_rule(ratio, matrix.long_index)
    short_ratio = _by_rule(ratio, matrix.short_index)
    # NaN compares False: no data never fires; inactive (padding) rules have a NaN threshold.
    fire = (long_ratio > threshold) & (short_ratio > threshold)
    long_bad = _by_rule(np.asarray(bad, dtype=np.float64), matrix.long_index)
    long_total = _by_rule(np.asarray(total, dtype=np.float64), matrix.long_index)

    def per_slo(values: np.ndarray) -> np.ndarray:
        return values[(slice(None), None, *extra)]

    guarded = (
        fire
        & per_slo(matrix.guard_enabled)
        & (long_total * threshold < per_slo(matrix.guard_expected_bad))
    )
    held = np.zeros_like(fire)
    p_value = np.full(fire.shape, np.nan)
    if guarded.any():
        # scipy.stats takes ~0.3 s to import: only runs that hold an alert pay for it.
        from scipy.stats import binom

        thr = np.broadcast_to(threshold, fire.shape)[guarded]
        n = np.rint(long_total[guarded])
        k = np.minimum(np.rint(long_bad[guarded]), n)
        p = binom.sf(k - 1, n, thr)
        alpha = np.broadcast_to(per_slo(matrix.guard_alpha), fire.shape)[guarded]
        min_bad = np.broadcast_to(per_slo(matrix.guard_min_bad), fire.shape)[guarded]
        p_value[guarded] = p
        held[guarded] = ~((p <= alpha) & (k >= min_bad))
    return AlertDecision(fire, held, long_bad, long_total, p_value)


def held_reason(
    bad: float, total: float, window: Duration, p_value: float, guard: LowTrafficSpec
) -> str:
    """Why the guard held an alert, in words an on-call engineer can check by hand."""
    k, n = round(bad), round(total)
    alpha = (Decimal(1) - guard.confidence).normalize()
    evidence = f"low traffic: {k} bad of {n} events in {window}, p={p_value:.3g}"
    if p_value > float(alpha):
        return f"{evidence} > {alpha} (not significant at {guard.confidence} confidence)"
    return f"{evidence} ≤ {alpha} but fewer than {guard.min_bad_events} bad events"
