"""Generic webhook: the documented, stable JSON contract for anything we do not speak natively.

Body (exactly these three keys; `incident` is the incident snapshot):

    {"event": "triggered|escalated|updated|acknowledged|resolved",
     "dedup_key": "INC-2025-0001",
     "incident": {"id", "severity", "status", "service", "slos", "opened_at",
                  "summary", "runbook_url", ...}}

Delivery is at-least-once, so every request carries `Idempotency-Key` = the notification
id: the same notification retried has the same key; a new event on the same incident has
a new key but the same dedup_key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.notify.base import PermanentDeliveryError, Secret, WebhookConfig
from engine.notify.http import encode_json, post_json
from engine.notify.tls import delivery_tls
from engine.redact import redact

if TYPE_CHECKING:
    from engine.incidents.incident import Notification

SIGNATURE_HEADER = "X-SLO-Engine-Signature"
EVENTS = frozenset({"triggered", "escalated", "updated", "acknowledged", "resolved"})


def webhook_body(notification: Notification) -> dict[str, Any]:
    if notification.event not in EVENTS:
        raise PermanentDeliveryError(f"unknown notification event {notification.event!r}")
    # The contract is defined once, next to the Notification it serializes.
    return notification.webhook_body()


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>` HMAC of the exact body bytes; receivers compare in constant time."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        *,
        header_secrets: Mapping[str, Secret] | None = None,
        signing_secret: Secret | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._header_secrets = dict(header_secrets or {})
        self._signing_secret = signing_secret

    def send(self, notification: Notification) -> None:
        try:
            body = encode_json(webhook_body(notification))
        except (TypeError, ValueError) as exc:
            raise PermanentDeliveryError(f"notification is not JSON-serializable: {exc}") from None
        headers = dict(self.config.headers)
        secrets: list[str] = []
        for header, secret in self._header_secrets.items():
            headers[header] = secret.reveal_for_delivery()
            secrets.append(headers[header])
        headers["Idempotency-Key"] = notification.id
        if self._signing_secret is not None:
            key = self._signing_secret.reveal_for_delivery()
            secrets.append(key)
            headers[SIGNATURE_HEADER] = sign(key, body)
        post_json(
            self.config.url,
            body,
            headers=headers,
            timeout=self.config.timeout_seconds,
            secrets=secrets,
            what=f"webhook receiver {self.name!r}",
            tls=delivery_tls(self.config),
        )

    def __repr__(self) -> str:
        return (
            f"WebhookNotifier(name={self.name!r}, url={redact(self.config.url)!r}, "
            f"secret_headers={sorted(self._header_secrets)!r}, "
            f"signed={self._signing_secret is not None})"
        )
