"""Recording rules of composite SLOs, from their components' recorded rates.

A composite queries no raw metric: each of its windows is the weighted sum of what its
components already record for that window (engine.generate.rules), the rules' form of the
daemon's Σ wᵢ·badᵢ / Σ wᵢ·totalᵢ (engine.evaluation.composite):

    slo:total_events:rate5m{slo="shop/checkout-journey"} =
        2 * sum(slo:total_events:rate5m{slo="api/availability"})
      + 1 * sum(slo:total_events:rate5m{slo="payments/latency"})

`sum()` drops each component's labels so the terms add up; a component without a recorded
series empties the sum, so the composite has no data rather than a partial journey — as in
the daemon. The ratios, burn rates, budget and constants are then recorded exactly as for
any SLO, and `alert_rules` adds the same multiwindow alerts on top.

The period reads the composite's own tiles (the weighted sum of the components' tiles,
recorded by its period group every 5 minutes), so the period is the composite's, whatever
its components' periods. Components are recorded in their own groups: a composite reads
them as of their latest evaluation, at most one group interval behind.

`check_composite_rules` refuses, before anything is written, a composite whose component
does not record a window the composite reads (a component with its own `burn_rates`).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.evaluation.policy import AlertPolicy, policy_for
from engine.generate.rules import (
    FALLBACK_BASE_WINDOW,
    PERIOD_GROUP_INTERVAL,
    Group,
    Rule,
    bad_events_metric,
    bad_tile_metric,
    burn_rate_metric,
    decimal_text,
    error_ratio_metric,
    period_group_name,
    period_rollup_rules,
    rolling_windows,
    selector,
    sli_group_name,
    slo_labels,
    tile_window,
    total_events_metric,
    total_tile_metric,
)
from engine.spec.composite import CompositeSLI
from engine.spec.durations import Duration
from engine.spec.models import SLO


def _record(metric: str, expr: str, labels: dict[str, str]) -> Rule:
    return {"record": metric, "expr": expr, "labels": dict(labels)}


def weighted_sum(sli: CompositeSLI, metric: str) -> str:
    """Σ weight × sum(metric{slo=component}) over the components, one term per line."""
    terms = [f'{decimal_text(o.weight)} * sum({metric}{{slo="{o.slo}"}})' for o in sli.objectives]
    return "\n+ ".join(terms)


def _ratio_and_burn(slo: SLO, window: Duration, labels: dict[str, str]) -> list[Rule]:
    sel = selector(slo)
    ratio = f"{bad_events_metric(window)}{sel} / {total_events_metric(window)}{sel}"
    burn = f"{error_ratio_metric(window)}{sel} / {decimal_text(slo.error_budget)}"
    return [
        _record(error_ratio_metric(window), ratio, labels),
        _record(burn_rate_metric(window), burn, labels),
    ]


def _sli(slo: SLO) -> CompositeSLI:
    if slo.sli.composite is None:
        raise ValueError(f"{slo.id} is not a composite SLO")
    return slo.sli.composite


def composite_sli_rules(slo: SLO, policy: AlertPolicy) -> list[Rule]:
    """Per rolling window: weighted bad and total rates, then error ratio and burn rate."""
    sli, labels = _sli(slo), slo_labels(slo)
    windows = rolling_windows(policy) or (FALLBACK_BASE_WINDOW,)
    rules: list[Rule] = []
    for window in windows:
        total, bad = total_events_metric(window), bad_events_metric(window)
        rules += [
            _record(total, weighted_sum(sli, total), labels),
            _record(bad, weighted_sum(sli, bad), labels),
        ]
    for window in windows:
        rules += _ratio_and_burn(slo, window, labels)
    return rules


def composite_period_rules(slo: SLO, policy: AlertPolicy) -> list[Rule]:
    """The composite's tiles (weighted component tiles), its period rates and budget."""
    sli, labels = _sli(slo), slo_labels(slo)
    tile, period = tile_window(policy), policy.period
    return [
        _record(total_tile_metric(tile), weighted_sum(sli, total_tile_metric(tile)), labels),
        _record(bad_tile_metric(tile), weighted_sum(sli, bad_tile_metric(tile)), labels),
        *period_rollup_rules(slo, tile, period, _ratio_and_burn(slo, period, labels)),
    ]


def composite_recording_groups(slo: SLO, policy: AlertPolicy | None = None) -> tuple[Group, Group]:
    """(windowed group, period group) of a composite SLO, shaped as `recording_groups`."""
    policy = policy or policy_for(slo)
    sli = {"name": sli_group_name(slo), "rules": composite_sli_rules(slo, policy)}
    period = {
        "name": period_group_name(slo),
        "interval": str(PERIOD_GROUP_INTERVAL),
        "rules": composite_period_rules(slo, policy),
    }
    return sli, period


def check_composite_rules(slos: Sequence[SLO]) -> list[str]:
    """Why a composite's rules could not read its components (empty when they can): every
    component must record each rolling window and the period tile the composite reads."""
    by_id = {s.id: s for s in slos}
    problems: list[str] = []
    for slo in slos:
        if slo.sli.composite is None:
            continue
        policy = policy_for(slo)
        needed = set(rolling_windows(policy) or (FALLBACK_BASE_WINDOW,))
        for ref in slo.sli.composite.refs:
            component = by_id.get(ref)
            if component is None:
                problems.append(f"composite {slo.id}: component {ref} is not among the specs")
                continue
            own = policy_for(component)
            recorded = set(rolling_windows(own) or (FALLBACK_BASE_WINDOW,))
            lacking = sorted(needed - recorded)
            if lacking or tile_window(own) != tile_window(policy):
                what = ", ".join(str(w) for w in lacking) or f"the {tile_window(policy)} tile"
                problems.append(
                    f"composite {slo.id}: component {ref} does not record {what} "
                    "(its burn_rates differ) — give both the same burn_rates"
                )
    return problems
