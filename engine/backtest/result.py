"""What a replay produced: alert intervals, incidents, notification counts, budget spent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.backtest.plan import ReplayPlan
from engine.backtest.traces import SLOTrace
from engine.incidents.incident import Incident
from engine.spec.models import SLO

AlertSeverity = Literal["page", "ticket", "anomaly"]


@dataclass(frozen=True)
class AlertInterval:
    slo_id: str
    severity: AlertSeverity
    start: float
    end: float | None
    held: Literal["low_traffic"] | None = None
    # Anomaly alerts: which signal (traffic, errors, latency), and the profile that fired it
    # (recent, daily, weekly: engine.anomaly.profiles).
    signal: str | None = None
    profile: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "slo_id": self.slo_id,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "held": self.held,
        }
        if self.severity == "anomaly":
            out["signal"], out["profile"] = self.signal, self.profile
        return out


@dataclass
class ReplayResult:
    plan: ReplayPlan
    slos: list[SLO]
    alerts: list[AlertInterval]
    incidents: list[Incident]
    notifications: dict[str, int]
    budget_consumed: dict[str, float | None]
    # fingerprint → (slo_id, alert severity): which alerts joined which incident.
    fingerprints: dict[str, tuple[str, str]]
    traces: dict[str, SLOTrace] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def incident_alert_counts(self, incident: Incident) -> dict[str, int]:
        counts = {"page": 0, "ticket": 0, "anomaly": 0}
        for fp in dict.fromkeys(incident.fingerprints):
            known = self.fingerprints.get(fp)
            if known is not None:
                counts[known[1]] += 1
        return counts

    def summary(self) -> dict[str, object]:
        """Alerts that reached the incident engine, once per incident they joined (re-fires
        and flaps of one alert inside its incident count once); held alerts never do."""
        totals = {"page": 0, "ticket": 0, "anomaly": 0}
        # An incident merged into its root cause's (dependency correlation) is part of that
        # one for the on-call, and its alerts moved there: count neither twice.
        kept = [i for i in self.incidents if i.merged_into is None]
        for incident in kept:
            for severity, n in self.incident_alert_counts(incident).items():
                totals[severity] += n
        return {
            "pages": totals["page"],
            "tickets": totals["ticket"],
            "anomalies": totals["anomaly"],
            "incidents": len(kept),
            "budget_consumed": dict(self.budget_consumed),
        }

    def to_json(self) -> dict[str, object]:
        """The documented `backtest --format json` contract."""
        return {
            "start": self.plan.start,
            "end": self.plan.end,
            "alerts": [a.to_json() for a in self.alerts],
            "incidents": [
                {
                    "id": i.id,
                    "severity": i.severity.value,
                    "service": i.service,
                    "slo_ids": list(i.slo_ids),
                    "opened_at": i.opened_at,
                    "resolved_at": i.resolved_at,
                    "notifications": self.notifications.get(i.id, 0),
                }
                for i in self.incidents
            ],
            "summary": self.summary(),
        }
