"""The store interface: what the daemon, the CLI and the outbox worker need from persistence.

Kept small on purpose so a PostgreSQL implementation (for several replicas) can slot in next
to `engine.store.sqlite`. The contract that matters for correctness:

- `apply(decision)` writes incidents, timeline entries, the engine state, silences and
  outbox rows in ONE transaction: after a crash either all of a decision is there or none.
- Outbox rows are keyed by the notification id, which the engine makes deterministic, so
  applying the same decision twice enqueues nothing new (idempotent insert).
- Optimistic concurrency: `apply` succeeds only if the stored state version equals
  `decision.base_version`; otherwise it raises `StaleStateError` and writes nothing. The
  caller (daemon loop, CLI) then reloads with `load_state()` and recomputes. This is what
  lets `slo-engine incidents ack` run while the daemon is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from engine.incidents.incident import (
    Incident,
    IncidentStatus,
    Notification,
    Severity,
    TimelineEntry,
)
from engine.incidents.silences import Silence
from engine.incidents.state import Decision, EngineState


class StoreError(RuntimeError):
    """The store cannot be used (unreadable file, newer schema than this program knows)."""


class StaleStateError(StoreError):
    """Someone else applied a decision since this state was loaded: reload and retry."""


@dataclass(frozen=True)
class OutboxItem:
    id: str  # = notification.id
    receiver: str
    notification: Notification
    attempts: int
    next_attempt_at: float
    created_at: float
    last_error: str | None = None


@runtime_checkable
class Outbox(Protocol):
    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """Pending items whose next attempt is due, oldest first."""
        ...

    def mark_sent(self, item_id: str, now: float) -> None: ...

    def mark_failed(
        self, item_id: str, now: float, next_attempt_at: float | None, error: str
    ) -> None:
        """Count a failed attempt; `next_attempt_at=None` gives up (dead letter)."""
        ...

    def counts(self) -> dict[str, int]:
        """{"pending": n, "sent": n, "dead": n}"""
        ...


@runtime_checkable
class IncidentStore(Outbox, Protocol):
    def load_state(self, now: float | None = None) -> EngineState:
        """Open incidents (with timelines), engine memory, id sequences and silences (only
        those not expired at `now` when given)."""
        ...

    def apply(self, decision: Decision) -> None: ...

    def list_incidents(
        self,
        status: IncidentStatus | None = None,
        severity: Severity | None = None,
        limit: int | None = None,
    ) -> list[Incident]:
        """Newest first, without timelines."""
        ...

    def get_incident(self, incident_id: str) -> Incident | None:
        """With its full timeline."""
        ...

    def timeline(self, incident_id: str) -> list[TimelineEntry]: ...

    def add_silence(self, silence: Silence) -> None:
        """Store a silence directly (API); bumps the state version so a running engine
        reloads and sees it. Prefer `IncidentEngine.add_silence` + `apply`."""
        ...

    def list_silences(
        self, include_expired: bool = False, now: float | None = None
    ) -> list[Silence]: ...

    def delete_silence(self, silence_id: str) -> bool: ...

    def close(self) -> None: ...
