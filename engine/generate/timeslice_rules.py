"""Recording rules of time-slice SLOs: one 0/1 verdict per slice, windows count slices.

A group of its own, evaluated once per slice, records the slice's good/total rates over the
slice (`rules.event_rate_rules`, so missing bad series and bad = total − good behave as for
any SLO) and then the verdict:

    slo:timeslice_bad:1m{slo="shop/checkout-minutes"} =
        (bad_rate / total_rate > bool 0.01)          # 1 − slice_target
      and total_rate > 0                              # no events: no verdict, not judged

One sample per slice; a slice without events (or without data) has none. Every window then
counts samples, recorded under the usual names so the ratio, burn rate, budget, the
multiwindow alerts (alert_rules) and the low-traffic guard read them unchanged:

    slo:bad_events:rate1h   = sum_over_time(verdict[1h])   / 3600    # bad slices per second
    slo:total_events:rate1h = count_over_time(verdict[1h]) / 3600    # judged slices per second

so `slo:error_ratio:rate1h` is bad slices ÷ judged slices and the burn rate that fraction ÷
(1 − objective): the daemon's numbers (engine.evaluation.timeslices). The period reads 5m
tiles of the same counts, as `rules.period_rules` does for events.

The verdict group's slices follow its evaluation times (Prometheus offsets each group
within its interval), not the epoch grid the daemon uses: the two count the same slices
up to that offset.
"""

from __future__ import annotations

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
    event_rate_rules,
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
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.timeslices import TimeSlices


def verdict_metric(spec: TimeSlices) -> str:
    return f"slo:timeslice_bad:{spec.slice}"


def _slice_metrics(spec: TimeSlices) -> tuple[str, str, str]:
    """(bad, total, good) event rates over one slice."""
    bad, total, good = (
        f"slo:timeslice_{k}_events:rate{spec.slice}" for k in ("bad", "total", "good")
    )
    return bad, total, good


def timeslice_group_name(slo: SLO) -> str:
    return f"slo:{slo.base_id}:timeslices"


def _record(metric: str, expr: str, labels: dict[str, str]) -> Rule:
    return {"record": metric, "expr": expr, "labels": dict(labels)}


def _spec(slo: SLO) -> TimeSlices:
    if slo.timeslices is None:
        raise ValueError(f"{slo.id} is not a time-slice SLO")
    return slo.timeslices


def verdict_rules(slo: SLO) -> list[Rule]:
    """The slice's event rates, then its verdict (1 bad, 0 good, none when not judged)."""
    spec, labels, sel = _spec(slo), slo_labels(slo), selector(slo)
    bad, total, good = _slice_metrics(spec)
    allowed = decimal_text(1 - spec.slice_target / 100)
    verdict = f"({bad}{sel} / {total}{sel} > bool {allowed})\nand {total}{sel} > 0"
    return [
        *event_rate_rules(slo, spec.slice, (bad, total, good), labels),
        _record(verdict_metric(spec), verdict, labels),
    ]


def _counted(slo: SLO, window: Duration, names: tuple[str, str]) -> list[Rule]:
    """Bad and judged slices in `window` as per-second rates recorded as `names`."""
    spec, labels, sel = _spec(slo), slo_labels(slo), selector(slo)
    seconds = decimal_text(window.decimal_seconds)
    verdict = f"{verdict_metric(spec)}{sel}[{window}]"
    # A window of slices without events has no verdict at all: 0 of 0 while the slice's
    # total is recorded (quiet, as an event SLO's 0 rate), nothing when it is not (no data).
    quiet = f"\nor on({', '.join(slo.group_by)}) 0 * {_slice_metrics(spec)[1]}{sel}"
    return [
        _record(names[0], f"sum_over_time({verdict}) / {seconds}{quiet}", labels),
        _record(names[1], f"count_over_time({verdict}) / {seconds}{quiet}", labels),
    ]


def _ratio_and_burn(slo: SLO, window: Duration) -> list[Rule]:
    sel, labels = selector(slo), slo_labels(slo)
    ratio = f"{bad_events_metric(window)}{sel} / {total_events_metric(window)}{sel}"
    burn = f"{error_ratio_metric(window)}{sel} / {decimal_text(slo.error_budget)}"
    return [
        _record(error_ratio_metric(window), ratio, labels),
        _record(burn_rate_metric(window), burn, labels),
    ]


def timeslice_sli_rules(slo: SLO, policy: AlertPolicy) -> list[Rule]:
    windows = rolling_windows(policy) or (FALLBACK_BASE_WINDOW,)
    rules: list[Rule] = []
    for window in windows:
        rules += _counted(slo, window, (bad_events_metric(window), total_events_metric(window)))
    for window in windows:
        rules += _ratio_and_burn(slo, window)
    return rules


def timeslice_period_rules(slo: SLO, policy: AlertPolicy) -> list[Rule]:
    tile, period = tile_window(policy), policy.period
    return [
        *_counted(slo, tile, (bad_tile_metric(tile), total_tile_metric(tile))),
        *period_rollup_rules(slo, tile, period, _ratio_and_burn(slo, period)),
    ]


def timeslice_recording_groups(slo: SLO, policy: AlertPolicy | None = None) -> tuple[Group, Group]:
    """(windowed group, period group) of a time-slice SLO, shaped as `recording_groups`;
    both read the verdicts of `timeslice_verdict_group`, a third group."""
    policy = policy or policy_for(slo)
    sli = {"name": sli_group_name(slo), "rules": timeslice_sli_rules(slo, policy)}
    period = {
        "name": period_group_name(slo),
        "interval": str(PERIOD_GROUP_INTERVAL),
        "rules": timeslice_period_rules(slo, policy),
    }
    return sli, period


def timeslice_verdict_group(slo: SLO) -> Group:
    """The group judging each slice, evaluated once per slice."""
    return {
        "name": timeslice_group_name(slo),
        "interval": str(_spec(slo).slice),
        "rules": verdict_rules(slo),
    }
