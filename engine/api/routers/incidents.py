"""Incidents: list and read them (`read`), acknowledge, resolve and comment (`responder`,
idempotent, acted by the authenticated identity). The runtime decides; this module only maps
its answers and errors to HTTP."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from engine.api.deps import Caller, IdempotencyKey, Reader, Responder, RuntimeDep
from engine.api.errors import MUTATION_ERRORS, READ_ERRORS, ApiError, error_doc
from engine.api.incident_access import actor, incident_json, require_visible, visible
from engine.api.mutations import incident_change, mutate
from engine.api.replies import IncidentList, IncidentReply
from engine.api.schemas import INCIDENT_ID_PATTERN, AckRequest, CommentRequest, ResolveRequest
from engine.incidents.incident import OPEN_STATUSES

log = logging.getLogger("engine.api")

router = APIRouter(tags=["incidents"])

IncidentId = Annotated[
    str, PathParam(pattern=INCIDENT_ID_PATTERN, description="e.g. INC-2024-0001")
]

incident_errors = {
    **MUTATION_ERRORS,
    404: error_doc("No such incident."),
    409: error_doc("Not possible in the incident's state (e.g. already resolved)."),
}


@router.get(
    "/api/v1/incidents",
    operation_id="listIncidents",
    response_model=IncidentList,
    responses=READ_ERRORS,
)
def list_incidents(
    runtime: RuntimeDep,
    caller: Annotated[Caller, Reader],
    status: Annotated[
        Literal["open", "investigating", "mitigating", "monitoring", "resolved", "review"] | None,
        Query(description="open = investigating, mitigating or monitoring"),
    ] = None,
    severity: Literal["SEV1", "SEV2", "SEV3", "SEV4"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Incidents, newest first, without timelines."""
    if status == "open":
        found = [i for s in OPEN_STATUSES for i in runtime.list_incidents(s.value, severity)]
    else:
        found = runtime.list_incidents(status, severity)
    found = [i for i in found if visible(caller, i)]  # security incidents: security roles
    found.sort(key=lambda i: (i.opened_at, i.id), reverse=True)
    return JSONResponse(
        {
            "incidents": [incident_json(runtime, i, timeline=False) for i in found[:limit]],
            "total": len(found),
        }
    )


@router.get(
    "/api/v1/incidents/{incident_id}",
    operation_id="getIncident",
    response_model=IncidentReply,
    responses={**READ_ERRORS, 404: error_doc("No such incident.")},
)
def get_incident(
    incident_id: IncidentId, runtime: RuntimeDep, caller: Annotated[Caller, Reader]
) -> JSONResponse:
    """One incident with its full timeline and its recovery time objective's state."""
    incident = runtime.get_incident(incident_id)
    if incident is None or not visible(caller, incident):
        raise ApiError(404, f"no incident {incident_id}")
    return JSONResponse(incident_json(runtime, incident))


@router.post(
    "/api/v1/incidents/{incident_id}/ack",
    operation_id="acknowledgeIncident",
    response_model=IncidentReply,
    responses=incident_errors,
)
def acknowledge(
    incident_id: IncidentId,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
    body: AckRequest | None = None,
) -> JSONResponse:
    """Acknowledge: stops escalation and repeat notifications. Returns the incident. The
    body may be left out (`{}`)."""
    who = actor(caller)

    def act() -> tuple[int, Any]:
        require_visible(runtime, caller, incident_id)
        result = incident_change(lambda: runtime.acknowledge(incident_id, who))
        log.info("%s acknowledged by %s (%s)", incident_id, who, caller.key)
        return result

    canonical = (body or AckRequest()).model_dump_json().encode()
    return mutate(caller, idempotency_key, request, canonical, act)


@router.post(
    "/api/v1/incidents/{incident_id}/resolve",
    operation_id="resolveIncident",
    response_model=IncidentReply,
    responses=incident_errors,
)
def resolve(
    incident_id: IncidentId,
    body: ResolveRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Resolve by hand. Alerts still firing must clear before they can page again."""
    who = actor(caller)

    def act() -> tuple[int, Any]:
        require_visible(runtime, caller, incident_id)
        result = incident_change(lambda: runtime.resolve(incident_id, who, body.note))
        log.info("%s resolved by %s (%s)", incident_id, who, caller.key)
        return result

    return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)


@router.post(
    "/api/v1/incidents/{incident_id}/comment",
    operation_id="commentOnIncident",
    response_model=IncidentReply,
    responses=incident_errors,
)
def comment(
    incident_id: IncidentId,
    body: CommentRequest,
    request: Request,
    caller: Responder,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Add a timeline comment. Comments show on the status page as updates."""
    who = actor(caller)

    def act() -> tuple[int, Any]:
        require_visible(runtime, caller, incident_id)
        result = incident_change(lambda: runtime.comment(incident_id, who, body.text))
        log.info("%s commented by %s (%s)", incident_id, who, caller.key)
        return result

    return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)
