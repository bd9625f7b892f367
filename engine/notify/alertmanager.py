"""Alertmanager API v2: incidents become alerts that Alertmanager routes, groups and silences.

Alertmanager forgets an alert once its `endsAt` passes, so a client must keep re-posting
firing alerts — Prometheus does so every evaluation with endsAt = now + 4 × its resend
interval, which survives three lost posts. `sync()` keeps that contract for every open
incident; the daemon calls it each cycle. A resolved incident is posted once more with
endsAt ≤ now, which Alertmanager treats as resolved immediately.

One alert per (incident, SLO). Its identity is its label set, so when an incident's
severity label changes the previous label set is resolved explicitly instead of being left
to linger until its endsAt. That memory is per process: after a restart an orphaned label
set simply expires within 4 × resend_interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.notify.base import (
    AlertmanagerConfig,
    Clock,
    PermanentDeliveryError,
    headline,
    incident_headline,
    iso8601,
)
from engine.notify.http import encode_json, post_json
from engine.notify.tls import delivery_tls
from engine.redact import redact

if TYPE_CHECKING:
    from engine.incidents.incident import Incident, Notification

ALERTNAME = "SLOEngineIncident"
# An error-budget policy's notice (docs/budgets.md): its own name, so routes and inhibit
# rules tell "a budget threshold was crossed" from an incident or a rate-limit summary.
BUDGET_POLICY_ALERTNAME = "SLOBudgetPolicy"
SUPPRESSED_ALERTNAME = "SLOEngineNotificationsSuppressed"
_EVENTS = frozenset({"triggered", "escalated", "updated", "acknowledged", "resolved"})
_LabelKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SyncResult:
    firing: int
    resolved: int
    posted: bool


def _snapshot(incident: Incident | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(incident, Mapping):
        return incident
    return incident.webhook_snapshot()


def _key(labels: Mapping[str, str]) -> _LabelKey:
    return tuple(sorted(labels.items()))


class AlertmanagerNotifier:
    def __init__(self, name: str, config: AlertmanagerConfig, *, clock: Clock = time.time) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._endpoint = config.url.rstrip("/") + "/api/v2/alerts"
        self._lock = threading.Lock()
        # incident id → label sets last posted as firing (see module docstring).
        self._active: dict[str, dict[_LabelKey, dict[str, Any]]] = {}
        self._last_sync_post: float | None = None

    # -- alert construction -------------------------------------------------------------

    def labels_for(self, incident: Mapping[str, Any]) -> list[dict[str, str]]:
        base = {
            **self.config.labels,
            "alertname": ALERTNAME,
            "incident": str(incident["id"]),
            "service": str(incident.get("service") or ""),
            "severity": str(incident.get("severity") or ""),
        }
        # Prometheus semantics: an empty label value is the same as no label.
        base = {k: v for k, v in base.items() if v}
        slos = [str(s) for s in incident.get("slos") or []]
        if not slos:
            return [base]
        return [{**base, "slo": slo} for slo in slos]

    def _annotations(
        self, incident: Mapping[str, Any], summary: str, message: str | None
    ) -> dict[str, str]:
        annotations = {
            "summary": summary,
            "description": message or str(incident.get("summary") or ""),
            "runbook_url": incident.get("runbook_url"),
            "dashboard_url": incident.get("dashboard_url"),
            "incident_status": incident.get("status"),
            "acknowledged_by": incident.get("acknowledged_by"),
            "escalation_level": incident.get("escalation_level"),
        }
        return {k: str(v) for k, v in annotations.items() if v not in (None, "")}

    def _alert(
        self,
        labels: dict[str, str],
        incident: Mapping[str, Any],
        annotations: dict[str, str],
        ends_at: float,
    ) -> dict[str, Any]:
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": iso8601(incident.get("opened_at")),
            "endsAt": iso8601(ends_at),
        }
        generator = incident.get("dashboard_url") or self.config.external_url
        if generator:
            alert["generatorURL"] = generator
        if alert["startsAt"] is None:
            del alert["startsAt"]
        return alert

    def budget_policy_alert(self, notification: Notification, ends_at: float) -> dict[str, Any]:
        """The alert of a `budget_policy` notice: labels say which SLO crossed which
        threshold with which action; the annotations say how much budget is spent."""
        notice = notification.incident
        threshold = notice.get("policy_threshold_percent")
        slos = notice.get("slos") or []
        labels = {
            **self.config.labels,
            "alertname": BUDGET_POLICY_ALERTNAME,
            "service": str(notice.get("service") or ""),
            "slo": str(slos[0]) if slos else "",
            "threshold": f"{threshold:g}" if isinstance(threshold, int | float) else "",
            "action": str(notice.get("policy_action") or ""),
            "severity": str(notice.get("severity") or ""),
        }
        consumed = notice.get("budget_consumed_percent")
        annotations = {
            "summary": headline(notification),
            "description": notification.message,
            "budget_consumed_percent": (
                f"{consumed:.1f}" if isinstance(consumed, int | float) else None
            ),
            "runbook_url": notice.get("runbook_url"),
        }
        return self._alert(
            {k: v for k, v in labels.items() if v},
            notice,
            {k: str(v) for k, v in annotations.items() if v not in (None, "")},
            ends_at,
        )

    def _firing_until(self, now: float) -> float:
        return now + 4 * self.config.resend_interval.seconds

    def _post(self, alerts: list[dict[str, Any]]) -> None:
        post_json(
            self._endpoint,
            encode_json(alerts),
            timeout=self.config.timeout_seconds,
            what=f"Alertmanager receiver {self.name!r}",
            tls=delivery_tls(self.config),
        )

    # -- outbox delivery ----------------------------------------------------------------

    def send(self, notification: Notification) -> None:
        now = self._clock()
        incident = notification.incident
        if notification.kind == "budget_policy":
            # Informational like the summary: posted once, it expires after 4 × resend. A
            # thaw (event resolved) posts the same labels ending now: the freeze alert ends.
            ends_at = now if notification.event == "resolved" else self._firing_until(now)
            alert = self.budget_policy_alert(notification, ends_at)
            self._post([alert])
            return
        annotations = self._annotations(incident, headline(notification), notification.message)
        if notification.kind not in ("incident", "ticket"):
            # A rate-limit summary is informational: post it once and let it expire.
            labels = {
                **self.config.labels,
                "alertname": SUPPRESSED_ALERTNAME,
                "receiver": notification.receiver,
            }
            self._post([self._alert(labels, incident, annotations, self._firing_until(now))])
            return
        if notification.event not in _EVENTS:
            raise PermanentDeliveryError(f"unknown notification event {notification.event!r}")
        incident_id = str(incident.get("id") or notification.dedup_key)
        with self._lock:
            previous = dict(self._active.get(incident_id, {}))
        if notification.event == "resolved":
            ends_at = min(now, _epoch(incident.get("resolved_at")) or now)
            alerts = [_ended(alert, ends_at) for alert in previous.values()]
            alerts += [
                self._alert(labels, incident, annotations, ends_at)
                for labels in self.labels_for(incident)
                if _key(labels) not in previous
            ]
            self._post(alerts)
            with self._lock:
                self._active.pop(incident_id, None)
            return
        current = self._firing(incident, annotations, now)
        alerts = list(current.values())
        alerts += [_ended(alert, now) for key, alert in previous.items() if key not in current]
        self._post(alerts)
        with self._lock:
            self._active[incident_id] = current

    def _firing(
        self, incident: Mapping[str, Any], annotations: dict[str, str], now: float
    ) -> dict[_LabelKey, dict[str, Any]]:
        until = self._firing_until(now)
        return {
            _key(labels): self._alert(labels, incident, annotations, until)
            for labels in self.labels_for(incident)
        }

    # -- periodic re-send -----------------------------------------------------------------

    def sync(
        self, open_incidents: Iterable[Incident | Mapping[str, Any]], now: float
    ) -> SyncResult:
        """Re-post every open incident as firing and resolve what is no longer open.

        Posts when the set of alerts changed or `resend_interval` has passed since the last
        post, so calling it every daemon cycle is cheap. Raises a DeliveryError when
        Alertmanager is unreachable; the next call simply tries again.
        """
        with self._lock:
            previous = {k: dict(v) for k, v in self._active.items()}
            last = self._last_sync_post
        current: dict[str, dict[_LabelKey, dict[str, Any]]] = {}
        for incident in map(_snapshot, open_incidents):
            if incident.get("status") == "resolved":
                continue
            incident_id = str(incident["id"])
            # Keep the title and message of the last notification rather than flipping
            # the annotations to the bare snapshot text on every re-send.
            sent = next(iter(previous.get(incident_id, {}).values()), {}).get("annotations", {})
            annotations = self._annotations(
                incident,
                sent.get("summary") or incident_headline(incident),
                sent.get("description"),
            )
            current[incident_id] = self._firing(incident, annotations, now)
        ended = [
            _ended(alert, now)
            for incident_id, alerts in previous.items()
            for key, alert in alerts.items()
            if key not in current.get(incident_id, {})
        ]
        firing = [alert for alerts in current.values() for alert in alerts.values()]
        changed = bool(ended) or any(
            set(alerts) != set(previous.get(incident_id, {}))
            for incident_id, alerts in current.items()
        )
        due = last is None or now - last >= self.config.resend_interval.seconds
        if not (changed or (due and firing)):
            return SyncResult(firing=0, resolved=0, posted=False)
        self._post(firing + ended)
        with self._lock:
            self._active = current
            self._last_sync_post = now
        return SyncResult(firing=len(firing), resolved=len(ended), posted=True)

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(name={self.name!r}, url={redact(self.config.url)!r})"


def _ended(alert: dict[str, Any], at: float) -> dict[str, Any]:
    return {**alert, "endsAt": iso8601(at)}


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None
