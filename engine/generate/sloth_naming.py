"""`--naming sloth`: the recorded series Sloth's Grafana dashboards read, for users moving
from Sloth who keep those dashboards.

Sloth records `slo:sli_error:ratio_rate<window>` (label `sloth_window`),
`slo:objective:ratio`, `slo:error_budget:ratio`, `slo:time_period:days`,
`slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
`slo:period_error_budget_remaining:ratio` and `sloth_slo_info`, all labelled `sloth_id`
(`<service>-<slo>`), `sloth_service` and `sloth_slo`.

`slo:objective:ratio` and `slo:error_budget:ratio` are already ours under the same names,
so rather than recording them twice (two series per SLO would break every query that
reads one), every rule of the SLO — recordings and alerts — gets the three `sloth_*`
labels, and one more group derives the other names from our recorded series. The alert
and routing labels of the native output are all still there.
"""

from __future__ import annotations

from typing import Any

from engine.evaluation.policy import AlertPolicy
from engine.generate.rules import (
    BUDGET_REMAINING_METRIC,
    PERIOD_METRIC,
    burn_rate_metric,
    error_ratio_metric,
    rolling_windows,
    selector,
    slo_labels,
)
from engine.spec.models import SLO

Group = dict[str, Any]


def sloth_labels(slo: SLO) -> dict[str, str]:
    name = slo.base_id.split("/", 1)[1]
    return {"sloth_id": f"{slo.service}-{name}", "sloth_service": slo.service, "sloth_slo": name}


def with_sloth_labels(groups: list[Group], slo: SLO) -> list[Group]:
    """The groups with the sloth_* labels on every rule (copies; the input is untouched)."""
    extra = sloth_labels(slo)
    return [
        {
            **group,
            "rules": [
                {**rule, "labels": {**rule.get("labels", {}), **extra}} for rule in group["rules"]
            ],
        }
        for group in groups
    ]


def _record(name: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, **({"labels": labels} if labels else {})}


def sloth_group(slo: SLO, policy: AlertPolicy) -> Group:
    """Sloth's names over our recorded series. Each rule names its sloth_* labels although
    the series read carry them already: promtool (rightly) calls two rules recording the
    same name with the same written labels duplicates."""
    sel = selector(slo)
    ids = sloth_labels(slo)
    windows = [*rolling_windows(policy), policy.period]
    rules = [
        _record(
            f"slo:sli_error:ratio_rate{w}",
            f"{error_ratio_metric(w)}{sel}",
            {**ids, "sloth_window": str(w)},
        )
        for w in windows
    ]
    shortest = min(rolling_windows(policy), default=policy.period)
    rules += [
        _record("slo:time_period:days", f"{PERIOD_METRIC}{sel} / 86400", ids),
        _record("slo:current_burn_rate:ratio", f"{burn_rate_metric(shortest)}{sel}", ids),
        _record("slo:period_burn_rate:ratio", f"{burn_rate_metric(policy.period)}{sel}", ids),
        _record("slo:period_error_budget_remaining:ratio", f"{BUDGET_REMAINING_METRIC}{sel}", ids),
        _record(
            "sloth_slo_info", "vector(1)", {**slo_labels(slo), **ids, "sloth_mode": "slo-engine"}
        ),
    ]
    return {"name": f"sloth-slo-meta-recordings-{ids['sloth_id']}", "rules": rules}
