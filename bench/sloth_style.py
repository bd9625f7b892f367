"""Sloth-style rules for bench/bench_rule_cost.py, written from Sloth's documented rule
shape (not its code) for events SLOs: per SLO three groups, all at the global interval —
`slo:sli_error:ratio_rate<w>` per window as bad ÷ total straight from the raw counters plus
`slo:sli_error:ratio_rate<period>` as the mean of the shortest window's recording over the
period (sum_over_time ÷ count_over_time); the meta recordings (objective, error budget,
period in days, current and period burn rate, budget remaining, info); a page and a ticket
alert, each an `or` of two (short and long window over factor × budget) pairs. Labels:
`sloth_id`, `sloth_service`, `sloth_slo` (and `sloth_window` on the ratios).
"""

from __future__ import annotations

from typing import Any

from engine.evaluation.policy import policy_for
from engine.generate.rules import decimal_text, rolling_windows
from engine.spec.models import SLO

DAY = 86_400


def sloth_ids(slo: SLO) -> dict[str, str]:
    return {
        "sloth_id": f"{slo.service}-{slo.name}",
        "sloth_service": slo.service,
        "sloth_slo": slo.name,
    }


def at(query: str, window: Any) -> str:
    """An SLI query over `window` (its `{{window}}` placeholder filled in)."""
    return query.replace("{{window}}", str(window))


def _matchers(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def sloth_groups(slo: SLO) -> list[dict[str, Any]]:
    """Sloth's documented rule shape for one events SLO (see the module docstring)."""
    assert slo.sli.events is not None and slo.sli.events.bad is not None
    policy = policy_for(slo)
    ids = sloth_ids(slo)
    sel = _matchers(ids)
    budget = decimal_text(slo.error_budget)
    windows = rolling_windows(policy)
    bad, total = slo.sli.events.bad, slo.sli.events.total
    sli = [
        {
            "record": f"slo:sli_error:ratio_rate{w}",
            "expr": f"({at(bad, w)})\n/\n({at(total, w)})",
            "labels": {**ids, "sloth_window": str(w)},
        }
        for w in windows
    ]
    period = policy.period
    base = f"slo:sli_error:ratio_rate{windows[0]}{sel}[{period}]"
    sli.append(
        {
            "record": f"slo:sli_error:ratio_rate{period}",
            "expr": f"sum_over_time({base})\n/ ignoring (sloth_window)\ncount_over_time({base})",
            "labels": {**ids, "sloth_window": str(period)},
        }
    )
    on = "on(sloth_id, sloth_slo, sloth_service) group_left"
    meta = [
        ("slo:objective:ratio", f"vector({decimal_text(slo.objective)})"),
        ("slo:error_budget:ratio", f"vector(1 - {decimal_text(slo.objective)})"),
        ("slo:time_period:days", f"vector({int(period.decimal_seconds) // DAY})"),
        (
            "slo:current_burn_rate:ratio",
            f"slo:sli_error:ratio_rate{windows[0]}{sel}\n/ {on}\nslo:error_budget:ratio{sel}",
        ),
        (
            "slo:period_burn_rate:ratio",
            f"slo:sli_error:ratio_rate{period}{sel}\n/ {on}\nslo:error_budget:ratio{sel}",
        ),
        ("slo:period_error_budget_remaining:ratio", f"1 - slo:period_burn_rate:ratio{sel}"),
        ("sloth_slo_info", "vector(1)"),
    ]

    def over(w: Any, factor: Any) -> str:
        return (
            f"max(slo:sli_error:ratio_rate{w}{sel} > ({decimal_text(factor)} * {budget}))"
            " without (sloth_window)"
        )

    alerts = []
    for severity in ("page", "ticket"):
        pairs = [
            f"(\n  {over(r.short_window, r.factor)}\n  and\n  {over(r.long_window, r.factor)}\n)"
            for r in policy.rules_for(severity)
        ]
        alerts.append(
            {
                "alert": "SlothStyleHighErrorRate",
                "expr": "\nor\n".join(pairs),
                "labels": {"sloth_severity": severity},
            }
        )
    name = ids["sloth_id"]
    return [
        {"name": f"sloth-slo-sli-recordings-{name}", "rules": sli},
        {
            "name": f"sloth-slo-meta-recordings-{name}",
            "rules": [{"record": r, "expr": e, "labels": ids} for r, e in meta],
        },
        {"name": f"sloth-slo-alerts-{name}", "rules": alerts},
    ]
