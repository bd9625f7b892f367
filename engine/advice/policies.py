"""Alternative alert policies, written as the spec's own `alerting` overrides.

Only what `engine.evaluation.policy.policy_for` and the spec can express is offered, so a
recommended policy can be written back into the spec as it was replayed:

- `current`: the SLO's alerting as written;
- `default`: the SRE Workbook's table as budget shares (offered when `current` overrides it);
- `factors-28d`: the workbook's factors of a 28-day period as fixed factors (13.44×, 5.6×,
  2.8×, 0.933×) — a 30-day SLO then pages a little earlier, a shorter one much later;
- `page-30m`: the fast page on a 30m/5m window pair at the same burn factor (1 % of the
  budget in 30 minutes): detects sooner, and pages on shorter blips;
- `low-traffic-0.999`: the low-traffic guard at 0.999 confidence instead of 0.99.

Prometheus-style `for:` durations are not offered: neither the spec nor the daemon's policy
has them (a burn-rate rule's short window already plays that part).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from engine.evaluation.policy import DEFAULT_RULES, exact, policy_for
from engine.spec.durations import Duration
from engine.spec.models import SLO, AlertingSpec, BurnRateRuleSpec

FACTOR_PERIOD = Duration.parse("28d")
STRICT_CONFIDENCE = Decimal("0.999")


@dataclass(frozen=True)
class Alternative:
    name: str
    description: str
    # The SLO's alerting → the alternative's (None: does not apply to this SLO).
    alerting: Callable[[AlertingSpec], AlertingSpec | None]


def _default(alerting: AlertingSpec) -> AlertingSpec | None:
    if alerting.burn_rates is None:
        return None
    return alerting.model_copy(update={"burn_rates": None})


def _factors_28d(alerting: AlertingSpec) -> AlertingSpec:
    rules = [
        BurnRateRuleSpec(
            severity=r.severity,
            long_window=r.long_window,
            short_window=r.short_window,
            factor=exact(r.budget_share * (FACTOR_PERIOD / r.long_window)),  # type: ignore[operator]
        )
        for r in DEFAULT_RULES
    ]
    return alerting.model_copy(update={"burn_rates": rules})


def _page_30m(alerting: AlertingSpec) -> AlertingSpec:
    fast = BurnRateRuleSpec(
        severity="page",
        long_window=Duration.parse("30m"),
        short_window=Duration.parse("5m"),
        budget_share=Decimal("0.01"),
    )
    return alerting.model_copy(update={"burn_rates": [fast, *DEFAULT_RULES[1:]]})


def _strict_guard(alerting: AlertingSpec) -> AlertingSpec | None:
    guard = alerting.low_traffic
    if not guard.enabled or guard.confidence >= STRICT_CONFIDENCE:
        return None
    return alerting.model_copy(
        update={"low_traffic": guard.model_copy(update={"confidence": STRICT_CONFIDENCE})}
    )


ALTERNATIVES: tuple[Alternative, ...] = (
    Alternative("current", "the SLO's alerting as written", lambda a: a),
    Alternative("default", "the workbook's budget shares (no burn_rates override)", _default),
    Alternative(
        "factors-28d",
        "the workbook's factors of a 28-day period (13.44×, 5.6×, 2.8×, 0.933×)",
        _factors_28d,
    ),
    Alternative(
        "page-30m", "fast page on 30m/5m windows at the same burn factor (1 % in 30m)", _page_30m
    ),
    Alternative("low-traffic-0.999", "the low-traffic guard at 0.999 confidence", _strict_guard),
)
ALTERNATIVE_NAMES = tuple(a.name for a in ALTERNATIVES)


def _same_policy(a: SLO, b: SLO) -> bool:
    pa, pb = policy_for(a), policy_for(b)
    return pa.rules == pb.rules and pa.low_traffic == pb.low_traffic


def policy_variants(slo: SLO, objective: Decimal | None = None) -> list[SLO | None]:
    """The SLO under each alternative (at `objective`, default its own), in ALTERNATIVES
    order; None where an alternative does not apply or equals the current policy."""
    base = slo if objective is None else replace(slo, objective_percent=objective)
    out: list[SLO | None] = []
    for alt in ALTERNATIVES:
        alerting = alt.alerting(slo.alerting)
        if alerting is None:
            out.append(None)
            continue
        variant = replace(base, alerting=alerting)
        out.append(variant if alt.name == "current" or not _same_policy(variant, base) else None)
    return out
