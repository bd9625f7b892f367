"""The four incident roles — commander, technical lead, communications lead, security lead —
assigned and handed over by people.

The commander stays `Incident.commander` (the first responder takes command on
acknowledgement, as before); the other roles are `Incident.roles`. A hand-over (the role
was someone else's) is announced to everyone told of the incident, as the runbook asks; a
first assignment is only recorded. Taking the commander's or the communications lead's
role starts the update clock: there is now someone to remind.
"""

from __future__ import annotations

from engine.incidents.incident import Incident
from engine.incidents.notifications import notify
from engine.incidents.response import Role
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction
from engine.incidents.updates import start_clock


def holder(incident: Incident, role: Role) -> str | None:
    if role is Role.incident_commander:
        return incident.commander
    return incident.roles.get(role.value)


def assign_role(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    role: Role,
    person: str,
    by: str,
) -> None:
    current = holder(incident, role)
    if current == person:
        return
    if role is Role.incident_commander:
        incident.commander = person
    else:
        incident.roles[role.value] = person
    if role in (Role.incident_commander, Role.communications_lead):
        start_clock(incident, now)
    message = (
        f"{role.label} handed over from {current} to {person}"
        if current
        else f"{role.label}: {person}"
    )
    tx.log(
        incident,
        now,
        "role_assigned",
        message,
        actor=by,
        data={"role": role.value, "from": current, "to": person},
    )
    if current:
        notify(
            settings,
            tx,
            now,
            incident,
            "updated",
            incident.notified_receivers,
            context={"reason": f"HAND-OVER: {message}"},
        )
