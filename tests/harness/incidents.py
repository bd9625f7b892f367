"""Small builders for tests and simulations of the incident engine (no I/O)."""

from __future__ import annotations

from engine.alerting.alerts import ALERT_NAME, Alert, AlertSeverity

# 2024-03-01T00:00:00Z: a fixed, readable epoch for fake clocks.
T0 = 1_709_251_200.0


def make_alert(
    service: str = "api",
    slo: str = "availability",
    severity: AlertSeverity = "page",
    tier: str = "critical",
    short_error_ratio: float | None = 0.05,
    error_budget_remaining: float | None = 0.8,
    availability: float | None = None,
    depends_on: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    runbook_url: str | None = None,
    starts_at: float = T0,
    recent_error_ratio: float | None = None,
    recent_events: float | None = None,
    recent_availability: float | None = None,
) -> Alert:
    """An alert shaped like `alerts_from_evaluation` makes them."""
    return Alert(
        labels={
            **(labels or {}),
            "alertname": ALERT_NAME if severity != "anomaly" else "SLOAnomaly",
            "service": service,
            "slo": f"{service}/{slo}",
            "severity": severity,
            "tier": tier,
        },
        severity=severity,
        slo_id=f"{service}/{slo}",
        service=service,
        starts_at=starts_at,
        annotations={"summary": f"{service}/{slo}: {severity} burn"},
        tier=tier,
        depends_on=depends_on,
        short_error_ratio=short_error_ratio,
        error_budget_remaining=error_budget_remaining,
        availability=availability,
        burn_rate=20.0,
        long_window="1h",
        short_window="5m",
        recent_error_ratio=recent_error_ratio,
        recent_events=recent_events,
        recent_window=None if recent_events is None else "1m",
        recent_availability=recent_availability,
        runbook_url=runbook_url,
    )
