"""Recovery time objectives: how long an incident may take from opening to resolution.

The objective comes from the service tier (`recovery_time_objectives`: critical 1 h,
important 4 h, standard 24 h by default) and is fixed on the incident when it opens, so a
later config change does not move a running incident's deadline. A missed objective is
recorded once (`rto_breached`, in `escalation`), tells the responders, and — when the
escalation chain has stopped because someone acknowledged or mitigated — brings in the
chain's next level: the people working on it need help, not another page. While the chain
still runs on its own, its next level comes at its own time.

This module is the arithmetic, pure and shared by the engine, the templates and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.incidents.incident import Incident, Severity, iso

# A declared incident on a service the engine has no spec for gets the tier its severity
# suggests (a SEV1 is a critical service's outage by the runbook's own definition).
TIER_BY_SEVERITY: dict[Severity, str] = {
    Severity.SEV1: "critical",
    Severity.SEV2: "important",
    Severity.SEV3: "standard",
    Severity.SEV4: "standard",
}


@dataclass(frozen=True)
class Recovery:
    """Where an incident stands against its RTO at `now` (seconds; None = not applicable)."""

    objective: float
    deadline: float
    # Open incidents: time left (negative once missed). Resolved: None.
    remaining: float | None
    # Resolved incidents: opening to resolution.
    time_to_restore: float | None
    breached_at: float | None

    @property
    def met(self) -> bool | None:
        if self.time_to_restore is None:
            return None
        return self.time_to_restore <= self.objective

    def to_json(self) -> dict[str, Any]:
        return {
            "objective_seconds": self.objective,
            "deadline": iso(self.deadline),
            "remaining_seconds": self.remaining,
            "time_to_restore_seconds": self.time_to_restore,
            "met": self.met,
            "breached_at": iso(self.breached_at),
        }


def recovery(incident: Incident, now: float) -> Recovery | None:
    """The incident's recovery against its objective at `now`; None without an RTO."""
    if incident.rto_seconds is None:
        return None
    deadline = incident.opened_at + incident.rto_seconds
    restored = None if incident.resolved_at is None else incident.resolved_at - incident.opened_at
    return Recovery(
        objective=incident.rto_seconds,
        deadline=deadline,
        remaining=None if restored is not None else deadline - now,
        time_to_restore=restored,
        breached_at=incident.rto_breached_at,
    )
