"""Incident response (issue 11): declare an incident, move it through the runbook's statuses,
change its severity, assign its roles, post stakeholder updates, draft its post-incident
review and track the review's action items.

Changes need the `responder` role, are idempotent per `Idempotency-Key`, and record the
authenticated caller as the actor — a body with a `by` is refused. Security incidents, read
or changed, need the `security` role too (engine/api/incident_access.py): declaring one
without it is 403, changing one is 404 as for an incident that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from engine.api.contract import Runtime
from engine.api.deps import Caller, IdempotencyKey, Reader, Responder, RuntimeDep
from engine.api.deps import runtime as api_runtime
from engine.api.errors import MUTATION_ERRORS, READ_ERRORS, ApiError, error_doc
from engine.api.incident_access import actor, may_see_security, require_visible, visible
from engine.api.mutations import incident_change, mutate
from engine.api.replies import IncidentReply, ReviewDraft, UpdateList
from engine.api.response_schemas import (
    ActionItemChange,
    ActionItemRequest,
    CloseReviewRequest,
    DeclareRequest,
    RoleRequest,
    SeverityRequest,
    StatusRequest,
    UpdateRequest,
)
from engine.api.schemas import INCIDENT_ID_PATTERN
from engine.incidents.actions import KEEP
from engine.incidents.incident import Incident

log = logging.getLogger("engine.api")

router = APIRouter(tags=["incident response"])

IncidentId = Annotated[
    str, PathParam(pattern=INCIDENT_ID_PATTERN, description="e.g. INC-2024-0001")
]
ItemId = Annotated[str, PathParam(pattern=r"^AI-\d{1,6}$", description="e.g. AI-1")]
ReaderCaller = Annotated[Caller, Reader]

errors = {
    **MUTATION_ERRORS,
    404: error_doc("No such incident (or action item)."),
    409: error_doc("Not possible in the incident's state (e.g. already resolved)."),
}


def _answer(runtime: Runtime, change: Callable[[], Incident], status: int = 200) -> tuple[int, Any]:
    """Run a change (errors mapped as for every incident change); answer with the incident
    and its recovery view."""
    changed: list[Incident] = []

    def run() -> Incident:
        changed.append(change())
        return changed[-1]

    _, body = incident_change(run)
    return status, {**body, "recovery": runtime.recovery(changed[-1])}


def _change(
    caller: Caller,
    key: str | None,
    request: Request,
    body: Any,
    what: str,
    act: Callable[[str], tuple[int, Any]],
) -> JSONResponse:
    """One idempotent change, acted by the authenticated caller, logged. A change to an
    incident the caller may not see is answered as if it did not exist."""
    who = actor(caller)
    incident_id = request.path_params.get("incident_id")

    def run() -> tuple[int, Any]:
        if incident_id is not None:
            require_visible(api_runtime(request), caller, incident_id)
        result = act(who)
        log.info("%s by %s", what, who)
        return result

    return mutate(caller, key, request, body.model_dump_json().encode(), run)


def _readable(runtime: Runtime, caller: Caller, incident_id: str) -> Incident:
    incident = runtime.get_incident(incident_id)
    if incident is None or not visible(caller, incident):
        raise ApiError(404, f"no incident {incident_id}")
    return incident


@router.post(
    "/api/v1/incidents",
    status_code=201,
    operation_id="declareIncident",
    response_model=IncidentReply,
    responses=errors,
)
def declare(
    body: DeclareRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Declare an incident by hand (a breach, leaked keys, a DDoS: what no SLO sees). A
    security incident needs the `security` role too."""
    if body.category == "security" and not may_see_security(caller):
        raise ApiError(403, "declaring a security incident needs the security role")

    def act(by: str) -> tuple[int, Any]:
        return _answer(
            runtime,
            lambda: runtime.declare(
                body.service,
                body.severity,
                body.title,
                body.category,
                by,
                customer_facing=body.customer_facing,
                tier=body.tier,
                commander=body.commander,
                note=body.note or "",
            ),
            201,
        )

    return _change(caller, idempotency_key, request, body, "incident declared", act)


@router.post(
    "/api/v1/incidents/{incident_id}/status",
    operation_id="setIncidentStatus",
    response_model=IncidentReply,
    responses=errors,
)
def set_status(
    incident_id: IncidentId,
    body: StatusRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """investigating → mitigating (→ monitoring) → resolved, with a note on each change."""

    def act(by: str) -> tuple[int, Any]:
        if body.status == "resolved":
            return _answer(runtime, lambda: runtime.resolve(incident_id, by, body.note))
        return _answer(runtime, lambda: runtime.set_status(incident_id, body.status, by, body.note))

    return _change(caller, idempotency_key, request, body, f"{incident_id} status", act)


@router.post(
    "/api/v1/incidents/{incident_id}/severity",
    operation_id="setIncidentSeverity",
    response_model=IncidentReply,
    responses=errors,
)
def set_severity(
    incident_id: IncidentId,
    body: SeverityRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Raise or lower the severity, with the reason."""

    def act(by: str) -> tuple[int, Any]:
        return _answer(
            runtime, lambda: runtime.set_severity(incident_id, body.severity, by, body.reason)
        )

    return _change(caller, idempotency_key, request, body, f"{incident_id} severity", act)


@router.post(
    "/api/v1/incidents/{incident_id}/roles",
    operation_id="assignIncidentRole",
    response_model=IncidentReply,
    responses=errors,
)
def assign_role(
    incident_id: IncidentId,
    body: RoleRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Assign a role or hand it over (a hand-over is announced to the receivers)."""

    def act(by: str) -> tuple[int, Any]:
        return _answer(
            runtime, lambda: runtime.assign_role(incident_id, body.role, body.person, by)
        )

    return _change(caller, idempotency_key, request, body, f"{incident_id} role", act)


@router.post(
    "/api/v1/incidents/{incident_id}/updates",
    operation_id="postIncidentUpdate",
    response_model=IncidentReply,
    responses=errors,
)
def post_update(
    incident_id: IncidentId,
    body: UpdateRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Post a stakeholder update: rendered with the internal template to the receivers and,
    when public, with the customer template to the status page."""

    def act(by: str) -> tuple[int, Any]:
        return _answer(runtime, lambda: runtime.post_update(incident_id, by, body.content()))

    return _change(caller, idempotency_key, request, body, f"{incident_id} update", act)


@router.get(
    "/api/v1/incidents/{incident_id}/updates",
    operation_id="listIncidentUpdates",
    response_model=UpdateList,
    responses={**READ_ERRORS, 404: errors[404]},
)
def list_updates(
    incident_id: IncidentId, caller: ReaderCaller, runtime: RuntimeDep
) -> JSONResponse:
    """The stakeholder updates posted so far, oldest first."""
    incident = _readable(runtime, caller, incident_id)
    updates = [e.data for e in incident.timeline if e.kind == "update_posted"]
    return JSONResponse({"updates": updates, "next_update_at": incident.next_update_at})


@router.get(
    "/api/v1/incidents/{incident_id}/review",
    operation_id="getIncidentReview",
    response_model=ReviewDraft,
    responses={
        **READ_ERRORS,
        404: errors[404],
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
    },
)
def review(
    incident_id: IncidentId,
    caller: ReaderCaller,
    runtime: RuntimeDep,
    format: Annotated[Literal["json", "md"], Query(description="json or md (Markdown)")] = "json",
) -> Response:
    """The post-incident review draft: timeline, impact, responders, action items."""
    _readable(runtime, caller, incident_id)
    if format == "md":
        return PlainTextResponse(
            runtime.review_markdown(incident_id), media_type="text/markdown; charset=utf-8"
        )
    return JSONResponse(runtime.review(incident_id))


@router.post(
    "/api/v1/incidents/{incident_id}/actions",
    status_code=201,
    operation_id="addActionItem",
    response_model=IncidentReply,
    responses=errors,
)
def add_action_item(
    incident_id: IncidentId,
    body: ActionItemRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Add an action item (open, optionally owned) — on an open or a closed incident."""

    def act(by: str) -> tuple[int, Any]:
        return _answer(
            runtime, lambda: runtime.add_action_item(incident_id, body.text, body.owner, by), 201
        )

    return _change(caller, idempotency_key, request, body, f"{incident_id} action item", act)


@router.patch(
    "/api/v1/incidents/{incident_id}/actions/{item_id}",
    operation_id="changeActionItem",
    response_model=IncidentReply,
    responses=errors,
)
def change_action_item(
    incident_id: IncidentId,
    item_id: ItemId,
    body: ActionItemChange,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Mark an action item done (or open again) and/or change its owner."""
    owner = body.owner if "owner" in body.model_fields_set else KEEP

    def act(by: str) -> tuple[int, Any]:
        return _answer(
            runtime,
            lambda: runtime.change_action_item(incident_id, item_id, by, body.status, owner),
        )

    return _change(caller, idempotency_key, request, body, f"{incident_id} {item_id}", act)


@router.post(
    "/api/v1/incidents/{incident_id}/review/close",
    operation_id="closeIncidentReview",
    response_model=IncidentReply,
    responses=errors,
)
def close_review(
    incident_id: IncidentId,
    body: CloseReviewRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Close the post-incident review: an incident in `review` is resolved."""

    def act(by: str) -> tuple[int, Any]:
        return _answer(runtime, lambda: runtime.close_review(incident_id, by, body.note or ""))

    return _change(caller, idempotency_key, request, body, f"{incident_id} review closed", act)
