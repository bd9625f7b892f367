"""Declaring an incident by hand: a data breach, compromised keys, a DDoS — what no SLO sees.

A declared incident is an incident like any other from then on: alerts of its service join
it (same-service grouping), a dependent service's alerts correlate with it, it escalates,
tracks its recovery time and asks for updates. What differs: a person opened it, so that
person commands it unless someone else is named, its update clock runs from the start, and
it never resolves by itself (no alert clearing can say a breach is over).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.incidents.correlation import note_same_service
from engine.incidents.escalation import escalate, stopped
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.notifications import notify
from engine.incidents.response import IncidentCategory
from engine.incidents.rto import TIER_BY_SEVERITY
from engine.incidents.runbooks import runbook_for
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction
from engine.incidents.transitions import next_incident_id, refresh_customer_notice
from engine.incidents.updates import start_clock


@dataclass(frozen=True)
class Declaration:
    """What a person says when declaring. `tier`, `customer_facing` and `depends_on` come
    from the service's spec when the caller knows it; without a tier the severity's is
    used (SEV1 critical, SEV2 important, else standard)."""

    service: str
    severity: Severity
    title: str
    category: IncidentCategory
    customer_facing: bool = False
    tier: str | None = None
    commander: str | None = None
    depends_on: tuple[str, ...] = ()
    note: str = ""


def declare(
    settings: Settings, tx: Transaction, now: float, declaration: Declaration, by: str
) -> Incident:
    """Open the declared incident, page its severity's receivers, start its escalation."""
    d = declaration
    tier = d.tier or TIER_BY_SEVERITY[d.severity]
    incident = Incident(
        id=next_incident_id(tx, now),
        service=d.service,
        severity=d.severity,
        status=IncidentStatus.investigating,
        summary=d.title,
        opened_at=now,
        commander=d.commander or by,
        runbook_url=runbook_for(settings.config.runbooks, d.service, d.category),
        severity_changed_at=now,
        depends_on=sorted(set(d.depends_on) | set(settings.depends_on.get(d.service, ()))),
        category=d.category,
        declared_by=by,
        customer_facing=d.customer_facing,
        tier=tier,
        rto_seconds=settings.rto.get(tier),
    )
    start_clock(incident, now)
    tx.state.incidents[incident.id] = incident
    tx.log(
        incident,
        now,
        "opened",
        f"declared as {d.severity.value} by {by}: {d.category.value} incident"
        + (f" — {d.note}" if d.note else ""),
        actor=by,
        data={
            "declared": True,
            "category": d.category.value,
            "customer_facing": d.customer_facing,
            "tier": tier,
        },
    )
    note_same_service(settings, tx, now, incident)
    refresh_customer_notice(settings, incident)
    notify(settings, tx, now, incident, "triggered", settings.routed(incident.severity))
    if not stopped(settings, incident):
        escalate(settings, tx, now, incident)
    return incident
