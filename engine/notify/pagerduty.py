"""PagerDuty Events API v2: one incident ↔ one PagerDuty alert, keyed by the incident id.

Triggered, escalated and updated notifications are all `trigger` events: PagerDuty folds a
trigger whose dedup_key matches an open alert into that alert, so a re-sent or updated
trigger never pages twice. Acknowledge and resolve carry only the routing key, the action
and the dedup_key, which is all the API reads for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.notify.base import (
    PagerDutyConfig,
    PermanentDeliveryError,
    Secret,
    headline,
    iso8601,
)
from engine.notify.http import encode_json, post_json
from engine.notify.tls import delivery_tls

if TYPE_CHECKING:
    from engine.incidents.incident import Notification

SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}
ACTION = {
    "triggered": "trigger",
    "escalated": "trigger",
    "updated": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
# Limits from the Events v2 schema; longer values are rejected with 400.
_SUMMARY_MAX = 1024
_DEDUP_KEY_MAX = 255


def event_body(
    notification: Notification, config: PagerDutyConfig, routing_key: str
) -> dict[str, Any]:
    """The exact Events v2 request body for one notification."""
    action = ACTION.get(notification.event)
    if action is None:
        raise PermanentDeliveryError(f"unknown notification event {notification.event!r}")
    if not notification.dedup_key or len(notification.dedup_key) > _DEDUP_KEY_MAX:
        raise PermanentDeliveryError(
            f"dedup_key must be 1..{_DEDUP_KEY_MAX} characters, got {len(notification.dedup_key)}"
        )
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notification.dedup_key,
    }
    if action != "trigger":
        return body
    incident = notification.incident
    severity = SEVERITY.get(str(incident.get("severity")))
    if severity is None:
        raise PermanentDeliveryError(
            f"incident severity {incident.get('severity')!r} is not one of SEV1..SEV4"
        )
    details = dict(incident)
    details["event"] = notification.event
    if notification.message:
        details["message"] = notification.message
    payload: dict[str, Any] = {
        "summary": headline(notification)[:_SUMMARY_MAX],
        "source": config.source,
        "severity": severity,
        "timestamp": iso8601(incident.get("opened_at")),
        "component": incident.get("service"),
        "group": incident.get("tier") or incident.get("service"),
        # A budget notice is not a burn: its own class lets event rules route it (its
        # severity is "info"; whether that is low urgency is the PagerDuty service's rule).
        "class": "error_budget_policy" if notification.kind == "budget_policy" else "slo_burn",
        "custom_details": details,
    }
    body["payload"] = {key: value for key, value in payload.items() if value is not None}
    links = [
        {"href": incident[key], "text": text}
        for key, text in (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard"))
        if incident.get(key)
    ]
    links.extend({"href": link.href, "text": link.text} for link in config.links)
    if links:
        body["links"] = links
    body["client"] = "slo-engine"
    if incident.get("dashboard_url"):
        body["client_url"] = incident["dashboard_url"]
    return body


class PagerDutyNotifier:
    def __init__(self, name: str, config: PagerDutyConfig, routing_key: Secret) -> None:
        self.name = name
        self.config = config
        self._routing_key = routing_key

    def send(self, notification: Notification) -> None:
        key = self._routing_key.reveal_for_delivery()
        try:
            body = encode_json(event_body(notification, self.config, key))
        except (TypeError, ValueError) as exc:
            raise PermanentDeliveryError(f"notification is not JSON-serializable: {exc}") from None
        # 202 is PagerDuty's "queued"; any other 2xx is accepted too. 400 means the event
        # itself is invalid and is never retried (post_json classifies it permanent).
        post_json(
            self.config.url,
            body,
            timeout=self.config.timeout_seconds,
            secrets=(key,),
            what=f"PagerDuty receiver {self.name!r}",
            tls=delivery_tls(self.config),
        )

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(name={self.name!r}, url={self.config.url!r}, routing_key=***)"
