"""The per-receiver notification rate limit, and the one summary sent when it trips.

A sliding window per receiver counts page-like notifications (see `notifications`). Once a
receiver had `max_notifications` within `window`, further ones are held back and logged on
their incident, and the receiver gets a single summary notification for the whole trip — a
storm turns into one message, not silence.
"""

from __future__ import annotations

from engine.incidents.config import RateLimit
from engine.incidents.incident import Incident, IncidentStatus, Notification, iso
from engine.incidents.settings import Settings
from engine.incidents.state import RateState
from engine.incidents.transaction import Transaction


def within_rate_limit(
    settings: Settings, tx: Transaction, now: float, incident: Incident, receiver: str
) -> bool:
    """Count one notification to `receiver` at `now`, or hold it back if the limit is hit."""
    st = tx.state
    config = settings.config.receiver(receiver)
    limit: RateLimit = (config.rate_limit if config else None) or settings.config.rate_limit
    window = limit.window.seconds
    old = st.rate.get(receiver, RateState())
    sent = tuple(t for t in old.sent if t > now - window)
    if len(sent) < limit.max_notifications:
        st.rate[receiver] = RateState(sent=(*sent, now))
        return True
    tx.suppress("rate_limited", incident_id=incident.id, receiver=receiver)
    tx.log(
        incident,
        now,
        "suppressed",
        f"notification to {receiver} held back: rate limit {limit.max_notifications} per "
        f"{limit.window} reached",
        data={"receiver": receiver, "reason": "rate_limited"},
    )
    suppressed = (*old.suppressed, incident.id)
    if not old.tripped:
        tx.notifications.append(rate_limit_summary(settings, now, receiver, limit, incident))
    st.rate[receiver] = RateState(sent=sent, tripped=True, suppressed=suppressed)
    return False


def rate_limit_summary(
    settings: Settings, now: float, receiver: str, limit: RateLimit, incident: Incident
) -> Notification:
    message = settings.renderer.rate_limit_summary(
        receiver,
        limit.max_notifications,
        str(limit.window),
        [incident.id],
        incident.severity.value,
    )
    summary = (
        f"Notification rate limit reached for {receiver}: {limit.max_notifications} "
        f"per {limit.window}; further notifications held back"
    )
    return Notification(
        id=f"rate-limit:{receiver}:{now:.3f}",
        receiver=receiver,
        event="triggered",
        dedup_key=f"rate-limit:{receiver}",
        incident={
            "id": "rate-limit",
            "severity": incident.severity.value,
            "status": IncidentStatus.investigating.value,
            "service": "slo-engine",
            "slos": [],
            "opened_at": iso(now),
            "summary": summary,
            "runbook_url": None,
            "dashboard_url": None,
            "acknowledged_by": None,
            "escalation_level": 0,
            "suppressed": [incident.id],
        },
        created_at=now,
        message=message,
        title=f"[{incident.severity.value}] {summary}",
        kind="summary",
    )
