"""What an incident is: the records the incident engine produces, the store persists, the
notifiers deliver and the API shows.

Everything here is plain data with an exact JSON form (`to_json()` / `from_json()`), so the
same objects travel through SQLite, the outbox, the HTTP API and `backtest` unchanged.
Timestamps are Unix seconds (float, UTC); the engine never reads a clock itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from engine.incidents.response import ActionItem, IncidentCategory, Role


class Severity(StrEnum):
    """Incident severity. SEV1 is the most severe; `level` orders them (1 = worst).

    String order happens to match ("SEV1" < "SEV2"), but code should compare `level`
    (or use `is_more_severe_than`) so the intent is readable.
    """

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @property
    def level(self) -> int:
        return int(self.value[3:])

    @property
    def response_target(self) -> float:
        """Default acknowledgement deadline in seconds (the runbook's response targets).

        `IncidentConfig.response_targets` may override these per deployment.
        """
        return DEFAULT_RESPONSE_TARGETS[self]

    def is_more_severe_than(self, other: Severity) -> bool:
        return self.level < other.level

    @staticmethod
    def most_severe(*severities: Severity) -> Severity:
        return min(severities, key=lambda s: s.level)


DEFAULT_RESPONSE_TARGETS: dict[Severity, float] = {
    Severity.SEV1: 15 * 60.0,
    Severity.SEV2: 60 * 60.0,
    Severity.SEV3: 4 * 3600.0,
    Severity.SEV4: 24 * 3600.0,
}


class IncidentStatus(StrEnum):
    """The runbook's workflow: investigating → mitigating (→ monitoring) → resolved, and
    `review` after resolution while a post-incident review is required and not closed."""

    investigating = "investigating"
    mitigating = "mitigating"
    monitoring = "monitoring"
    resolved = "resolved"
    review = "review"

    @property
    def closed(self) -> bool:
        """Resolved (or resolved and awaiting its review): no longer handled by the engine."""
        return self in (IncidentStatus.resolved, IncidentStatus.review)


# Statuses a person may set on an open incident (resolving has its own call).
OPEN_STATUSES = (IncidentStatus.investigating, IncidentStatus.mitigating, IncidentStatus.monitoring)


# The runbook's order of the roles (what `role_holders` lists first).
_ROLE_ORDER = tuple(r.value for r in Role)


TimelineKind = Literal[
    "opened",
    "alert_joined",
    "alert_cleared",
    "severity_changed",
    "notified",
    "escalated",
    "acknowledged",
    "commented",
    "status_changed",
    "resolved",
    "suppressed",
    "flapping_started",
    "flapping_stopped",
    "related",
    # Dependency hold-down (`dependency_wait`): the first page waits for a root cause.
    "held",
    "hold_ended",
    "merged",
    # Incident response (issue 11): roles, updates on a clock, recovery time, the review.
    "role_assigned",
    "update_posted",
    "update_due",
    "rto_breached",
    "action_item",
    "review_closed",
]
TIMELINE_KINDS: frozenset[str] = frozenset(TimelineKind.__args__)  # type: ignore[attr-defined]

NotificationEvent = Literal["triggered", "escalated", "updated", "acknowledged", "resolved"]


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with a Z, the form every notifier and the API use."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class TimelineEntry:
    at: float
    kind: TimelineKind
    message: str
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TIMELINE_KINDS:
            raise ValueError(f"unknown timeline kind {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "time": iso(self.at),
            "kind": self.kind,
            "message": self.message,
            "actor": self.actor,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TimelineEntry:
        return cls(
            at=float(obj["at"]),
            kind=obj["kind"],
            message=obj["message"],
            actor=obj.get("actor"),
            data=dict(obj.get("data") or {}),
        )


@dataclass
class Incident:
    """One incident. Mutable only inside the engine, which works on copies (`clone()`)."""

    id: str
    service: str
    severity: Severity
    status: IncidentStatus
    summary: str
    opened_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    commander: str | None = None
    resolved_at: float | None = None
    slo_ids: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    related_services: list[str] = field(default_factory=list)
    escalation_level: int = 0
    last_notified_at: float | None = None
    flapping: bool = False
    runbook_url: str | None = None
    dashboard_url: str | None = None
    # The rendered customer-facing notice (None while the severity needs none).
    customer_notice: str | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    # Receivers that were told about this incident: they get its ack/resolve follow-ups.
    notified_receivers: list[str] = field(default_factory=list)
    # Counter behind deterministic notification ids (see `Notification`).
    notification_seq: int = 0
    # Lowest severity the current alerts would justify; a fall is recorded, never applied.
    suggested_severity: Severity | None = None
    # When the severity last rose: the response target (and escalation) counts from here.
    severity_changed_at: float | None = None
    # Services this incident's service depends on (spec `depends_on` plus config edges): a
    # later incident on one of them is its likely root cause.
    depends_on: list[str] = field(default_factory=list)
    # Dependency hold-down: until this time the `triggered` page is held, waiting for a
    # dependency's incident to take this one over. None = not held (paged or never held).
    held_until: float | None = None
    # Set when this incident was folded, before it paged, into the root cause's incident
    # (then resolved with no notification ever sent). Reports should not count it separately.
    merged_into: str | None = None
    # Incident response (see `response`): what kind of incident, who declared it by hand
    # (None: opened by an alert), whether customers see it, the service tier.
    category: IncidentCategory = IncidentCategory.availability
    declared_by: str | None = None
    customer_facing: bool = False
    tier: str | None = None
    # Roles other than the commander (Role value -> person).
    roles: dict[str, str] = field(default_factory=dict)
    # Escalation levels notified ahead of the chain (the CTO at once for a customer-facing
    # SEV1); the chain skips them when it gets there.
    escalated_early: list[str] = field(default_factory=list)
    # Recovery time objective (seconds from opening to resolution, fixed at opening from
    # the tier) and when it was missed.
    rto_seconds: float | None = None
    rto_breached_at: float | None = None
    # Updates on a clock: the cadence counts from `update_clock` (the last update, status
    # change or comment; or when someone took the incident), or the promised
    # `next_update_at`; `update_reminded_at` is the last reminder. None: nobody to remind.
    update_clock: float | None = None
    next_update_at: float | None = None
    update_reminded_at: float | None = None
    latest_update: dict[str, Any] | None = None
    action_items: list[ActionItem] = field(default_factory=list)
    # Error budget remaining per SLO: [when its alert first fired here, latest seen].
    slo_budget: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return not self.status.closed

    def role_holders(self) -> dict[str, str]:
        """Every assigned role, the commander included, in the runbook's order."""
        held = dict(self.roles)
        if self.commander:
            held[Role.incident_commander.value] = self.commander
        return {role: held[role] for role in _ROLE_ORDER if role in held}

    def clone(self) -> Incident:
        # Hot in backtests (every open incident, every evaluation): copy the attribute dict
        # rather than go through dataclasses.replace and __init__.
        new = object.__new__(Incident)
        new.__dict__.update(self.__dict__)
        new.slo_ids = list(self.slo_ids)
        new.fingerprints = list(self.fingerprints)
        new.related_services = list(self.related_services)
        new.timeline = list(self.timeline)
        new.notified_receivers = list(self.notified_receivers)
        new.depends_on = list(self.depends_on)
        new.roles = dict(self.roles)
        new.escalated_early = list(self.escalated_early)
        new.action_items = list(self.action_items)
        new.slo_budget = dict(self.slo_budget)
        return new

    def to_json(self, timeline: bool = True) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id,
            "service": self.service,
            "severity": self.severity.value,
            "status": self.status.value,
            "summary": self.summary,
            "opened_at": self.opened_at,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "commander": self.commander,
            "resolved_at": self.resolved_at,
            "slo_ids": list(self.slo_ids),
            "fingerprints": list(self.fingerprints),
            "related_services": list(self.related_services),
            "escalation_level": self.escalation_level,
            "last_notified_at": self.last_notified_at,
            "flapping": self.flapping,
            "runbook_url": self.runbook_url,
            "dashboard_url": self.dashboard_url,
            "customer_notice": self.customer_notice,
            "notified_receivers": list(self.notified_receivers),
            "notification_seq": self.notification_seq,
            "suggested_severity": None
            if self.suggested_severity is None
            else self.suggested_severity.value,
            "severity_changed_at": self.severity_changed_at,
            "depends_on": list(self.depends_on),
            "held_until": self.held_until,
            "merged_into": self.merged_into,
            **self._response_json(),
        }
        if timeline:
            obj["timeline"] = [e.to_json() for e in self.timeline]
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Incident:
        suggested = obj.get("suggested_severity")
        return cls(
            id=obj["id"],
            service=obj["service"],
            severity=Severity(obj["severity"]),
            status=IncidentStatus(obj["status"]),
            summary=obj["summary"],
            opened_at=float(obj["opened_at"]),
            acknowledged_at=obj.get("acknowledged_at"),
            acknowledged_by=obj.get("acknowledged_by"),
            commander=obj.get("commander"),
            resolved_at=obj.get("resolved_at"),
            slo_ids=list(obj.get("slo_ids", [])),
            fingerprints=list(obj.get("fingerprints", [])),
            related_services=list(obj.get("related_services", [])),
            escalation_level=int(obj.get("escalation_level", 0)),
            last_notified_at=obj.get("last_notified_at"),
            flapping=bool(obj.get("flapping", False)),
            runbook_url=obj.get("runbook_url"),
            dashboard_url=obj.get("dashboard_url"),
            customer_notice=obj.get("customer_notice"),
            timeline=[TimelineEntry.from_json(e) for e in obj.get("timeline", [])],
            notified_receivers=list(obj.get("notified_receivers", [])),
            notification_seq=int(obj.get("notification_seq", 0)),
            suggested_severity=None if suggested is None else Severity(suggested),
            severity_changed_at=obj.get("severity_changed_at"),
            depends_on=list(obj.get("depends_on", [])),
            held_until=obj.get("held_until"),
            merged_into=obj.get("merged_into"),
            **cls._response_fields(obj),
        )

    def _response_json(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "declared_by": self.declared_by,
            "customer_facing": self.customer_facing,
            "tier": self.tier,
            "roles": self.role_holders(),
            "escalated_early": list(self.escalated_early),
            "rto_seconds": self.rto_seconds,
            "rto_breached_at": self.rto_breached_at,
            "update_clock": self.update_clock,
            "next_update_at": self.next_update_at,
            "update_reminded_at": self.update_reminded_at,
            "latest_update": self.latest_update,
            "action_items": [a.to_json() for a in self.action_items],
            "slo_budget": {k: list(v) for k, v in self.slo_budget.items()},
        }

    @staticmethod
    def _response_fields(obj: dict[str, Any]) -> dict[str, Any]:
        """The incident-response fields; absent in incidents stored before them."""
        roles = obj.get("roles") or {}
        return {
            "category": IncidentCategory(obj.get("category") or "availability"),
            "declared_by": obj.get("declared_by"),
            "customer_facing": bool(obj.get("customer_facing", False)),
            "tier": obj.get("tier"),
            # The commander has its own field (and key); `roles` shows it too.
            "roles": {k: v for k, v in roles.items() if k != Role.incident_commander.value},
            "escalated_early": list(obj.get("escalated_early", [])),
            "rto_seconds": obj.get("rto_seconds"),
            "rto_breached_at": obj.get("rto_breached_at"),
            "update_clock": obj.get("update_clock"),
            "next_update_at": obj.get("next_update_at"),
            "update_reminded_at": obj.get("update_reminded_at"),
            "latest_update": obj.get("latest_update"),
            "action_items": [ActionItem.from_json(a) for a in obj.get("action_items", [])],
            "slo_budget": {k: list(v) for k, v in (obj.get("slo_budget") or {}).items()},
        }

    def webhook_snapshot(self) -> dict[str, Any]:
        """The `incident` object of the generic webhook contract (issue 5, item 6)."""
        return {
            "id": self.id,
            "severity": self.severity.value,
            "status": self.status.value,
            "service": self.service,
            "slos": list(self.slo_ids),
            "opened_at": iso(self.opened_at),
            "summary": self.summary,
            "runbook_url": self.runbook_url,
            "dashboard_url": self.dashboard_url,
            "acknowledged_at": iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "commander": self.commander,
            "resolved_at": iso(self.resolved_at),
            "escalation_level": self.escalation_level,
            "related_services": list(self.related_services),
            "flapping": self.flapping,
            "fingerprints": list(self.fingerprints),
            "customer_notice": self.customer_notice,
            "category": self.category.value,
            "customer_facing": self.customer_facing,
            "roles": self.role_holders(),
            "tier": self.tier,
            "rto_deadline": None
            if self.rto_seconds is None
            else iso(self.opened_at + self.rto_seconds),
            "rto_breached_at": iso(self.rto_breached_at),
            "latest_update": self.latest_update,
            "next_update_at": iso(self.next_update_at),
        }


@dataclass(frozen=True)
class Notification:
    """One message for one receiver, as queued in the outbox.

    `id` is deterministic (`{incident_id}:{event}:{receiver}:{seq}`), so re-applying the same
    decision after a crash inserts nothing new. `dedup_key` is the incident id: PagerDuty and
    Alertmanager fold repeated deliveries into one alert at the receiver.

    `kind` is "incident" for ordinary notifications and "summary" for the one message a
    receiver gets when its rate limit trips (its `incident` dict then describes the summary:
    id "rate-limit", the most severe suppressed severity, `suppressed` ids), and
    "budget_policy" for an error-budget policy's notice (engine/incidents/budget_policy.py),
    "ticket" for a ticket that notifies without an incident (engine/incidents/tickets.py).
    """

    id: str
    receiver: str
    event: NotificationEvent
    dedup_key: str
    incident: dict[str, Any]
    created_at: float
    message: str
    title: str
    kind: Literal["incident", "summary", "budget_policy", "ticket"] = "incident"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "receiver": self.receiver,
            "event": self.event,
            "dedup_key": self.dedup_key,
            "incident": self.incident,
            "created_at": self.created_at,
            "message": self.message,
            "title": self.title,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Notification:
        return cls(
            id=obj["id"],
            receiver=obj["receiver"],
            event=obj["event"],
            dedup_key=obj["dedup_key"],
            incident=dict(obj["incident"]),
            created_at=float(obj["created_at"]),
            message=obj["message"],
            title=obj["title"],
            kind=obj.get("kind", "incident"),
        )

    def webhook_body(self) -> dict[str, Any]:
        """The documented generic webhook JSON body."""
        return {"event": self.event, "dedup_key": self.dedup_key, "incident": self.incident}
