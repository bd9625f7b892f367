"""The audit log (`admin`): every change made through the API, newest first — who did what
to which target, from where, and how it ended (engine/api/audit.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from engine.api.deps import Admin, api_context
from engine.api.errors import READ_ERRORS, ApiError, error_doc
from engine.api.replies import AuditLogReply

router = APIRouter(tags=["audit"])


@router.get(
    "/api/v1/audit",
    operation_id="listAuditEntries",
    response_model=AuditLogReply,
    responses={
        **READ_ERRORS,
        403: error_doc("Needs the admin role."),
        503: error_doc("The store has no audit log or cannot be read."),
    },
)
def audit_log(
    request: Request,
    caller: Admin,
    since: Annotated[float | None, Query(description="Unix seconds; entries at or after")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Audit entries, newest first: at, actor, roles, action, target, request_id, source,
    result (the HTTP status) and detail."""
    auditor = api_context(request).auditor
    if auditor is None or auditor.store is None:
        raise ApiError(503, "this daemon keeps no audit log in a store; see its log instead")
    try:
        found = auditor.store.entries(since=since, actor=actor, limit=limit)
    except Exception as exc:  # sqlite3/psycopg errors
        raise ApiError(
            503, f"the audit log cannot be read right now ({type(exc).__name__})"
        ) from None
    return JSONResponse({"entries": [e.to_json() for e in found]})
