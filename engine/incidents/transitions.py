"""An incident's life: opened, acknowledged, status and severity changes, resolved.

Each transition records itself on the incident's timeline and tells the receivers that need
to know. Severity only rises on its own (`reclassify`); a fall is suggested on the timeline
and left to a person (`change_severity` with an actor). Resolving an incident at one of
`review_severities` leaves it in `review` until its post-incident review is closed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.alerting.alerts import Alert
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.notifications import notify
from engine.incidents.runbooks import category_of, runbook_for
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction, evolve
from engine.incidents.updates import restart_clock, start_clock


def incident_year(now: float) -> int:
    return datetime.fromtimestamp(now, tz=UTC).year


def next_incident_id(tx: Transaction, now: float) -> str:
    """INC-<year>-<n>: sequential per UTC year, never reused (the store keeps the sequence)."""
    st = tx.state
    year = incident_year(now)
    number = st.sequences.get(year, 0) + 1
    st.sequences[year] = number
    return f"INC-{year}-{number:04d}"


def new_incident(
    settings: Settings, tx: Transaction, now: float, alert: Alert, severity: Severity, reason: str
) -> Incident:
    """Number and record a new incident for `alert`; nobody is told yet."""
    st = tx.state
    category = category_of(alert)
    incident = Incident(
        id=next_incident_id(tx, now),
        service=alert.service,
        severity=severity,
        status=IncidentStatus.investigating,
        summary=alert.summary,
        opened_at=now,
        slo_ids=[alert.slo_id],
        fingerprints=[alert.fingerprint],
        runbook_url=runbook_for(
            settings.config.runbooks,
            alert.service,
            category,
            [alert.slo_id],
            alert.runbook_url or alert.annotations.get("runbook_url"),
        ),
        dashboard_url=alert.dashboard_url,
        severity_changed_at=now,
        depends_on=sorted(settings.deps(alert)),
        category=category,
        customer_facing=alert.customer_facing,
        tier=alert.tier,
        rto_seconds=settings.rto.get(alert.tier),
        slo_budget={alert.slo_id: [alert.error_budget_remaining] * 2},
    )
    st.incidents[incident.id] = incident
    tx.log(
        incident,
        now,
        "opened",
        f"opened as {severity.value}: {reason}",
        data={
            "fingerprint": alert.fingerprint,
            "labels": dict(alert.labels),
            "alert_severity": alert.severity,
            "short_error_ratio": alert.short_error_ratio,
            "recent_error_ratio": alert.recent_error_ratio,
            "error_budget_remaining": alert.error_budget_remaining,
            "burn_rate": alert.burn_rate,
        },
    )
    return incident


def acknowledge(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    by: str,
    commander: str | None,
) -> None:
    """Stops escalation and repeats. The first responder commands unless named otherwise."""
    if incident.acknowledged_at is not None:
        tx.log(incident, now, "acknowledged", f"acknowledged again by {by}", actor=by)
        return
    incident.acknowledged_at = now
    incident.acknowledged_by = by
    if commander or incident.commander is None:
        incident.commander = commander or by
    start_clock(incident, now)
    tx.log(
        incident,
        now,
        "acknowledged",
        f"acknowledged by {by}; incident commander {incident.commander}",
        actor=by,
    )
    if incident.held_until is not None:
        # Someone already handles it: no page is needed, and an incident a person took
        # is no longer folded away into another one (a later root cause only links).
        release(settings, tx, now, incident, f"acknowledged by {by} before the page")
    notify(settings, tx, now, incident, "acknowledged", incident.notified_receivers)


def change_status(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    status: IncidentStatus,
    by: str,
    note: str,
) -> None:
    """A person's status change short of resolving (investigating, mitigating, monitoring)."""
    if incident.status is status:
        return
    old = incident.status
    incident.status = status
    restart_clock(incident, now)
    tx.log(
        incident,
        now,
        "status_changed",
        f"status {old.value} → {status.value}" + (f": {note}" if note else ""),
        actor=by,
        data={"from": old.value, "to": status.value},
    )
    refresh_customer_notice(settings, incident)
    notify(settings, tx, now, incident, "updated", incident.notified_receivers)


def reclassify(settings: Settings, tx: Transaction, now: float, incident: Incident) -> None:
    st = tx.state
    levels = [
        Severity(st.alerts[fp].classified)  # type: ignore[arg-type]
        for fp in incident.fingerprints
        if fp in st.alerts
        and st.alerts[fp].cleared_at is None
        and st.alerts[fp].classified is not None
    ]
    if not levels:
        return
    target = Severity.most_severe(*levels)
    if target.is_more_severe_than(incident.severity):
        change_severity(settings, tx, now, incident, target, "alerts now justify it")
    elif target is incident.severity:
        incident.suggested_severity = None
    elif target is not incident.suggested_severity:
        incident.suggested_severity = target
        tx.log(
            incident,
            now,
            "severity_changed",
            f"alerts now justify {target.value}; severity stays {incident.severity.value} "
            "until a person lowers it",
            data={"from": incident.severity.value, "to": target.value, "applied": False},
        )


def change_severity(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    severity: Severity,
    reason: str,
    actor: str | None = None,
) -> None:
    old = incident.severity
    incident.severity = severity
    incident.suggested_severity = None
    rising = severity.is_more_severe_than(old)
    if rising:
        # A more severe incident gets a fresh (shorter) response target; levels already
        # notified stay notified.
        incident.severity_changed_at = now
    tx.log(
        incident,
        now,
        "severity_changed",
        f"severity {old.value} → {severity.value}: {reason}",
        actor=actor,
        data={"from": old.value, "to": severity.value, "applied": True},
    )
    refresh_customer_notice(settings, incident)
    if incident.held_until is not None:
        # Nobody has been told yet: the held page will carry the new severity — unless
        # this severity is one that must not wait.
        if severity not in settings.hold_severities:
            release(settings, tx, now, incident, f"severity rose to {severity.value}")
        return
    routed = settings.routed(severity) if rising else []
    told = [r for r in incident.notified_receivers if r not in routed]
    new = [r for r in routed if r not in incident.notified_receivers]
    again = [r for r in routed if r in incident.notified_receivers]
    notify(settings, tx, now, incident, "updated", again + told)
    notify(settings, tx, now, incident, "triggered", new)


def raise_severity_quietly(
    tx: Transaction, now: float, incident: Incident, severity: Severity, reason: str
) -> None:
    """A severity rise on an incident that has not paged yet: its first page carries it."""
    old = incident.severity
    incident.severity = severity
    incident.suggested_severity = None
    incident.severity_changed_at = now
    tx.log(
        incident,
        now,
        "severity_changed",
        f"severity {old.value} → {severity.value}: {reason}",
        data={"from": old.value, "to": severity.value, "applied": True},
    )


def refresh_customer_notice(settings: Settings, incident: Incident) -> None:
    if incident.severity in settings.config.customer_notice_severities or (
        incident.customer_notice is not None
    ):
        incident.customer_notice = settings.renderer.customer_notice(incident)


def release(settings: Settings, tx: Transaction, now: float, incident: Incident, why: str) -> None:
    """End a dependency hold: page now unless a person already acknowledged it."""
    incident.held_until = None
    tx.log(incident, now, "hold_ended", f"page no longer held: {why}", data={"reason": why})
    if incident.acknowledged_at is not None:
        return
    refresh_customer_notice(settings, incident)
    notify(settings, tx, now, incident, "triggered", settings.routed(incident.severity))


def resolve(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    by: str | None,
    note: str,
) -> None:
    st = tx.state
    review = incident.severity in settings.config.review_severities
    incident.status = IncidentStatus.review if review else IncidentStatus.resolved
    incident.resolved_at = now
    incident.flapping = False
    incident.held_until = None  # resolved before its page: nobody needs to hear of it
    incident.next_update_at = None
    note_budgets(tx, incident)
    if review:
        note += " — in review until its post-incident review is closed"
    tx.log(incident, now, "resolved", note, actor=by, data={"review": True} if review else None)
    for fp in incident.fingerprints:
        alert_state = st.alerts.get(fp)
        if alert_state is None or alert_state.incident_id != incident.id:
            continue
        # Still firing when a person resolved it: it must clear before it may page again.
        st.alerts[fp] = evolve(
            alert_state, incident_id=None, needs_clear=alert_state.cleared_at is None
        )
    del st.incidents[incident.id]
    refresh_customer_notice(settings, incident)
    notify(settings, tx, now, incident, "resolved", incident.notified_receivers)


def note_budgets(tx: Transaction, incident: Incident) -> None:
    """The latest error budget of each of the incident's SLOs (for the review's impact)."""
    latest: dict[str, float] = {}
    for fp in incident.fingerprints:
        alert_state = tx.state.alerts.get(fp)
        if alert_state is not None and alert_state.budget_remaining is not None:
            previous = latest.get(alert_state.slo_id)
            latest[alert_state.slo_id] = (
                alert_state.budget_remaining
                if previous is None
                else min(previous, alert_state.budget_remaining)
            )
    for slo_id, remaining in latest.items():
        first = incident.slo_budget.get(slo_id, [remaining])[0]
        incident.slo_budget[slo_id] = [remaining if first is None else first, remaining]
