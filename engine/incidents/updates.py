"""Updates on a clock: stakeholders hear from the responders every `update_cadence`
(SEV1 30 min, SEV2 1 h, SEV3 4 h by default), and a due update is a reminder to the
communications lead (or the incident commander).

The clock runs once somebody has the incident (acknowledged, declared it, or took a role):
before that, escalation is what chases people. It restarts with every update, status
change and comment — each of which reaches the stakeholders (comments show on the status
page); an update may promise its successor at a given time instead (`next_update_in`).
A posted update is rendered with the internal template (impact, current actions, expected
resolution, next update) for the receivers and, when public, with the customer template
for the status page.
"""

from __future__ import annotations

from typing import Any

from engine.incidents.incident import Incident, iso
from engine.incidents.notifications import notify
from engine.incidents.response import Role, UpdateContent
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction


def start_clock(incident: Incident, now: float) -> None:
    """Somebody has the incident now: updates are due from here (if not already)."""
    if incident.update_clock is None:
        incident.update_clock = now


def restart_clock(incident: Incident, now: float) -> None:
    """Stakeholders just heard from the responders."""
    incident.update_clock = now
    incident.next_update_at = None
    incident.update_reminded_at = None


def due_at(settings: Settings, incident: Incident) -> float | None:
    """When the next update is due (None: nobody to remind, or no cadence)."""
    cadence = settings.cadence.get(incident.severity)
    if incident.next_update_at is not None:
        due = incident.next_update_at
    elif incident.update_clock is None or cadence is None:
        return None
    else:
        due = incident.update_clock + cadence
    reminded = incident.update_reminded_at
    if reminded is not None and reminded >= due:
        # Still nothing since the last reminder: remind again one cadence later.
        return None if cadence is None else reminded + cadence
    return due


def reminded_person(incident: Incident) -> tuple[str, str]:
    """(who, their role) to post the next update: the communications lead, else the IC."""
    comms = incident.roles.get(Role.communications_lead.value)
    if comms:
        return comms, Role.communications_lead.label.lower()
    if incident.commander:
        return incident.commander, "incident commander"
    return "the responders", "no communications lead or commander assigned"


def remind_due_update(settings: Settings, tx: Transaction, now: float, incident: Incident) -> None:
    due = due_at(settings, incident)
    if due is None or now < due:
        return
    incident.update_reminded_at = now
    who, role = reminded_person(incident)
    tx.log(
        incident,
        now,
        "update_due",
        f"stakeholder update due since {iso(due)}: {who} ({role}) to post one",
        data={"due": due, "person": who, "role": role},
    )
    notify(
        settings,
        tx,
        now,
        incident,
        "updated",
        incident.notified_receivers,
        context={"reason": f"UPDATE DUE — {who} ({role}): post the next stakeholder update"},
    )


def post_update(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    by: str,
    content: UpdateContent,
) -> None:
    """Record a stakeholder update, tell the receivers, publish it if it is public."""
    public = incident.customer_facing if content.public is None else content.public
    update: dict[str, Any] = {
        "at": now,
        "time": iso(now),
        "by": by,
        "status": incident.status.value,
        "impact": content.impact,
        "current_actions": content.current_actions,
        "expected_resolution": content.expected_resolution,
        "next_update_at": None if content.next_update_in is None else now + content.next_update_in,
        "public": public,
        "customer_message": content.customer_message,
    }
    incident.latest_update = update
    restart_clock(incident, now)
    incident.next_update_at = update["next_update_at"]
    customer = None
    if public:
        customer = settings.renderer.customer_notice(incident)
        incident.customer_notice = customer
    tx.log(
        incident,
        now,
        "update_posted",
        f"update: {content.impact} — expected resolution: {content.expected_resolution}",
        actor=by,
        data={**update, "customer": customer},
    )
    receivers = [*incident.notified_receivers, *settings.routed(incident.severity)]
    notify(
        settings,
        tx,
        now,
        incident,
        "updated",
        receivers,
        context={"reason": f"STAKEHOLDER UPDATE from {by}"},
    )
