"""Escalation: who else hears of an incident nobody has taken, and when.

The chain (`IncidentConfig.escalation`, the runbook's by default: team lead, engineering
manager at 30 min, VP engineering at 1 h, CTO at 2 h) is walked one level per `after`.
For the severities in `escalate_from_open` (SEV1 and SEV2 with the runbook chain) it starts
when the incident opens — the team lead is paged at minute 0 —, for the others when the
response target is missed; both count from the last severity rise, if any. A level may be
notified at once for a customer-facing incident (the CTO for a customer-facing SEV1); the
walk then skips it. The walk stops on what `escalation_stops_on` names (an
acknowledgement, the status moving on to mitigating or monitoring).

A missed recovery time objective is checked here too: it tells the responders and, when the
walk has stopped, brings in the next level (see `rto`).
"""

from __future__ import annotations

from engine.incidents.config import EscalationLevel
from engine.incidents.incident import Incident, IncidentStatus, iso
from engine.incidents.notifications import notify
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction

_PAST_INVESTIGATING = (IncidentStatus.mitigating, IncidentStatus.monitoring)


def chain_start(settings: Settings, incident: Incident) -> float:
    """When the walk's clock starts: the opening (or last rise), or the response target."""
    start = incident.severity_changed_at or incident.opened_at
    if incident.severity in settings.from_open:
        return start
    return start + settings.targets[incident.severity]


def stopped(settings: Settings, incident: Incident) -> bool:
    """Whether the walk is over for now: acknowledged, or mitigating, as configured."""
    if "acknowledged" in settings.stops_on and incident.acknowledged_at is not None:
        return True
    return "mitigating" in settings.stops_on and incident.status in _PAST_INVESTIGATING


def escalate(settings: Settings, tx: Transaction, now: float, incident: Incident) -> None:
    """Notify every level whose time has come, in order (a late tick catches up), then any
    level a customer-facing incident calls at once."""
    base = chain_start(settings, incident)
    from_open = incident.severity in settings.from_open
    while incident.escalation_level < len(settings.chain):
        level = settings.chain[incident.escalation_level]
        if now < base + level.after.seconds:
            break
        if from_open:
            age = now - (incident.severity_changed_at or incident.opened_at)
            why = f"{incident.severity.value} " + (
                "opened" if age < 60 else f"unacknowledged for {_minutes(age)}"
            )
        else:
            why = f"unacknowledged past the {incident.severity.value} response target"
        _walk_to_next(settings, tx, now, incident, why)
    _at_once(settings, tx, now, incident)


def escalate_one_step(
    settings: Settings, tx: Transaction, now: float, incident: Incident, why: str
) -> bool:
    """Bring in the chain's next level now (a missed RTO); False at the end of the chain."""
    while incident.escalation_level < len(settings.chain):
        if settings.chain[incident.escalation_level].name not in incident.escalated_early:
            _walk_to_next(settings, tx, now, incident, why)
            return True
        incident.escalation_level += 1
    return False


def check_rto(settings: Settings, tx: Transaction, now: float, incident: Incident) -> None:
    """Record, announce and (if the walk has stopped) escalate a missed RTO, once."""
    if incident.rto_seconds is None or incident.rto_breached_at is not None:
        return
    deadline = incident.opened_at + incident.rto_seconds
    if now < deadline:
        return
    incident.rto_breached_at = now
    objective = _minutes(incident.rto_seconds)
    tx.log(
        incident,
        now,
        "rto_breached",
        f"recovery time objective of {objective} ({incident.tier} tier) missed: not "
        f"resolved by {iso(deadline)}",
        data={"objective": incident.rto_seconds, "deadline": deadline, "tier": incident.tier},
    )
    notify(
        settings,
        tx,
        now,
        incident,
        "updated",
        incident.notified_receivers,
        context={"reason": f"RECOVERY TIME OBJECTIVE MISSED ({objective})"},
    )
    if settings.config.rto_breach_escalates and stopped(settings, incident):
        escalate_one_step(
            settings, tx, now, incident, f"recovery time objective {objective} missed"
        )


def _walk_to_next(
    settings: Settings, tx: Transaction, now: float, incident: Incident, why: str
) -> None:
    level = settings.chain[incident.escalation_level]
    incident.escalation_level += 1
    if level.name in incident.escalated_early:
        return  # told at once when the incident opened
    _notify_level(settings, tx, now, incident, level, incident.escalation_level, why)


def _at_once(settings: Settings, tx: Transaction, now: float, incident: Incident) -> None:
    if not incident.customer_facing:
        return
    for number, level in enumerate(settings.chain, start=1):
        if (
            number > incident.escalation_level
            and incident.severity in level.at_once_if_customer_facing
            and level.name not in incident.escalated_early
        ):
            incident.escalated_early.append(level.name)
            why = f"customer-facing {incident.severity.value}: at once"
            _notify_level(settings, tx, now, incident, level, number, why)


def _notify_level(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    level: EscalationLevel,
    number: int,
    why: str,
) -> None:
    who = ", ".join(level.receivers) or "nobody configured"
    tx.log(
        incident,
        now,
        "escalated",
        f"{why}: escalated to level {number} {level.name} ({who})",
        data={"level": number, "name": level.name},
    )
    notify(settings, tx, now, incident, "escalated", level.receivers, escalated_to=level.name)


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:g} h"
