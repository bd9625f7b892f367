"""The server-rendered status page (`/status`, also `/`): no JavaScript, strict CSP.

Who sees what: a caller with the `read` role gets the internal view (roles, recovery time
objectives, runbooks — of the incidents they may see); an anonymous visitor gets the
customer view when the daemon sets `public_status_page: true` (what the customer template
shows: no responder names, no internal notes), else 401.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from engine.api.contract import Runtime
from engine.api.deps import Caller, RuntimeDep, api_context, authorize, presented_token
from engine.api.errors import AUTH_ERRORS, json_errors
from engine.api.incident_access import publicly_visible, visible
from engine.api.status_page import build_view, render_status_page
from engine.api.status_policy import freezes_of
from engine.incidents.incident import OPEN_STATUSES, Incident

log = logging.getLogger("engine.api")

router = APIRouter()


# Out of the document (a convenience for browsers), but described like every route.
@router.get(
    "/",
    include_in_schema=False,
    operation_id="redirectToStatusPage",
    responses={307: {"description": "Redirect to /status."}},
)
def root() -> RedirectResponse:
    return RedirectResponse("/status")


def notice(runtime: Runtime, incident: Incident) -> str:
    # The status page must not fail during an incident because a template did.
    try:
        return runtime.customer_notice(incident)
    except Exception:
        log.exception("customer notice for %s failed", incident.id)
        return incident.customer_notice or f"We are investigating an issue with {incident.service}."


async def _caller(request: Request) -> Caller | None:
    """Who asks: a reader (the internal view), or None for an anonymous visitor of the
    public page. Anyone else: 401 (no token, public page off) or 403 (no `read` role)."""
    api = api_context(request)
    if presented_token(request) is None and api.access.public_status_page:
        return None
    return await authorize(request, "read", change=False)


@router.get(
    "/status",
    tags=["status page"],
    operation_id="getStatusPage",
    response_class=HTMLResponse,
    responses={
        200: {"description": "The page (HTML, no JavaScript)."},
        **json_errors(AUTH_ERRORS),
    },
)
def status_page(
    request: Request, runtime: RuntimeDep, caller: Annotated[Caller | None, Depends(_caller)]
) -> HTMLResponse:
    """Server-rendered status page (no JavaScript): the internal view for readers (roles,
    recovery time objectives, runbooks); the customer view for anonymous visitors when the
    public status page is on."""

    def internal(incident: Incident) -> bool:
        return caller is not None and visible(caller, incident)

    open_incidents = []
    for state in OPEN_STATUSES:
        for listed in runtime.list_incidents(state.value, None):
            # Lists come without timelines; the page shows each incident's updates.
            incident = runtime.get_incident(listed.id) or listed
            if internal(incident) or publicly_visible(incident):
                open_incidents.append(incident)
    try:
        ready = runtime.readiness()[0]
    except Exception:
        ready = False
    view = build_view(
        runtime.slo_results(),
        open_incidents,
        lambda incident: notice(runtime, incident),
        api_context(request).clock(),
        ready,
        internal if caller is not None else None,
        freezes_of(runtime),
    )
    return HTMLResponse(render_status_page(view), headers={"Cache-Control": "no-store"})
