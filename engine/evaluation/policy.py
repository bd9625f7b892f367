"""The alert policy, defined once.

`evaluate`, the daemon, `backtest` and the Prometheus rule generator all call
`policy_for(slo)`; none of them knows a window or a factor of its own. That is what keeps
the generated rules and the daemon from ever disagreeing.

Defaults follow the SRE Workbook's multiwindow, multi-burn-rate table. The table is stated
as budget shares (2 % in 1 h, 5 % in 6 h, 10 % in 1 d, 10 % in 3 d) so that it carries over
to any period: factor = share × period ÷ long window, computed in Decimal so a 99.9 % SLO's
page threshold is exactly 0.0144, not 0.014399999999999998.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from engine.evaluation.calendar import burn_length
from engine.spec.durations import Duration
from engine.spec.models import SLO, BurnRateRuleSpec, LowTrafficSpec

Severity = Literal["page", "ticket"]

# Significant digits kept for factors and thresholds that do not terminate (28d: 0.9333…).
_PRECISION = Decimal("1e-12")


def _d(text: str) -> Duration:
    return Duration.parse(text)


DEFAULT_RULES: tuple[BurnRateRuleSpec, ...] = (
    BurnRateRuleSpec(
        severity="page", long_window=_d("1h"), short_window=_d("5m"), budget_share=Decimal("0.02")
    ),
    BurnRateRuleSpec(
        severity="page", long_window=_d("6h"), short_window=_d("30m"), budget_share=Decimal("0.05")
    ),
    BurnRateRuleSpec(
        severity="ticket", long_window=_d("1d"), short_window=_d("2h"), budget_share=Decimal("0.10")
    ),
    BurnRateRuleSpec(
        severity="ticket", long_window=_d("3d"), short_window=_d("6h"), budget_share=Decimal("0.10")
    ),
)


def exact(value: Decimal) -> Decimal:
    """Round a non-terminating decimal to 12 places and drop trailing zeros (14.40 -> 14.4)."""
    rounded = value.quantize(_PRECISION) if value.as_tuple().exponent < -12 else value  # type: ignore[operator]
    normal = rounded.normalize()
    # normalize() turns 100 into 1E+2; keep plain notation for rules and JSON.
    return normal.quantize(Decimal(1)) if normal == normal.to_integral() else normal


@dataclass(frozen=True)
class BurnRateRule:
    """Fire when both windows burn faster than `factor` times the sustainable rate."""

    severity: Severity
    long_window: Duration
    short_window: Duration
    factor: Decimal
    # The error ratio both windows must exceed: factor × (1 − objective).
    threshold: Decimal

    @property
    def name(self) -> str:
        return f"{self.severity}-{self.long_window}-{self.short_window}"

    def budget_spent_when_firing(self, period: Duration) -> Decimal:
        """Share of the period's budget spent by the time the long window crosses the factor."""
        return exact(self.factor * (self.long_window / period))


@dataclass(frozen=True)
class AlertPolicy:
    slo_id: str
    objective: Decimal
    period: Duration
    rules: tuple[BurnRateRule, ...]
    low_traffic: LowTrafficSpec

    @property
    def windows(self) -> tuple[Duration, ...]:
        """Every window the policy reads, plus the period, shortest first, no repeats."""
        found = {self.period}
        for rule in self.rules:
            found.update((rule.long_window, rule.short_window))
        return tuple(sorted(found))

    def rules_for(self, severity: Severity) -> tuple[BurnRateRule, ...]:
        return tuple(r for r in self.rules if r.severity == severity)


def factor_for(spec: BurnRateRuleSpec, period: Duration) -> Decimal:
    if spec.factor is not None:
        return exact(spec.factor)
    assert spec.budget_share is not None
    return exact(spec.budget_share * (period / spec.long_window))


# policy_for by SLO identity: one evaluation asks for each SLO's policy several times
# (windows to read, rules to decide, coverage), 4,000 calls of Decimal arithmetic for 1,000
# SLOs. SLO records are immutable; the identity check makes a reused id() harmless.
_POLICIES: dict[int, tuple[SLO, AlertPolicy]] = {}
_POLICIES_MAX = 100_000


def policy_for(slo: SLO) -> AlertPolicy:
    cached = _POLICIES.get(id(slo))
    if cached is not None and cached[0] is slo:
        return cached[1]
    if len(_POLICIES) >= _POLICIES_MAX:
        _POLICIES.clear()
    policy = _policy_for(slo)
    _POLICIES[id(slo)] = (slo, policy)
    return policy


def _policy_for(slo: SLO) -> AlertPolicy:
    specs = slo.alerting.burn_rates if slo.alerting.burn_rates is not None else DEFAULT_RULES
    error_budget = slo.error_budget
    rules = []
    for spec in specs:
        if (spec.severity == "page" and not slo.alerting.page) or (
            spec.severity == "ticket" and not slo.alerting.ticket
        ):
            continue
        factor = factor_for(spec, burn_length(slo))  # a calendar SLO: this period's length
        rules.append(
            BurnRateRule(
                severity=spec.severity,
                long_window=spec.long_window,
                short_window=spec.short_window,
                factor=factor,
                threshold=exact(factor * error_budget),
            )
        )
    return AlertPolicy(
        slo_id=slo.id,
        objective=slo.objective,
        period=slo.period,
        rules=tuple(rules),
        low_traffic=slo.alerting.low_traffic,
    )


def policy_windows(policies: list[AlertPolicy]) -> tuple[Duration, ...]:
    """The union of windows over many SLOs, shortest first (what a batched fetch must cover)."""
    found: set[Duration] = set()
    for policy in policies:
        found.update(policy.windows)
    return tuple(sorted(found))
