"""Alerting rules: multiwindow, multi-burn-rate page and ticket alerts, and a no-data alert.

The windows, factors and thresholds are the policy's (`policy_for`), written as exact
decimals (0.0144, never 0.014399999999999999). Both windows must exceed the threshold, as
in the daemon. A rule fires on the long window's burn rate, so `$value` in the templates is
"how many times faster than sustainable the budget is burning".

`for` is a tenth of the short window, rounded up to whole minutes (at least 1m): 1m for
5m, 3m for 30m, 12m for 2h, 36m for 6h. It absorbs one odd evaluation without adding
more than a tenth of the window the alert already needs to reset.

The low-traffic guard follows the daemon's as far as PromQL allows. When the long window
holds enough events that `expected_bad_events` bad ones are expected at the threshold, no
guard applies. Below that the daemon runs a one-sided binomial test; PromQL has no binomial
distribution, so the rule asks instead: are k bad events (k ≥ `min_bad_events`) significant
under a Poisson model with the expected count λ = total × threshold? The Poisson bound on λ
has a closed form to within a few per cent (Wilson–Hilferty: λ_k ≈ k(1 − 1/(9k) − z/(3√k))³),
taken with a small margin so it never exceeds the exact bound. Poisson tails are heavier
than binomial ones of the same mean, so the rule errs towards holding: it never pages where
the daemon holds, and may hold a little longer at the edge.

Grouped SLOs alert per group with the same expressions: every operand is a recorded series
carrying the SLO's labels and the group labels, so `and`, `or` and the arithmetic of the
guard match group by group, and each alert carries its group's labels, named in its texts
(`{{ $labels.route }}`). Their no-data alert is per group too (`grouped_no_data_expr`).
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal
from statistics import NormalDist
from typing import Any

from engine.alerting.alerts import (
    ALERT_NAME,
    burn_alert_name,
    severity_annotations,
    severity_labels,
)
from engine.alerting.links import slo_dashboard_url
from engine.evaluation.policy import AlertPolicy, BurnRateRule, policy_for
from engine.generate.rules import (
    BUDGET_REMAINING_METRIC,
    Rule,
    bad_events_metric,
    base_window,
    burn_rate_metric,
    decimal_text,
    error_ratio_metric,
    group_variable,
    selector,
    slo_labels,
    total_events_metric,
)
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bucket_text

# The default name of the burn-rate alerts, the daemon's; a spec's `alerting.name`
# replaces it (burn_alert_name). Dashboards match on the names in use.
BURN_ALERT = ALERT_NAME
NO_DATA_ALERT = "SLONoData"
NO_DATA_SEVERITY = "ticket"
DEFAULT_GRAFANA_URL = "http://localhost:3000"
_MINUTE_MS = 60_000


def for_duration(rule: BurnRateRule) -> Duration:
    """A tenth of the short window, rounded up to whole minutes, at least one minute."""
    minutes = max(1, math.ceil(rule.short_window.ms / 10 / _MINUTE_MS))
    return Duration(minutes * _MINUTE_MS)


# Wilson–Hilferty slightly overstates the Poisson bound at low confidence; this margin
# (checked in tests/test_generate_alert_rules.py over confidences 0.5–0.99999 and k up to
# 3,000) keeps the PromQL guard from ever releasing an alert the exact test would hold.
GUARD_MARGIN = Decimal("0.975")


def z_third(confidence: Decimal) -> Decimal:
    """z/3 for the one-sided standard-normal quantile, rounded up (rounding only holds)."""
    z = NormalDist().inv_cdf(float(confidence))
    return Decimal(repr(z / 3)).quantize(Decimal("0.0001"), ROUND_CEILING)


def release_bound(k: float, confidence: Decimal) -> float:
    """The largest expected count λ at which k bad events still count as evidence, as the
    rule computes it: GUARD_MARGIN × k × (1 − 1/(9k) − (z/3)/√k)³, never above the exact
    Poisson bound (P(X ≥ k) ≤ 1 − confidence for X ~ Poisson(λ))."""
    base = 1 - 1 / (9 * k) - float(z_third(confidence)) / math.sqrt(k)
    return float(GUARD_MARGIN) * k * base**3 if base > 0 else -1.0


def low_traffic_guard(slo: SLO, policy: AlertPolicy, rule: BurnRateRule) -> str | None:
    """PromQL that is non-empty when the long window's evidence is strong enough to alert."""
    guard = policy.low_traffic
    if not guard.enabled:
        return None
    sel = selector(slo)
    seconds = rule.long_window.decimal_seconds
    # Events expected in the long window if the error ratio sat exactly on the threshold.
    expected = (
        f"{total_events_metric(rule.long_window)}{sel} * {decimal_text(seconds * rule.threshold)}"
    )
    # Counts from extrapolated rates are fractional; the daemon rounds them too.
    k = f"round({bad_events_metric(rule.long_window)}{sel} * {decimal_text(seconds)})"
    return (
        f"{expected} >= {decimal_text(guard.expected_bad_events)}\n"
        f"  or (\n"
        f"    {k} >= {guard.min_bad_events}\n"
        f"    and {expected}\n"
        f"      <= {GUARD_MARGIN} * {k} * (1 - 1 / (9 * {k}) - {z_third(guard.confidence)} / sqrt({k})) ^ 3\n"
        f"  )"
    )


def group_text(slo: SLO, *, if_present: bool = False) -> str:
    """How alert texts name the firing group: `{route="{{ $labels.route }}"}` after the
    SLO id, as in an instance's id; empty for ungrouped SLOs. `if_present`: only when the
    alert has the labels (the no-data alert of a grouped SLO without any data has none)."""
    if not slo.group_by:
        return ""
    labels = sorted(slo.group_by)
    text = "{" + ",".join(f'{label}="{{{{ $labels.{label} }}}}"' for label in labels) + "}"
    if not if_present:
        return text
    condition = " ".join(f"$labels.{label}" for label in labels)
    return f"{{{{ if or {condition} }}}}{text}{{{{ end }}}}"


def budget_left(slo: SLO) -> str:
    """Template text: the budget remaining of the alert's SLO (and group), or unknown."""
    labels = ["slo", *sorted(slo.group_by)]
    matchers = ",".join(f"{label}=%q" for label in labels)
    values = " ".join(f"$labels.{label}" for label in labels)
    query = f"{BUDGET_REMAINING_METRIC}{{{matchers}}}"
    return (
        f"{{{{ with printf `{query}` {values} | query }}}}"
        "{{ . | first | value | humanizePercentage }}{{ else }}unknown{{ end }}"
    )


def burn_alert(slo: SLO, policy: AlertPolicy, rule: BurnRateRule, grafana_url: str) -> Rule:
    sel = selector(slo)
    threshold = decimal_text(rule.threshold)
    long_w, short_w = rule.long_window, rule.short_window
    expr = (
        f"{burn_rate_metric(long_w)}{sel}\n"
        f"and {error_ratio_metric(long_w)}{sel} > {threshold}\n"
        f"and {error_ratio_metric(short_w)}{sel} > {threshold}"
    )
    guard = low_traffic_guard(slo, policy, rule)
    if guard is not None:
        expr += f"\nand (\n  {guard}\n)"
    factor = decimal_text(rule.factor)
    share = rule.budget_spent_when_firing(policy.period) * 100
    who = slo.id + group_text(slo)
    labels = {
        **slo_labels(slo),
        # The spec's page_labels/ticket_labels, as the daemon adds them; reserved names are
        # carried as spec_<name>, so they never replace the labels below or slo_labels'.
        **severity_labels(slo, rule.severity),
        "severity": rule.severity,
        "long_window": str(long_w),
        "short_window": str(short_w),
    }
    annotations = {
        "summary": f"{who} is burning its error budget faster than {factor}× the sustainable rate",
        "description": (
            f"{who} ({decimal_text(slo.objective_percent)}% over {policy.period}) burned its "
            f"error budget at {{{{ $value | humanize }}}}× the sustainable rate over the last "
            f"{long_w}, and the last {short_w} is above {factor}× too "
            f"(error ratio > {threshold}; {decimal_text(share)}% of the budget in {long_w}). "
            f"Error budget remaining: {budget_left(slo)}."
        ),
        **_links(slo, grafana_url),
        **dict(sorted(slo.alerting.annotations.items())),
        **severity_annotations(slo, rule.severity),
    }
    return {
        "alert": burn_alert_name(slo),
        "expr": expr,
        "for": str(for_duration(rule)),
        "labels": labels,
        "annotations": annotations,
    }


def no_data_window(policy: AlertPolicy) -> Duration:
    """How long the SLI may be missing before alerting: the shortest page long window (the
    longest a page could go undetected), else the shortest long window, else 1h."""
    pages = policy.rules_for("page") or policy.rules
    return min((r.long_window for r in pages), default=Duration.parse("1h"))


def no_data_alert(slo: SLO, policy: AlertPolicy, grafana_url: str) -> Rule:
    window = no_data_window(policy)
    # No data means no total, as in the daemon: a missing bad-event series with a known
    # total is recorded as 0 bad events (rules.bad_events_expr), and where bad is
    # total − good the total is recorded only while the good side exists
    # (rules.event_rate_rules), so the total is missing exactly when the error ratio is.
    # `absent() for <window>` rather than `absent_over_time(...[window])`: the latter fires
    # at once on a fresh Prometheus (or for a new SLO) that has no history yet, a ticket
    # storm for every SLO before the first scrapes land; `for` waits the same window in
    # both cases (recorded series get a staleness marker the evaluation they vanish, and
    # Prometheus restores pending `for` state across restarts).
    series = f"{total_events_metric(base_window(policy))}{selector(slo)}"
    expr = grouped_no_data_expr(slo, policy) if slo.group_by else f"absent({series})"
    who = slo.id + group_text(slo, if_present=True)
    return {
        "alert": NO_DATA_ALERT,
        "expr": expr,
        "for": str(window),
        # A ticket like any other: it goes where the spec sends its tickets.
        "labels": {
            **slo_labels(slo),
            **severity_labels(slo, NO_DATA_SEVERITY),
            "severity": NO_DATA_SEVERITY,
        },
        "annotations": {
            "summary": f"{who} has had no SLI data for {window}",
            "description": no_data_description(slo, window),
            **_links(slo, grafana_url),
            **dict(sorted(slo.alerting.annotations.items())),
            **severity_annotations(slo, NO_DATA_SEVERITY),
        },
    }


def grouped_no_data_expr(slo: SLO, policy: AlertPolicy) -> str:
    """No data per group: a group with a total in the period's rollup (it had data within
    the period) but none in the base window now — a vanished group is no data, never
    quietly healthy — or, when no group has any data in the period, the SLO as a whole.

    The period rollup is recorded every 5 minutes from the tiles, so remembering the
    groups costs no range query over the raw series; a group gone for good keeps its
    ticket until it leaves the period (silence it meanwhile)."""
    sel = selector(slo)
    period = f"{total_events_metric(policy.period)}{sel}"
    current = f"{total_events_metric(base_window(policy))}{sel}"
    return (
        f"(\n  {period}\n  unless on({', '.join(slo.group_by)}) {current}\n)\nor absent({period})"
    )


def no_data_description(slo: SLO, window: Duration) -> str:
    """Why an SLO may have recorded no error ratio, the likely cause for its kind of SLI."""
    latency, events = slo.sli.latency, slo.sli.events
    if slo.sli.composite is not None:  # no metric of its own: its components' (composite_rules)
        return (
            f"No total events were recorded for {slo.id} in the last {window}: at least one "
            f"of its components ({', '.join(slo.sli.composite.refs)}) recorded none, so the "
            "journey cannot be computed and burn-rate alerts cannot fire. See the components' "
            "own SLONoData alerts."
        )
    if latency is not None and latency.native:
        selector_text = f"{{{latency.selector}}}" if latency.selector else ""
        return (
            f"No error ratio was recorded for {slo.id} in the last {window}, so burn-rate "
            f"alerts cannot fire. Likely cause: {latency.histogram}{selector_text} matches "
            "no native histogram — the exporter serves it as a classic one (only _bucket, "
            "_count and _sum series), Prometheus runs without "
            "--enable-feature=native-histograms, or the scrape job or selector is wrong."
        )
    if latency is not None:
        selector_text = f"{{{latency.selector}}}" if latency.selector else ""
        return (
            f"No error ratio was recorded for {slo.id} in the last {window}, so burn-rate "
            f"alerts cannot fire. Likely cause: the histogram {latency.histogram} has no "
            f"bucket {bucket_text(latency.threshold)} — the threshold ({latency.threshold}) "
            "must equal one of its bucket bounds (list them: count by (le) "
            f"({latency.histogram}_bucket{selector_text})). Otherwise "
            f"{latency.histogram}_count{selector_text} matches nothing: check the exporter, "
            "the scrape job and the selector."
        )
    if events is not None and events.good is not None:
        return (
            f"No error ratio was recorded for {slo.id} in the last {window}, so burn-rate "
            "alerts cannot fire. Either the total query matches nothing, or the good query "
            "matches nothing while the total does: a wrong good selector, or every request "
            "failing since the good counter appeared (the two look alike; a bad query tells "
            "them apart). Check the exporter, the scrape job and the SLI queries."
        )
    return (
        f"No total events were recorded for {slo.id} in the last {window}: its "
        "metrics are missing or the total query matches nothing, so burn-rate alerts "
        "cannot fire. Check the exporter, the scrape job and the SLI query."
    )


def _links(slo: SLO, grafana_url: str) -> dict[str, str]:
    links: dict[str, str] = {}
    if slo.alerting.runbook_url:
        links["runbook_url"] = slo.alerting.runbook_url
    links["dashboard_url"] = slo_dashboard_url(grafana_url, slo.service, slo.id) + "".join(
        f"&var-{group_variable(label)}={{{{ $labels.{label} | urlquery }}}}"
        for label in sorted(slo.group_by)
    )
    return links


def alert_rules(
    slo: SLO, policy: AlertPolicy | None = None, grafana_url: str = DEFAULT_GRAFANA_URL
) -> list[Rule]:
    policy = policy or policy_for(slo)
    rules: list[dict[str, Any]] = [burn_alert(slo, policy, r, grafana_url) for r in policy.rules]
    rules.append(no_data_alert(slo, policy, grafana_url))
    return rules
