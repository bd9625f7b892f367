"""Tickets that notify without an incident (`ticket_incidents: {<tier>: notify}`).

On a tier set to `notify`, a ticket-level alert that would open a new SEV3/SEV4 incident
sends a notice instead: the receivers routed for that severity get a `triggered`
notification of kind "ticket", with no INC- id, no timeline, escalation, RTO or review.
What still applies is what an alert router does (PagerDuty's and Grafana OnCall's
low-urgency handling): silences (a silenced ticket sends nothing), deduplication (one notice
per alert fingerprint while it fires; a re-fire within `resolve_after` of clearing is the
same notice), `repeat_interval` repeats while it fires, and one `resolved` notification to
the same receivers once it has been clear for `resolve_after` (not while it flaps, so a
flapping ticket neither repeats nor resolves). A ticket that joins an open incident, or
that the severity rules raise above SEV3, is handled as before.

The notice lives on the alert's `AlertState.notice`; ids are deterministic
(`ticket:<fingerprint>:<since>:<event>:<receiver>:<at>`), so re-applying a decision after a
crash enqueues nothing new.
"""

from __future__ import annotations

from typing import Any

from engine.alerting.alerts import Alert
from engine.incidents.classify import Classification
from engine.incidents.incident import (
    IncidentStatus,
    Notification,
    NotificationEvent,
    Severity,
    iso,
)
from engine.incidents.settings import Settings
from engine.incidents.state import AlertState, EngineState, Notice
from engine.incidents.transaction import Transaction, evolve

# Only the severities a ticket justifies on its own; SEV1/SEV2 always open an incident.
_NOTICE_SEVERITIES = frozenset({Severity.SEV3, Severity.SEV4})


def notify_only(settings: Settings, alert: Alert, classified: Classification) -> bool:
    """Whether this ticket, needing an incident of its own, only notifies on its tier."""
    return (
        alert.severity == "ticket"
        and classified.severity in _NOTICE_SEVERITIES
        and settings.config.ticket_incidents.mode(alert.tier) == "notify"
    )


def key(fingerprint: str) -> str:
    """The notice's dedup key (and the `id` of its snapshot): stable per alert."""
    return f"ticket:{fingerprint}"


def open_notice(
    settings: Settings,
    tx: Transaction,
    now: float,
    alert: Alert,
    state: AlertState,
    classified: Classification,
) -> AlertState:
    """Send the notice of a ticket that needs no incident; returns its alert state."""
    receivers = tuple(settings.routed(classified.severity))
    notice = Notice(since=now, sent_at=now, severity=classified.severity.value, receivers=receivers)
    _send(tx, now, state, notice, "triggered", alert, repeat=False)
    return evolve(state, notice=notice)


def refire(
    state: AlertState, alert: Alert, now: float, silenced: bool, severity: str
) -> AlertState:
    """The alert of an open notice fired again: the same notice, nothing sent."""
    return evolve(
        state,
        labels=dict(alert.labels),
        last_seen=now,
        cleared_at=None,
        silenced=silenced,
        classified=severity,
        budget_remaining=alert.error_budget_remaining,
    )


def end_notice(tx: Transaction, now: float, state: AlertState, why: str) -> AlertState:
    """Send the notice's `resolved` and forget it."""
    assert state.notice is not None
    _send(tx, now, state, state.notice, "resolved", None, repeat=False, why=why)
    tx.dirty = True
    return evolve(state, notice=None)


def notice_timers(settings: Settings, tx: Transaction, now: float) -> None:
    """Resolve notices clear for `resolve_after`; repeat the firing ones every
    `repeat_interval` (not while silenced or flapping)."""
    st = tx.state
    for fp in sorted(fp for fp, a in st.alerts.items() if a.notice is not None):
        state = st.alerts[fp]
        notice = state.notice
        assert notice is not None
        if _flapping(st, fp):
            continue
        if state.cleared_at is not None:
            if now - state.cleared_at >= settings.resolve_after:
                why = f"clear for {settings.config.resolve_after}"
                st.alerts[fp] = end_notice(tx, now, state, why)
            continue
        if state.silenced or now - notice.sent_at < settings.repeat:
            continue
        again = evolve(notice, sent_at=now)
        _send(tx, now, state, again, "triggered", None, repeat=True)
        st.alerts[fp] = evolve(state, notice=again)
        tx.dirty = True


def _flapping(st: EngineState, fp: str) -> bool:
    flap = st.flap.get(fp)
    return flap is not None and flap.flapping


def _send(
    tx: Transaction,
    now: float,
    state: AlertState,
    notice: Notice,
    event: NotificationEvent,
    alert: Alert | None,
    repeat: bool,
    why: str = "",
) -> None:
    snapshot = _snapshot(state, notice, event, now, alert)
    title = _title(state, notice, event, repeat)
    message = _message(state, notice, event, alert, why)
    for receiver in notice.receivers:
        tx.notifications.append(
            Notification(
                id=f"{key(state.fingerprint)}:{notice.since:.0f}:{event}:{receiver}:{now:.0f}",
                receiver=receiver,
                event=event,
                dedup_key=key(state.fingerprint),
                incident=snapshot,
                created_at=now,
                message=message,
                title=title,
                kind="ticket",
            )
        )


def _snapshot(
    state: AlertState, notice: Notice, event: NotificationEvent, now: float, alert: Alert | None
) -> dict[str, Any]:
    """The webhook contract's `incident` object, filled for a notice (no incident fields)."""
    resolved = event == "resolved"
    return {
        "id": key(state.fingerprint),
        "kind": "ticket",
        "severity": notice.severity,
        "status": (IncidentStatus.resolved if resolved else IncidentStatus.investigating).value,
        "service": state.service,
        "slos": [state.slo_id],
        "opened_at": iso(notice.since),
        "summary": alert.summary if alert is not None else f"ticket-level burn on {state.slo_id}",
        "runbook_url": None if alert is None else alert.runbook_url,
        "dashboard_url": None if alert is None else alert.dashboard_url,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "commander": None,
        "resolved_at": iso(now) if resolved else None,
        "escalation_level": 0,
        "related_services": [],
        "flapping": False,
        "fingerprints": [state.fingerprint],
        "customer_notice": None,
        "tier": state.labels.get("tier"),
        "error_budget_remaining": state.budget_remaining,
    }


def _title(state: AlertState, notice: Notice, event: NotificationEvent, repeat: bool) -> str:
    what = "resolved" if event == "resolved" else "reminder" if repeat else "ticket"
    return f"[{what}] {notice.severity} {state.slo_id}: ticket-level error budget burn"


def _message(
    state: AlertState, notice: Notice, event: NotificationEvent, alert: Alert | None, why: str
) -> str:
    if event == "resolved":
        return f"The ticket-level burn on {state.slo_id} has stopped ({why})."
    lines = [alert.summary if alert is not None else f"{state.slo_id} is still burning."]
    if state.budget_remaining is not None:
        lines.append(f"Error budget remaining: {state.budget_remaining:.1%}.")
    lines.append(
        f"No incident was opened: tickets on {state.labels.get('tier', 'this')}-tier services "
        "notify only (incidents.ticket_incidents)."
    )
    return "\n".join(lines)
