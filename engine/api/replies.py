"""What the API answers: the response models of the OpenAPI contract (`/openapi.json`).

Routes build their JSON from the engine's own `to_json()` contracts and return it as a
`JSONResponse`, so these models describe the answers — they never re-serialize them (no
field is dropped, renamed or reordered on the way out). Each model follows one `to_json()`
of engine/evaluation, engine/incidents or engine/store; the API's contract test and the
schemathesis run (tests/test_api_openapi_contract.py, tests/test_api_fuzz.py) hold every
real answer against them, so a contract that drifts from the code fails there.

Extra fields are allowed (`extra="allow"`, `additionalProperties` in the document): a new
field is an additive change clients must tolerate, not a broken contract. Request bodies
live in engine/api/schemas.py and engine/api/response_schemas.py; the error body in
engine/api/errors.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.api.response_schemas import CategoryName, SeverityName

IncidentStatusName = Literal["investigating", "mitigating", "monitoring", "resolved", "review"]


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------- operations


class Liveness(Reply):
    status: Literal["alive"]


class Readiness(Reply):
    ready: bool
    reasons: list[str] = Field(description="Why not ready; empty for callers without `read`.")


# ---------------------------------------------------------------------- SLOs and gates


class WindowEvents(Reply):
    bad: float | None
    total: float | None


class AlertSignalReply(Reply):
    severity: Literal["page", "ticket"]
    long_window: str
    short_window: str
    factor: float
    held: Literal["low_traffic"] | None
    held_reason: str | None


class RecentReply(Reply):
    window: str
    error_ratio: float | None
    burn_rate: float | None
    events: WindowEvents | None


class CrossedThreshold(Reply):
    consumed: float
    action: str
    receivers: list[str]


class PolicyStateReply(Reply):
    status: Literal["ok", "notify", "frozen", "unknown"]
    budget_consumed_percent: float | None
    crossed: list[CrossedThreshold]
    reason: str | None


class BudgetReply(Reply):
    remaining: float | None = Field(description="Same as `error_budget_remaining`.")
    partial: bool = Field(
        description="Computed over part of its period: less than 99 % of it had data."
    )
    coverage: float | None = Field(description="Share of the period with data; null: no data.")


class SloEvaluationReply(Reply):
    """One SLO's latest evaluation: the `slo-engine evaluate --format json` object. `null`
    is missing data, never 0."""

    id: str
    service: str
    slo: str
    tier: str
    objective: float
    period: str
    status: Literal["ok", "ticket", "page", "exhausted", "no_data", "error"]
    error_ratio: dict[str, float | None] = Field(description="Per window (e.g. `1h`, `30d`).")
    burn_rate: dict[str, float | None]
    events: dict[str, WindowEvents | None]
    coverage: dict[str, float | None] = Field(
        description="Per window: the share of its length with data (0..1); null: no data."
    )
    error_budget_remaining: float | None
    budget: BudgetReply
    time_to_exhaustion: float | None = Field(description="Seconds; null when not burning.")
    alerts: list[AlertSignalReply]
    error: str | None
    recent: RecentReply | None
    group: dict[str, str] | None = Field(
        default=None, description="A grouped SLO's instance: its labels (absent otherwise)."
    )
    policy_state: PolicyStateReply | None = Field(
        default=None, description="Only for an SLO with a `budget_policy`."
    )


class SloList(Reply):
    evaluated_at: float | None
    slos: list[SloEvaluationReply]


class SloGroupReply(Reply):
    """One instance of a grouped SLO, in short: which group, how it stands."""

    id: str = Field(description='The instance id, e.g. `shop/availability{route="/cart"}`.')
    group: dict[str, str] = Field(description="Its labels: `group_by` label → value.")
    status: Literal["ok", "ticket", "page", "exhausted", "no_data", "error"]
    error_budget_remaining: float | None
    evaluated_at: float
    error: str | None


class SloGroupList(Reply):
    """A grouped SLO's instances. Before discovery found any group, `groups` is empty and
    `status` says why there is nothing (`no_data`, or `error` with the source down)."""

    slo: str = Field(description="The base id, `<service>/<name>`.")
    group_by: list[str]
    status: Literal["ok", "ticket", "page", "exhausted", "no_data", "error"] | None = Field(
        description="Only without groups: the placeholder's status; null when there are groups."
    )
    error: str | None = Field(description="Only without groups: why there are none yet.")
    groups: list[SloGroupReply]


class SpecStatus(Reply):
    loaded_at: float
    checked_at: float
    slos: int
    files: int
    last_error: str | None
    errors: list[str]
    sampling: Any = Field(default=None, description="The evaluation steps' sampling check.")
    groups: dict[str, Any] | None = Field(
        default=None, description="Grouped SLOs: their groups, vanished and dropped ones."
    )


class GateDecisionReply(Reply):
    allowed: bool
    service: str
    reasons: list[str] | None = Field(default=None, description="Only when not allowed.")
    slos: dict[str, PolicyStateReply]


# ---------------------------------------------------------------------- incidents


class TimelineEntryReply(Reply):
    at: float
    time: str | None
    kind: str
    message: str
    actor: str | None
    data: dict[str, Any]


class ActionItemReply(Reply):
    id: str
    text: str
    owner: str | None
    status: Literal["open", "done"]
    created_at: float
    created_by: str
    done_at: float | None
    done_by: str | None


class RecoveryReply(Reply):
    """Where the incident stands against its recovery time objective."""

    objective_seconds: float
    deadline: str | None
    remaining_seconds: float | None
    time_to_restore_seconds: float | None
    met: bool | None
    breached_at: str | None


class IncidentReply(Reply):
    id: str
    service: str
    severity: SeverityName
    status: IncidentStatusName
    summary: str
    opened_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    commander: str | None
    resolved_at: float | None
    slo_ids: list[str]
    fingerprints: list[str]
    related_services: list[str]
    escalation_level: int
    last_notified_at: float | None
    flapping: bool
    runbook_url: str | None
    dashboard_url: str | None
    customer_notice: str | None
    notified_receivers: list[str]
    notification_seq: int
    suggested_severity: SeverityName | None
    severity_changed_at: float | None
    depends_on: list[str]
    held_until: float | None
    merged_into: str | None
    category: CategoryName
    declared_by: str | None
    customer_facing: bool
    tier: str | None
    roles: dict[str, str]
    escalated_early: list[str]
    rto_seconds: float | None
    rto_breached_at: float | None
    update_clock: float | None
    next_update_at: float | None
    update_reminded_at: float | None
    latest_update: dict[str, Any] | None
    action_items: list[ActionItemReply]
    slo_budget: dict[str, list[float | None]]
    recovery: RecoveryReply | None = Field(
        default=None,
        description="Null without a recovery time objective; absent from the answers of "
        "ack, resolve and comment.",
    )
    timeline: list[TimelineEntryReply] | None = Field(
        default=None, description="One incident only; lists come without timelines."
    )


class IncidentList(Reply):
    incidents: list[IncidentReply]
    total: int = Field(description="Matching incidents before `limit`.")


class UpdateList(Reply):
    updates: list[dict[str, Any]]
    next_update_at: float | None


class ReviewIncident(Reply):
    id: str
    severity: SeverityName
    status: IncidentStatusName
    service: str
    summary: str
    category: CategoryName
    customer_facing: bool
    declared_by: str | None
    runbook_url: str | None
    opened_at: str | None
    resolved_at: str | None


class ReviewEvent(Reply):
    time: str | None
    kind: str
    actor: str | None
    message: str


class BudgetSpent(Reply):
    slo: str
    at_start: float | None
    at_end: float | None
    consumed: float | None


class ReviewImpact(Reply):
    duration_seconds: float
    ongoing: bool
    services: list[str]
    budget: list[BudgetSpent]
    rto: RecoveryReply | None
    rto_met: bool | None
    rto_breached: bool


class ReviewResponder(Reply):
    name: str
    did: list[str]


class ReviewDraft(Reply):
    """The post-incident review draft's data (`?format=md` renders it as Markdown)."""

    incident: ReviewIncident
    drafted_at: str | None
    timeline: list[ReviewEvent]
    impact: ReviewImpact
    responders: list[ReviewResponder]
    action_items: list[ActionItemReply]


# ---------------------------------------------------------------------- silences, audit


class MatcherReply(Reply):
    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str


class SilenceReply(Reply):
    id: str
    matchers: list[MatcherReply]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float


class SilenceList(Reply):
    silences: list[SilenceReply]


class SilenceDeleted(Reply):
    deleted: str


class MaintenanceMatchersReply(Reply):
    service: list[str] = Field(description="Service names; empty: any service.")
    slo: list[str] = Field(description="SLO ids; empty: any SLO of the services.")


class MaintenanceReply(Reply):
    id: str
    matchers: MaintenanceMatchersReply
    start: str = Field(description="RFC 3339, UTC.")
    end: str = Field(description="When it stops excluding events (ended early: then).")
    planned_end: str
    reason: str
    state: Literal["upcoming", "active", "ended", "cancelled"]
    created_by: str
    created_at: str
    ended_by: str | None
    ended_at: str | None


class MaintenanceList(Reply):
    windows: list[MaintenanceReply]


class AuditEntryReply(Reply):
    at: float
    actor: str = Field(description='The authenticated identity, or "anonymous".')
    roles: str = Field(description="Comma-separated, as when the request was answered.")
    action: str
    target: str
    request_id: str
    source: str
    result: int = Field(description="The HTTP status of the answer.")
    detail: str


class AuditLogReply(Reply):
    entries: list[AuditEntryReply]
