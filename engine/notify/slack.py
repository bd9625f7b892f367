"""Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat all accept this shape).

Uses the classic `attachments` layout rather than Block Kit because every Slack-compatible
server renders it, with the severity as the colour bar. All incident text is escaped for
Slack's mrkdwn (&, <, >) so a summary cannot inject links or mentions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.notify.base import PermanentDeliveryError, Secret, SlackConfig, headline
from engine.notify.http import encode_json, post_json
from engine.notify.tls import delivery_tls

if TYPE_CHECKING:
    from engine.incidents.incident import Notification

COLOUR = {"SEV1": "#b00020", "SEV2": "#e8590c", "SEV3": "#f2c744", "SEV4": "#3b82f6"}
RESOLVED_COLOUR = "#2eb886"
ACKNOWLEDGED_COLOUR = "#9e9e9e"


def escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    # Inside <url|label> a '|' or '>' in the URL would end the link early.
    safe_url = escape(url).replace("|", "%7C")
    return f"<{safe_url}|{escape(label)}>"


def _budget_policy_fields(notice: dict[str, Any]) -> list[dict[str, Any]]:
    """A budget notice is no incident: no severity or status to show, but what was
    crossed and how much is spent."""
    slos = notice.get("slos") or []
    threshold = notice.get("policy_threshold_percent")
    consumed = notice.get("budget_consumed_percent")
    fields = [
        {"title": "Service", "value": escape(notice.get("service")), "short": True},
        {"title": "SLO", "value": escape(", ".join(map(str, slos))), "short": True},
    ]
    if isinstance(consumed, int | float):
        fields.append({"title": "Budget consumed", "value": f"{consumed:.1f} %", "short": True})
    if isinstance(threshold, int | float):
        policy = f"{notice.get('policy_action')} at {threshold:g} %"
        fields.append({"title": "Policy", "value": escape(policy), "short": True})
    return fields


def slack_body(notification: Notification) -> dict[str, Any]:
    incident = notification.incident
    if notification.kind == "budget_policy":
        return _budget_policy_body(notification)
    severity = str(incident.get("severity"))
    if notification.event == "resolved":
        colour = RESOLVED_COLOUR
    elif notification.event == "acknowledged":
        colour = ACKNOWLEDGED_COLOUR
    else:
        colour = COLOUR.get(severity, COLOUR["SEV4"])
    title = f"{notification.event.upper()}: {headline(notification)}"
    fields = [
        {"title": "Severity", "value": escape(severity), "short": True},
        {"title": "Status", "value": escape(incident.get("status")), "short": True},
        {"title": "Service", "value": escape(incident.get("service")), "short": True},
    ]
    slos = incident.get("slos") or []
    if slos:
        fields.append({"title": "SLOs", "value": escape(", ".join(map(str, slos))), "short": True})
    if incident.get("acknowledged_by"):
        fields.append(
            {
                "title": "Acknowledged by",
                "value": escape(incident["acknowledged_by"]),
                "short": True,
            }
        )
    links = [
        _link(incident[key], label)
        for key, label in (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard"))
        if incident.get(key)
    ]
    if links:
        fields.append({"title": "Links", "value": " · ".join(links), "short": False})
    attachment: dict[str, Any] = {
        "fallback": escape(title),
        "color": colour,
        "title": escape(title),
        "text": escape(notification.message or incident.get("summary") or ""),
        "fields": fields,
        "footer": f"slo-engine · {escape(notification.dedup_key)}",
    }
    if incident.get("dashboard_url"):
        attachment["title_link"] = incident["dashboard_url"]
    return {"text": escape(title), "attachments": [attachment]}


def _budget_policy_body(notification: Notification) -> dict[str, Any]:
    notice = notification.incident
    freeze = notice.get("policy_action") == "freeze"
    if notification.event == "resolved":
        # A thaw lifts the freeze: it reads as good news, not as one more freeze notice.
        title = f"RELEASES UNFROZEN: {headline(notification)}"
        colour = RESOLVED_COLOUR
    else:
        title = f"BUDGET POLICY: {headline(notification)}"
        # A freeze holds releases: the colour of a serious state, not of an outage.
        colour = COLOUR["SEV2"] if freeze else COLOUR["SEV3"]
    attachment: dict[str, Any] = {
        "fallback": escape(title),
        "color": colour,
        "title": escape(title),
        "text": escape(notification.message),
        "fields": _budget_policy_fields(notice),
        "footer": f"slo-engine · {escape(notification.dedup_key)}",
    }
    if notice.get("runbook_url"):
        attachment["title_link"] = notice["runbook_url"]
    return {"text": escape(title), "attachments": [attachment]}


class SlackNotifier:
    def __init__(self, name: str, config: SlackConfig, webhook_url: Secret) -> None:
        self.name = name
        self.config = config
        self._webhook_url = webhook_url

    def send(self, notification: Notification) -> None:
        url = self._webhook_url.reveal_for_delivery()
        try:
            body = encode_json(slack_body(notification))
        except (TypeError, ValueError) as exc:
            raise PermanentDeliveryError(f"notification is not JSON-serializable: {exc}") from None
        post_json(
            url,
            body,
            timeout=self.config.timeout_seconds,
            # The whole URL and its token path are secret; error texts must not echo them.
            secrets=(url, url.split("://", 1)[-1].split("/", 1)[-1]),
            what=f"Slack receiver {self.name!r}",
            tls=delivery_tls(self.config),
        )

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r}, webhook_url=***)"
