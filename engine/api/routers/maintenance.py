"""Maintenance windows at run time: list them (`read`), declare one, end one (`admin`, as
for silences; idempotent; the creator is the authenticated identity, never the body).

A window excludes its SLOs' events from the budget and mutes their alerts, from the next
evaluation cycle on (engine/daemon/maintenance.py; docs/budgets.md). Because it rewrites
the budget, its start may lie at most `MAX_PAST_SECONDS` in the past — enough to declare
work already begun, too little to erase yesterday's outage — and its end must be ahead.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from engine.api.deps import Admin, IdempotencyKey, Reader, RuntimeDep, api_context
from engine.api.errors import MUTATION_ERRORS, READ_ERRORS, ApiError, error_doc, runtime_message
from engine.api.incident_access import actor
from engine.api.maintenance_schemas import MAINTENANCE_ID_PATTERN, MaintenanceRequest
from engine.api.mutations import mutate
from engine.api.replies import MaintenanceList, MaintenanceReply
from engine.daemon.maintenance import DaemonMaintenance
from engine.store.base import StoreError

log = logging.getLogger("engine.api")

# How far back a window may start (it excludes events already counted).
MAX_PAST_SECONDS = 3600.0
# How far ahead a window may start: planned work, not a standing exemption.
MAX_AHEAD_SECONDS = 90 * 86400.0

router = APIRouter(tags=["maintenance"])


def _windows(runtime: object) -> DaemonMaintenance:
    found = getattr(runtime, "maintenance", None)
    if not isinstance(found, DaemonMaintenance) or found.windows is None:
        raise ApiError(503, "this daemon keeps no maintenance windows")
    return found


def window_span(body: MaintenanceRequest, now: float) -> tuple[float, float]:
    """(start, end) in Unix seconds, or ApiError(422) for a window the clock rules out."""
    start, end = body.start.timestamp(), body.end.timestamp()
    if start < now - MAX_PAST_SECONDS:
        raise ApiError(
            422,
            "invalid request: body.start: at most 1h in the past — a window excludes its "
            "events from the budget, and earlier events are already counted",
        )
    if start > now + MAX_AHEAD_SECONDS:
        raise ApiError(422, "invalid request: body.start: at most 90 days ahead")
    if end <= now:
        raise ApiError(422, "invalid request: body.end: the window would already be over")
    return start, end


@router.get(
    "/api/v1/maintenance",
    operation_id="listMaintenance",
    response_model=MaintenanceList,
    responses={**READ_ERRORS, 503: error_doc("The store cannot be read right now; retry.")},
    dependencies=[Reader],
)
def list_maintenance(
    request: Request,
    runtime: RuntimeDep,
    everything: Annotated[
        bool, Query(alias="all", description="Also ended and cancelled windows.")
    ] = False,
) -> JSONResponse:
    """Windows declared through the API, active and upcoming (`?all=true`: every one)."""
    now = api_context(request).clock()
    try:
        found = _windows(runtime).listed(now, everything)
    except StoreError as exc:
        log.error("maintenance windows not read: %s", exc)
        raise ApiError(503, "the store cannot be read right now; retry") from None
    return JSONResponse({"windows": [w.to_json(now) for w in found]})


@router.post(
    "/api/v1/maintenance",
    status_code=201,
    operation_id="createMaintenance",
    response_model=MaintenanceReply,
    responses={**MUTATION_ERRORS, 201: {"description": "The window, with its id."}},
)
def create_maintenance(
    body: MaintenanceRequest,
    request: Request,
    caller: Admin,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Declare a maintenance window: its SLOs' events are excluded from the budget and their
    alerts muted from `start` to `end`."""
    clock = api_context(request).clock

    def act() -> tuple[int, Any]:
        now = clock()
        span = window_span(body, now)
        who = actor(caller)
        matchers = body.matchers
        try:
            window = _windows(runtime).declare(
                matchers.service or [], matchers.slo or [], span, body.reason, who, now
            )
        except ValueError as exc:
            raise ApiError(422, f"invalid request: body.{runtime_message(exc)}") from None
        except StoreError as exc:
            log.error("maintenance window not recorded: %s", exc)
            raise ApiError(503, "the store cannot be written right now; retry") from None
        log.info("maintenance window %s declared by %s", window.id, who)
        return 201, window.to_json(now)

    return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)


@router.delete(
    "/api/v1/maintenance/{window_id}",
    operation_id="deleteMaintenance",
    response_model=MaintenanceReply,
    responses={
        **MUTATION_ERRORS,
        404: error_doc("No such maintenance window."),
        409: error_doc("The window is already over (or a retry is still being answered)."),
    },
)
def delete_maintenance(
    window_id: Annotated[str, PathParam(pattern=MAINTENANCE_ID_PATTERN)],
    request: Request,
    caller: Admin,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """End a window now (an upcoming one is cancelled). Its past stays excluded."""
    clock = api_context(request).clock

    def act() -> tuple[int, Any]:
        now = clock()
        try:
            window = _windows(runtime).end(window_id, actor(caller), now)
        except KeyError as exc:
            raise ApiError(404, runtime_message(exc)) from None
        except ValueError as exc:
            raise ApiError(409, runtime_message(exc)) from None
        except StoreError as exc:
            log.error("maintenance window not ended: %s", exc)
            raise ApiError(503, "the store cannot be written right now; retry") from None
        log.info("maintenance window %s ended by %s", window_id, actor(caller))
        return 200, window.to_json(now)

    return mutate(caller, idempotency_key, request, b"", act)
