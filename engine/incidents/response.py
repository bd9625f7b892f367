"""The vocabulary of incident response (issue 11, the runbooks): categories, the four roles,
action items from the post-incident review, and what a posted update says.

Plain data with an exact JSON form, like everything in `incident`; the incident carries
these, the store keeps them in the incident's JSON body and the API shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


class IncidentCategory(StrEnum):
    """What kind of incident it is: which part of the runbook index applies."""

    availability = "availability"
    performance = "performance"
    security = "security"
    data = "data"
    infrastructure = "infrastructure"
    monitoring = "monitoring"

    @property
    def runbook_section(self) -> str:
        """The runbook index's section for this category."""
        return RUNBOOK_SECTIONS[self]


RUNBOOK_SECTIONS: dict[IncidentCategory, str] = {
    IncidentCategory.availability: "system-wide outage",
    IncidentCategory.performance: "service-specific",
    IncidentCategory.security: "security incident",
    IncidentCategory.data: "data recovery",
    IncidentCategory.infrastructure: "infrastructure",
    IncidentCategory.monitoring: "monitoring",
}


class Role(StrEnum):
    """The runbook's incident roles. The commander is `Incident.commander` (the first
    responder takes command on acknowledgement); the others live in `Incident.roles`."""

    incident_commander = "incident_commander"
    technical_lead = "technical_lead"
    communications_lead = "communications_lead"
    security_lead = "security_lead"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @classmethod
    def parse(cls, text: str) -> Role:
        """`technical-lead`, `Technical lead`, `ic`… → the role; ValueError otherwise."""
        key = text.strip().lower().replace("-", "_").replace(" ", "_")
        key = {"ic": "incident_commander", "commander": "incident_commander"}.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {text!r}: use one of {names}") from None


ActionStatus = Literal["open", "done"]


@dataclass(frozen=True)
class ActionItem:
    """A follow-up from the post-incident review: what, who, and whether it is done."""

    id: str  # "AI-1", per incident
    text: str
    owner: str | None
    status: ActionStatus
    created_at: float
    created_by: str
    done_at: float | None = None
    done_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "owner": self.owner,
            "status": self.status,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "done_at": self.done_at,
            "done_by": self.done_by,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ActionItem:
        return cls(
            id=obj["id"],
            text=obj["text"],
            owner=obj.get("owner"),
            status=obj.get("status", "open"),
            created_at=float(obj["created_at"]),
            created_by=obj["created_by"],
            done_at=obj.get("done_at"),
            done_by=obj.get("done_by"),
        )


@dataclass(frozen=True)
class UpdateContent:
    """What a responder says in a stakeholder update (the runbook's internal template).

    `next_update_in` promises the next one (seconds; None: the severity's cadence).
    `public` sends the customer template to the status page too (None: when the incident
    is customer-facing). `customer_message` is what customers read; without it they get
    the customer template's wording for the incident's status.
    """

    impact: str
    current_actions: str
    expected_resolution: str
    next_update_in: float | None = None
    customer_message: str | None = None
    public: bool | None = None
