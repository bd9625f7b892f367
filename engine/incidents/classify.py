"""Severity classification: which SEV an alert justifies, following the runbook.

Rules, first match wins (knobs in `SeverityRules`, defaults in brackets):

| SEV  | when |
|------|------|
| SEV4 | the alert is an anomaly signal (informational, no burn-rate evidence) — SEV3 when the anomaly is sustained on a tier in `sev1_tiers` [critical] |
| SEV1 | service tier in `sev1_tiers` [critical] AND (short-window error ratio ≥ `outage_error_ratio` [0.5], OR availability SLI at 0, OR — for a page — the same over the newest minute (below), OR error budget exhausted with `budget_exhausted_is_sev1` [true]) |
| SEV2 | a page-level burn on a tier in `sev2_page_tiers` [critical, important] |
| SEV3 | any other page (standard tier), or any ticket-level burn |

"Complete outage" reads the short window (5m) and, for a firing page, also the freshest
evidence: the newest minute (`Alert.recent_*`, from `SLOEvaluation.recent`). The 1h/14.4×
rule of a 99.9 % SLO fires 52 s into a complete outage, when the 5m window holds one bad
minute of five (≈ 20 %) but the newest minute is ≥ 86 % bad; reading only the 5m window
paged SEV2 and raised it to SEV1 a minute later — two pages for one outage, the first one
understating it. The burn-rate rule stays the gate (the newest minute never classifies a
ticket or an alert that is not firing), and it counts only over enough evidence:
- request SLIs (events, latency): error ratio ≥ `outage_error_ratio` over at least
  `outage_min_events` [10] events — one failed request in a quiet minute is not an outage;
- availability SLIs: availability 0 over at least `outage_min_samples` [2] samples (they
  count probe samples, 4 a minute at a 15 s scrape, not requests).

An incident's severity is the most severe of its firing alerts. It may rise while the
incident is open; it never falls by itself: when the alerts justify less, the engine records
the suggestion on the timeline (`severity_changed` with `applied: false`) and a person lowers
it with `set_severity`. Severity falling as a fire is put out is exactly when an automatic
downgrade would mislead the people handling it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.alerting.alerts import Alert
from engine.incidents.config import SeverityRules
from engine.incidents.incident import Severity

# Availability "at 0", allowing for float noise: backtest's windows are differences of
# running sums over weeks of (not exactly representable) per-step counts, which can leave an
# availability of 1e-12 where no sample was up; the daemon sums the same steps directly.
# Both must call it an outage.
AVAILABILITY_ZERO = 1e-9


@dataclass(frozen=True)
class Classification:
    severity: Severity
    reason: str


def classify_alert(alert: Alert, rules: SeverityRules) -> Classification:
    if alert.severity == "anomaly":
        # A critical service's anomaly that persists (`anomaly.sustained`, default 30m) is
        # worth a ticket-level response, not just an FYI.
        if alert.sustained and alert.tier in {t.value for t in rules.sev1_tiers}:
            return Classification(Severity.SEV3, f"sustained anomaly on a {alert.tier} service")
        return Classification(Severity.SEV4, "anomaly signal only")
    if alert.tier in {t.value for t in rules.sev1_tiers}:
        ratio = alert.short_error_ratio
        if ratio is not None and ratio >= float(rules.outage_error_ratio):
            return Classification(
                Severity.SEV1,
                f"complete outage of a {alert.tier} service: error ratio {ratio:.1%} over "
                f"{alert.short_window or 'the short window'} ≥ {float(rules.outage_error_ratio):.0%}",
            )
        if alert.availability is not None and alert.availability <= AVAILABILITY_ZERO:
            return Classification(
                Severity.SEV1, f"complete outage of a {alert.tier} service: availability at 0"
            )
        recent = _recent_outage(alert, rules)
        if recent is not None:
            return Classification(
                Severity.SEV1, f"complete outage of a {alert.tier} service: {recent}"
            )
        remaining = alert.error_budget_remaining
        if rules.budget_exhausted_is_sev1 and remaining is not None and remaining <= 0:
            return Classification(
                Severity.SEV1, f"error budget exhausted on a {alert.tier} service"
            )
    if alert.severity == "page":
        if alert.tier in {t.value for t in rules.sev2_page_tiers}:
            return Classification(Severity.SEV2, f"page-level burn on a {alert.tier} service")
        return Classification(Severity.SEV3, f"page-level burn on a {alert.tier} service")
    return Classification(Severity.SEV3, "ticket-level burn")


def _recent_outage(alert: Alert, rules: SeverityRules) -> str | None:
    """Why the newest minute shows a complete outage, or None. Pages only: the burn-rate
    rule decides *whether* to page; this only decides how severe the page is."""
    if alert.severity != "page" or alert.recent_events is None:
        return None
    window = alert.recent_window or "the newest minute"
    # Counts are rate × seconds, rarely whole: compare them rounded (as the low-traffic
    # guard does), so 9.9999 events count as 10.
    events = round(alert.recent_events)
    if alert.recent_availability is not None:  # an availability SLI: samples, not requests
        if events >= rules.outage_min_samples and alert.recent_availability <= AVAILABILITY_ZERO:
            return f"availability at 0 over {window} ({events} samples)"
        return None
    ratio = alert.recent_error_ratio
    threshold = float(rules.outage_error_ratio)
    if ratio is not None and events >= rules.outage_min_events and ratio >= threshold:
        return f"error ratio {ratio:.1%} over {window} ({events} events) ≥ {threshold:.0%}"
    return None


def classify(alerts: Iterable[Alert], rules: SeverityRules) -> Classification:
    """The most severe classification among `alerts` (which must not be empty)."""
    found = [classify_alert(a, rules) for a in alerts]
    if not found:
        raise ValueError("classify() needs at least one alert")
    return min(found, key=lambda c: c.severity.level)
