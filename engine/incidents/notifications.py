"""Turning an incident event into notifications for its receivers.

Notification ids are `<incident>:<event>:<receiver>:<seq>` with a per-incident sequence, so
re-applying a decision after a crash enqueues the same ids again (the store ignores them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.incidents.incident import Incident, Notification, NotificationEvent
from engine.incidents.ratelimit import within_rate_limit
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction

# Rate limits protect people from storms of *new* information; acknowledgements and
# resolutions close things at the receiver and always go out.
_PAGE_LIKE: frozenset[str] = frozenset({"triggered", "escalated", "updated"})


def notify(
    settings: Settings,
    tx: Transaction,
    now: float,
    incident: Incident,
    event: NotificationEvent,
    receivers: Sequence[str],
    repeat: bool = False,
    escalated_to: str = "",
    context: dict[str, Any] | None = None,
) -> None:
    """Queue `event` for `receivers`; `context` adds to the templates' (e.g. a `reason`
    line for reminders and RTO breaches)."""
    receivers = list(dict.fromkeys(receivers))
    if not receivers:
        return
    page_like = event in _PAGE_LIKE
    if page_like and incident.held_until is not None:
        return  # the dependency hold-down decides when (and whether) this one pages
    allowed = [
        r for r in receivers if not page_like or within_rate_limit(settings, tx, now, incident, r)
    ]
    if page_like:
        incident.last_notified_at = now
    tx.touch(incident)
    if not allowed:
        return
    snapshot = incident.webhook_snapshot()
    title = settings.renderer.title(incident, event)
    message = settings.renderer.internal_notification(
        incident, event, escalated_to=escalated_to, now=now, **(context or {})
    )
    for receiver in allowed:
        incident.notification_seq += 1
        tx.notifications.append(
            Notification(
                id=f"{incident.id}:{event}:{receiver}:{incident.notification_seq}",
                receiver=receiver,
                event=event,
                dedup_key=incident.id,
                incident=snapshot,
                created_at=now,
                message=message,
                title=title,
            )
        )
        if receiver not in incident.notified_receivers:
            incident.notified_receivers.append(receiver)
    tx.log(
        incident,
        now,
        "notified",
        f"{event}{' (repeat)' if repeat else ''} sent to {', '.join(allowed)}",
        data={"event": event, "receivers": allowed, "repeat": repeat},
    )
