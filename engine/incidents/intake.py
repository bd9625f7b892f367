"""Alerts in: what one `observe` does with each alert that fires, and with each that stopped.

A firing alert is deduplicated by fingerprint (a re-fire joins its incident and never
pages), checked against silences, then correlated into an open incident or opens a new
one — which pages at once or holds its page (`holddown`) — or, for a ticket on a tier set to
notify only, sends a notice instead (`tickets`). An alert missing from the set is
clear and starts its incident's clear timer, unless its SLO had no data this cycle.
"""

from __future__ import annotations

from engine.alerting.alerts import Alert
from engine.incidents import tickets
from engine.incidents.classify import classify_alert
from engine.incidents.correlation import find_incident, join, note_same_service
from engine.incidents.holddown import fold_into, hold, link_dependents, should_hold
from engine.incidents.incident import Incident, Severity
from engine.incidents.notifications import notify
from engine.incidents.settings import Settings
from engine.incidents.silencing import silenced as is_silenced
from engine.incidents.state import AlertState
from engine.incidents.transaction import Transaction, evolve
from engine.incidents.transitions import new_incident, reclassify, refresh_customer_notice


def process_firing(settings: Settings, tx: Transaction, now: float, alert: Alert) -> None:
    st = tx.state
    fp = alert.fingerprint
    tx.dirty = True
    silenced = is_silenced(st, alert, now) or alert.maintenance
    classified = classify_alert(alert, settings.config.severity_rules)
    prior = st.alerts.get(fp)
    incident = None if prior is None else st.incidents.get(prior.incident_id or "")

    if prior is not None and prior.needs_clear:
        st.alerts[fp] = evolve(prior, last_seen=now, silenced=silenced)
        tx.suppress("resolved_while_firing", fingerprint=fp)
        return

    if incident is not None:
        assert prior is not None
        st.alerts[fp] = evolve(
            prior,
            labels=dict(alert.labels),
            last_seen=now,
            cleared_at=None,
            silenced=silenced,
            classified=classified.severity.value,
            budget_remaining=alert.error_budget_remaining,
        )
        if prior.cleared_at is not None and not incident.flapping:
            tx.log(
                incident,
                now,
                "alert_joined",
                f"{alert.severity} alert on {alert.slo_id} fired again",
                data={"fingerprint": fp, "refire": True},
            )
        return

    if prior is not None and prior.notice is not None:
        if tickets.notify_only(settings, alert, classified):
            st.alerts[fp] = tickets.refire(prior, alert, now, silenced, classified.severity.value)
            return
        # Raised past what a notice covers (e.g. the budget ran out): the notice ends and
        # the alert opens or joins an incident below.
        prior = tickets.end_notice(tx, now, prior, f"superseded by a {classified.severity}")
        st.alerts[fp] = prior

    state = AlertState(
        fingerprint=fp,
        labels=dict(alert.labels),
        slo_id=alert.slo_id,
        service=alert.service,
        severity=alert.severity,
        first_seen=now if prior is None or prior.cleared_at is not None else prior.first_seen,
        last_seen=now,
        silenced=silenced,
        classified=classified.severity.value,
        budget_remaining=alert.error_budget_remaining,
    )
    if silenced:
        st.alerts[fp] = state
        tx.suppress("maintenance" if alert.maintenance else "silenced", fingerprint=fp)
        return

    target, how = find_incident(settings, st, now, alert, tx.graph)
    if target is None and tickets.notify_only(settings, alert, classified):
        st.alerts[fp] = tickets.open_notice(settings, tx, now, alert, state, classified)
        return
    if target is None:
        incident = open_incident(settings, tx, now, alert, classified.severity, classified.reason)
        st.alerts[fp] = evolve(state, incident_id=incident.id)
        return

    st.alerts[fp] = evolve(state, incident_id=target.id)
    join(settings, tx, now, alert, target, how)


def open_incident(
    settings: Settings, tx: Transaction, now: float, alert: Alert, severity: Severity, reason: str
) -> Incident:
    """A new incident for `alert`: page its receivers, or hold the page (see `holddown`)."""
    incident = new_incident(settings, tx, now, alert, severity, reason)
    note_same_service(settings, tx, now, incident)
    # This may be the root cause of incidents opened a little earlier on services that
    # depend on it: absorb those still holding their page, link those already paged.
    held_since = fold_into(settings, tx, now, incident)
    link_dependents(tx, now, incident)
    if should_hold(settings, incident):
        hold(settings, tx, now, incident, held_since)
        return incident
    refresh_customer_notice(settings, incident)
    notify(settings, tx, now, incident, "triggered", settings.routed(incident.severity))
    return incident


def clear_missing(
    tx: Transaction,
    now: float,
    firing: dict[str, Alert],
    inhibited: set[str],
    unknown: set[str],
) -> set[str]:
    """Start the clear timer of every known alert not in `firing`; returns the ids of the
    incidents one of them belongs to."""
    st = tx.state
    touched: set[str] = set()
    for fp, alert_state in list(st.alerts.items()):
        if alert_state.slo_id in unknown and fp not in firing:
            # A clear must be *observed* for `resolve_after`: while the SLO has no data
            # the clear timer restarts, so missing data never resolves an incident.
            if alert_state.cleared_at is not None and (
                alert_state.incident_id in st.incidents or alert_state.notice is not None
            ):
                st.alerts[fp] = evolve(alert_state, cleared_at=now)
                tx.dirty = True
            continue
        if fp in firing:
            continue
        if alert_state.cleared_at is None:
            st.alerts[fp] = evolve(alert_state, cleared_at=now, needs_clear=False, classified=None)
            tx.dirty = True
            incident = st.incidents.get(alert_state.incident_id or "")
            if incident is not None:
                touched.add(incident.id)
                if not incident.flapping:
                    why = " (superseded by the page)" if fp in inhibited else ""
                    tx.log(
                        incident,
                        now,
                        "alert_cleared",
                        f"{alert_state.severity} alert on {alert_state.slo_id} cleared{why}",
                        data={"fingerprint": fp},
                    )
    return touched


def reclassify_changed(settings: Settings, tx: Transaction, now: float, touched: set[str]) -> None:
    """Re-derive the severity of incidents whose alerts fired or cleared this cycle."""
    st = tx.state
    for incident in st.incidents.values():
        if incident.id in touched or any(
            st.alerts.get(fp) is not None and st.alerts[fp].last_seen == now
            for fp in incident.fingerprints
        ):
            reclassify(settings, tx, now, incident)


def prune(tx: Transaction) -> None:
    """Forget cleared alerts with no incident once their flap history is quiet."""
    st = tx.state
    for fp, alert_state in list(st.alerts.items()):
        if alert_state.cleared_at is None or alert_state.needs_clear or alert_state.notice:
            continue
        if alert_state.incident_id is not None and alert_state.incident_id in st.incidents:
            continue
        fs = st.flap.get(fp)
        if fs is not None and (fs.flapping or any(fs.states)):
            continue
        del st.alerts[fp]
        st.flap.pop(fp, None)
        tx.dirty = True
