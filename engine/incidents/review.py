"""The post-incident review draft: what happened, what it cost, who responded, what follows.

Drafted from the incident as recorded — its timeline, roles, recovery time and action items
— so the review starts from facts, not memory. `review_context` is the data (also the API's
JSON form of the review); `TemplateRenderer.review` renders it with `review.md.j2`, which a
team can override like every template. Pure: the incident and `now` in, plain data out.
"""

from __future__ import annotations

from typing import Any

from engine.incidents.incident import Incident, TimelineEntry, iso
from engine.incidents.response import Role
from engine.incidents.rto import recovery

# The timeline entries a review retells, and how each reads in its table.
_RETOLD: dict[str, str] = {
    "opened": "detection",
    "acknowledged": "acknowledgement",
    "status_changed": "status",
    "severity_changed": "severity",
    "escalated": "escalation",
    "role_assigned": "role",
    "update_posted": "update",
    "update_due": "update due",
    "rto_breached": "recovery time objective",
    "commented": "note",
    "related": "related",
    "resolved": "resolution",
    "review_closed": "review",
}


def review_context(incident: Incident, now: float) -> dict[str, Any]:
    """Everything the review template (and the API) shows, as plain data."""
    return {
        "incident": {
            "id": incident.id,
            "severity": incident.severity.value,
            "status": incident.status.value,
            "service": incident.service,
            "summary": incident.summary,
            "category": incident.category.value,
            "customer_facing": incident.customer_facing,
            "declared_by": incident.declared_by,
            "runbook_url": incident.runbook_url,
            "opened_at": iso(incident.opened_at),
            "resolved_at": iso(incident.resolved_at),
        },
        "drafted_at": iso(now),
        "timeline": [_event(e) for e in incident.timeline if _retold(e)],
        "impact": _impact(incident, now),
        "responders": _responders(incident),
        "action_items": [a.to_json() for a in incident.action_items],
    }


def _retold(entry: TimelineEntry) -> bool:
    if entry.kind not in _RETOLD:
        return False
    # The engine's own suggestions (not applied) are not part of what happened.
    return not (entry.kind == "severity_changed" and entry.data.get("applied") is False)


def _event(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "time": iso(entry.at),
        "kind": _RETOLD[entry.kind],
        "actor": entry.actor,
        "message": entry.message,
    }


def _impact(incident: Incident, now: float) -> dict[str, Any]:
    end = incident.resolved_at if incident.resolved_at is not None else now
    found = recovery(incident, now)
    budget = []
    for slo_id in incident.slo_ids:
        pair = incident.slo_budget.get(slo_id) or [None, None]
        first, latest = pair[0], pair[-1]
        consumed = None if first is None or latest is None else first - latest
        budget.append({"slo": slo_id, "at_start": first, "at_end": latest, "consumed": consumed})
    return {
        "duration_seconds": end - incident.opened_at,
        "ongoing": incident.resolved_at is None,
        "services": [incident.service, *incident.related_services],
        "budget": budget,
        "rto": None if found is None else found.to_json(),
        "rto_met": None if found is None else found.met,
        "rto_breached": incident.rto_breached_at is not None,
    }


def _responders(incident: Incident) -> list[dict[str, Any]]:
    """Who held a role, acknowledged, or acted on the timeline, with what they did."""
    people: dict[str, list[str]] = {}
    for role, person in incident.role_holders().items():
        people.setdefault(person, []).append(Role(role).label.lower())
    if incident.acknowledged_by:
        people.setdefault(incident.acknowledged_by, []).append("acknowledged")
    for entry in incident.timeline:
        if entry.actor and entry.actor not in people:
            people[entry.actor] = ["acted on the timeline"]
    return [{"name": name, "did": did} for name, did in people.items()]
