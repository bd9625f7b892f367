"""Severity classification: which SEV an alert justifies, following the runbook.

Rules, first match wins (knobs in `SeverityRules`, defaults in brackets):

| SEV  | when |
|------|------|
| SEV4 | the alert is an anomaly signal (informational, no burn-rate evidence) — SEV3 when the anomaly is sustained on a tier in `sev1_tiers` [critical] |
| SEV1 | service tier in `sev1_tiers` [critical] AND (short-window error ratio ≥ `outage_error_ratio` [0.5], OR availability SLI at 0, OR error budget exhausted with `budget_exhausted_is_sev1` [true]) |
| SEV2 | a page-level burn on a tier in `sev2_page_tiers` [critical, important] |
| SEV3 | any other page (standard tier), or any ticket-level burn |

An incident's severity is the most severe of its firing alerts. It may rise while the
incident is open; it never falls by itself: when the alerts justify less, the engine records
the suggestion on the timeline (`severity_changed` with `applied: false`) and a person lowers
it with `set_severity`. Severity falling as a fire is put out is exactly when an automatic
downgrade would mislead the people handling it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.incidents.alerts import Alert
from engine.incidents.config import SeverityRules
from engine.incidents.model import Severity


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
        if alert.availability is not None and alert.availability <= 0:
            return Classification(
                Severity.SEV1, f"complete outage of a {alert.tier} service: availability at 0"
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


def classify(alerts: Iterable[Alert], rules: SeverityRules) -> Classification:
    """The most severe classification among `alerts` (which must not be empty)."""
    found = [classify_alert(a, rules) for a in alerts]
    if not found:
        raise ValueError("classify() needs at least one alert")
    return min(found, key=lambda c: c.severity.level)
