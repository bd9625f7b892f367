"""What happens with time alone (`IncidentEngine.tick`, and the end of every `observe`).

In order, per open incident: resolve once every alert has been clear for `resolve_after`
(never while flapping, never a declared incident: a person declared it, a person resolves
it); release a held page whose `dependency_wait` is over; escalate (`escalation`: the
chain's levels that are due, a missed recovery time objective); remind the responders of a
due stakeholder update (`updates`); repeat an unacknowledged incident's page every
`repeat_interval`. An incident whose every firing alert is silenced stays open but quiet
(no release, no escalation, no reminders, no repeats).
"""

from __future__ import annotations

from engine.incidents.escalation import check_rto, escalate, stopped
from engine.incidents.incident import Incident
from engine.incidents.notifications import notify
from engine.incidents.settings import Settings
from engine.incidents.silencing import quiet
from engine.incidents.state import EngineState
from engine.incidents.transaction import Transaction
from engine.incidents.transitions import release, resolve
from engine.incidents.updates import remind_due_update


def clear_for(settings: Settings, st: EngineState, incident: Incident, now: float) -> bool:
    if incident.declared_by is not None:
        return False
    for fp in incident.fingerprints:
        alert_state = st.alerts.get(fp)
        if alert_state is None:
            continue
        if alert_state.cleared_at is None or now - alert_state.cleared_at < settings.resolve_after:
            return False
    return True


def run_timers(settings: Settings, tx: Transaction, now: float) -> None:
    st = tx.state
    for incident in sorted(st.incidents.values(), key=lambda i: i.id):
        if not incident.flapping and clear_for(settings, st, incident, now):
            resolve(
                settings,
                tx,
                now,
                incident,
                None,
                f"all alerts clear for {settings.config.resolve_after}: resolved automatically",
            )
            continue
        if incident.held_until is not None:
            # A held page goes out when the wait is over (not while every alert is
            # silenced: then it waits for the silence, like an unheld incident's repeats).
            if now < incident.held_until or quiet(st, incident):
                continue
            release(
                settings,
                tx,
                now,
                incident,
                f"no incident on {', '.join(incident.depends_on)} within "
                f"{settings.config.dependency_wait}",
            )
        if quiet(st, incident):
            continue
        if not stopped(settings, incident):
            escalate(settings, tx, now, incident)
        check_rto(settings, tx, now, incident)
        remind_due_update(settings, tx, now, incident)
        if incident.acknowledged_at is not None:
            continue
        if incident.flapping:
            if (
                incident.last_notified_at is not None
                and now - incident.last_notified_at >= settings.repeat
            ):
                tx.suppress("flapping", incident_id=incident.id)
            continue
        if (
            incident.last_notified_at is not None
            and now - incident.last_notified_at >= settings.repeat
        ):
            receivers = settings.routed(incident.severity)
            notify(settings, tx, now, incident, "triggered", receivers, repeat=True)
            if not receivers:
                incident.last_notified_at = now
                tx.touch(incident)
