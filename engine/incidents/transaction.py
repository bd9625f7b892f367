"""One engine call in progress: a working copy of the state plus what changed.

Every public call of `IncidentEngine` opens a `Transaction` on a copy of the state, lets the
fatigue controls work on it and ends with the `Decision` it produced; the engine adopts the
new state only then. The concern modules (correlation, hold-down, flapping, timers,
notifications...) all write through it, so a decision lists every incident, timeline entry,
notification and suppression in the order they happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.incidents.dependencies import DependencyGraph
from engine.incidents.incident import Incident, Notification, TimelineEntry, TimelineKind
from engine.incidents.silences import Silence
from engine.incidents.state import (
    Decision,
    EngineState,
    Suppression,
    SuppressionReason,
    TimelineRecord,
)


def evolve(record: Any, **changes: Any) -> Any:
    """`dataclasses.replace` for the engine's frozen records, minus the re-validation that
    makes `replace` the hottest line of a backtest."""
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new


@dataclass
class Transaction:
    """One engine call in progress: a working copy of the state plus what changed."""

    state: EngineState
    base_version: int
    dirty: bool = False
    incidents: dict[str, Incident] = field(default_factory=dict)
    timeline: list[TimelineRecord] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    silences_upserted: list[Silence] = field(default_factory=list)
    silences_deleted: list[str] = field(default_factory=list)
    suppressed: list[Suppression] = field(default_factory=list)
    # The service graph correlation follows; `observe` builds it from this cycle's inputs.
    graph: DependencyGraph = field(default_factory=DependencyGraph)

    @classmethod
    def begin(cls, state: EngineState) -> Transaction:
        return cls(state=state.clone(), base_version=state.version)

    def touch(self, incident: Incident) -> None:
        self.dirty = True
        self.incidents[incident.id] = incident

    def log(
        self,
        incident: Incident,
        at: float,
        kind: TimelineKind,
        message: str,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        entry = TimelineEntry(at=at, kind=kind, message=message, actor=actor, data=data or {})
        incident.timeline.append(entry)
        self.timeline.append(TimelineRecord(incident.id, len(incident.timeline) - 1, entry))
        self.touch(incident)

    def suppress(self, reason: SuppressionReason, **kw: Any) -> None:
        self.suppressed.append(Suppression(reason=reason, **kw))

    def decision(self) -> Decision:
        """End the call: the state's version moves on only if something changed."""
        if self.dirty:
            self.state.version = self.base_version + 1
        return Decision(
            base_version=self.base_version,
            state=self.state,
            incidents=list(self.incidents.values()),
            timeline=self.timeline,
            notifications=self.notifications,
            silences_upserted=self.silences_upserted,
            silences_deleted=self.silences_deleted,
            suppressed=self.suppressed,
        )
