"""The incident engine's memory and its output.

`EngineState` is everything the engine must remember between calls: open incidents, what
each alert fingerprint did recently (clear timers, flap history), the incident-id sequence
per year, rate-limit windows and silences. It is plain data with an exact JSON form so the
store can persist it and `backtest` can run from an empty one.

`Decision` is what one engine call produced: the incidents it changed, the new timeline
entries, the notifications to enqueue and the new state. The store applies a decision in one
transaction; `version` gives optimistic concurrency (see `engine.store.base`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from engine.incidents.incident import Incident, Notification, TimelineEntry
from engine.incidents.silences import Silence

SuppressionReason = Literal[
    "silenced",
    # Its SLO is in a maintenance window (engine.evaluation.maintenance).
    "maintenance",
    "inhibited_by_page",
    "resolved_while_firing",
    "flapping",
    "rate_limited",
    # A new incident's page held for `dependency_wait` (see IncidentEngine).
    "dependency_wait",
]

# Nagios keeps this many states for percent-state-change flap detection.
FLAP_HISTORY = 21


@dataclass(frozen=True)
class Notice:
    """A ticket that only notified (`ticket_incidents: notify`, engine.incidents.tickets):
    when it first went out, when last (for repeats), at which severity and to whom (the
    resolve goes to the same receivers)."""

    since: float
    sent_at: float
    severity: str
    receivers: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "sent_at": self.sent_at,
            "severity": self.severity,
            "receivers": list(self.receivers),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Notice:
        return cls(
            since=float(obj["since"]),
            sent_at=float(obj["sent_at"]),
            severity=str(obj["severity"]),
            receivers=tuple(obj["receivers"]),
        )


@dataclass(frozen=True)
class AlertState:
    """What the engine knows about one alert fingerprint."""

    fingerprint: str
    labels: dict[str, str]
    slo_id: str
    service: str
    severity: str
    first_seen: float
    last_seen: float
    # When the alert stopped firing; the incident resolves `resolve_after` later.
    cleared_at: float | None = None
    incident_id: str | None = None
    # A person resolved the incident while this alert still fired: it must clear once before
    # it may open a new incident (otherwise a manual resolve re-pages within one cycle).
    needs_clear: bool = False
    silenced: bool = False
    # The severity this alert alone justifies (see classify); None while cleared.
    classified: str | None = None
    # The error budget left when it last fired (the review's "budget consumed").
    budget_remaining: float | None = None
    # Set while a notification-only ticket is out for this alert (no incident).
    notice: Notice | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "labels": self.labels,
            "slo_id": self.slo_id,
            "service": self.service,
            "severity": self.severity,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "cleared_at": self.cleared_at,
            "incident_id": self.incident_id,
            "needs_clear": self.needs_clear,
            "silenced": self.silenced,
            "classified": self.classified,
            "budget_remaining": self.budget_remaining,
            "notice": None if self.notice is None else self.notice.to_json(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AlertState:
        return cls(
            fingerprint=obj["fingerprint"],
            labels=dict(obj["labels"]),
            slo_id=obj["slo_id"],
            service=obj["service"],
            severity=obj["severity"],
            first_seen=float(obj["first_seen"]),
            last_seen=float(obj["last_seen"]),
            cleared_at=obj.get("cleared_at"),
            incident_id=obj.get("incident_id"),
            needs_clear=bool(obj.get("needs_clear", False)),
            silenced=bool(obj.get("silenced", False)),
            classified=obj.get("classified"),
            budget_remaining=obj.get("budget_remaining"),
            notice=Notice.from_json(obj["notice"]) if obj.get("notice") else None,
        )


@dataclass(frozen=True)
class FlapState:
    """The last `FLAP_HISTORY` evaluations of one fingerprint (True = firing), oldest first."""

    states: tuple[bool, ...] = ()
    flapping: bool = False
    percent: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "states": "".join("1" if s else "0" for s in self.states),
            "flapping": self.flapping,
            "percent": self.percent,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FlapState:
        return cls(
            states=tuple(c == "1" for c in obj["states"]),
            flapping=bool(obj["flapping"]),
            percent=float(obj["percent"]),
        )


@dataclass(frozen=True)
class RateState:
    """Sliding window of page-like notifications sent to one receiver."""

    sent: tuple[float, ...] = ()
    # True once the summary for the current trip was queued; cleared when sending resumes.
    tripped: bool = False
    suppressed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": list(self.sent),
            "tripped": self.tripped,
            "suppressed": list(self.suppressed),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RateState:
        return cls(
            sent=tuple(float(t) for t in obj["sent"]),
            tripped=bool(obj["tripped"]),
            suppressed=tuple(obj.get("suppressed", ())),
        )


@dataclass
class EngineState:
    version: int = 0
    incidents: dict[str, Incident] = field(default_factory=dict)  # open incidents only
    alerts: dict[str, AlertState] = field(default_factory=dict)
    flap: dict[str, FlapState] = field(default_factory=dict)
    sequences: dict[int, int] = field(default_factory=dict)  # year -> last number used
    rate: dict[str, RateState] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    silence_seq: int = 0

    def clone(self) -> EngineState:
        # Alert, flap, rate and silence records are frozen, so shallow dict copies suffice;
        # incidents are mutable and copied one by one. Cheap enough for backtests.
        return EngineState(
            version=self.version,
            incidents={k: v.clone() for k, v in self.incidents.items()},
            alerts=dict(self.alerts),
            flap=dict(self.flap),
            sequences=dict(self.sequences),
            rate=dict(self.rate),
            silences=dict(self.silences),
            silence_seq=self.silence_seq,
        )

    def to_json(self, incidents: bool = True) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "version": self.version,
            "alerts": {k: v.to_json() for k, v in self.alerts.items()},
            "flap": {k: v.to_json() for k, v in self.flap.items()},
            "sequences": {str(k): v for k, v in self.sequences.items()},
            "rate": {k: v.to_json() for k, v in self.rate.items()},
            "silences": {k: v.to_json() for k, v in self.silences.items()},
            "silence_seq": self.silence_seq,
        }
        if incidents:
            obj["incidents"] = {k: v.to_json() for k, v in self.incidents.items()}
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> EngineState:
        return cls(
            version=int(obj.get("version", 0)),
            incidents={k: Incident.from_json(v) for k, v in obj.get("incidents", {}).items()},
            alerts={k: AlertState.from_json(v) for k, v in obj.get("alerts", {}).items()},
            flap={k: FlapState.from_json(v) for k, v in obj.get("flap", {}).items()},
            sequences={int(k): int(v) for k, v in obj.get("sequences", {}).items()},
            rate={k: RateState.from_json(v) for k, v in obj.get("rate", {}).items()},
            silences={k: Silence.from_json(v) for k, v in obj.get("silences", {}).items()},
            silence_seq=int(obj.get("silence_seq", 0)),
        )


@dataclass(frozen=True)
class TimelineRecord:
    """A new timeline entry and its position in the incident's timeline (0-based)."""

    incident_id: str
    seq: int
    entry: TimelineEntry


@dataclass(frozen=True)
class Suppression:
    """An alert or notification the fatigue controls held back (for metrics and tests)."""

    reason: SuppressionReason
    fingerprint: str | None = None
    incident_id: str | None = None
    receiver: str | None = None


@dataclass
class Decision:
    """The outcome of one engine call. Apply it with `IncidentStore.apply()`.

    `base_version` is the state version the call started from; `state.version` is one more
    whenever anything changed. A store refuses a decision whose base is stale.
    """

    base_version: int
    state: EngineState
    incidents: list[Incident] = field(default_factory=list)  # changed, incl. just resolved
    timeline: list[TimelineRecord] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    silences_upserted: list[Silence] = field(default_factory=list)
    silences_deleted: list[str] = field(default_factory=list)
    suppressed: list[Suppression] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.state.version != self.base_version
