"""Request bodies of the incident-response routes (engine/api/routers/response.py).

Strict like every body (`extra="forbid"`, length limits, no control characters in names).
None of them has a `by`: the actor is the authenticated caller (engine/api/incident_access).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from engine.api.schemas import Actor, ShortText, Strict, Text
from engine.incidents.response import UpdateContent
from engine.spec.durations import Duration, DurationError

SeverityName = Literal["SEV1", "SEV2", "SEV3", "SEV4"]
CategoryName = Literal[
    "availability", "performance", "security", "data", "infrastructure", "monitoring"
]
# The spec's service names (engine.spec.models.NAME_RE).
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$")]


class DeclareRequest(Strict):
    service: ServiceName
    severity: SeverityName
    title: ShortText
    category: CategoryName
    customer_facing: bool | None = Field(
        default=None, description="Default: the service spec's `customer_facing`."
    )
    tier: Literal["critical", "important", "standard"] | None = Field(
        default=None, description="For the recovery time objective. Default: the spec's."
    )
    commander: Actor | None = Field(default=None, description="Default: whoever declares.")
    note: Text | None = None


class StatusRequest(Strict):
    status: Literal["investigating", "mitigating", "monitoring", "resolved"]
    note: Text


class SeverityRequest(Strict):
    severity: SeverityName
    reason: Text


class RoleRequest(Strict):
    role: Literal["incident_commander", "technical_lead", "communications_lead", "security_lead"]
    person: Actor


class UpdateRequest(Strict):
    """The runbook's update: impact, current actions, expected resolution, next update."""

    impact: Text
    current_actions: Text
    expected_resolution: ShortText
    next_update: str | None = Field(
        default=None,
        max_length=32,
        description='When the next update comes, e.g. "20m"; default: the severity\'s cadence.',
    )
    customer_message: Text | None = Field(
        default=None, description="What customers read on the status page."
    )
    public: bool | None = Field(
        default=None,
        description="Publish to the status page; default: when the incident is customer-facing.",
    )

    @field_validator("next_update")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = Duration.parse(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        if parsed.seconds <= 0:
            raise ValueError("next_update must be positive")
        return str(parsed)

    def content(self) -> UpdateContent:
        return UpdateContent(
            impact=self.impact,
            current_actions=self.current_actions,
            expected_resolution=self.expected_resolution,
            next_update_in=None
            if self.next_update is None
            else Duration.parse(self.next_update).seconds,
            customer_message=self.customer_message,
            public=self.public,
        )


class ActionItemRequest(Strict):
    text: Text
    owner: Actor | None = None


class ActionItemChange(Strict):
    """Give one or both; `"owner": null` takes the item from its owner."""

    status: Literal["open", "done"] | None = None
    owner: Actor | None = None

    @model_validator(mode="after")
    def _something(self) -> ActionItemChange:
        if not self.model_fields_set:
            raise ValueError("give status, owner or both")
        return self


class CloseReviewRequest(Strict):
    note: Text | None = None
