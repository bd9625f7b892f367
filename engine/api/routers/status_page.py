"""Pages for people: the server-rendered status page (`/status`, also `/`) and the Swagger
UI (`/docs`), the one page allowed a script (its own, by hash: see `docs_csp`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

from engine.api.contract import Runtime
from engine.api.deps import RuntimeDep, api_context
from engine.api.status_page import build_view, render_status_page
from engine.incidents.incident import Incident, IncidentStatus

log = logging.getLogger("engine.api")

router = APIRouter()


def docs_csp(html: str) -> str:
    """Swagger UI needs its CDN and one inline script: allow exactly that script by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    ]
    return (
        "default-src 'none'; "
        f"script-src https://cdn.jsdelivr.net {' '.join(hashes)}; "
        "style-src https://cdn.jsdelivr.net 'unsafe-inline'; "
        "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )


DOCS_HTML = get_swagger_ui_html(openapi_url="/openapi.json", title="slo-engine API").body.decode()
DOCS_CSP = docs_csp(DOCS_HTML)


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_HTML)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/status")


def notice(runtime: Runtime, incident: Incident) -> str:
    # The status page must not fail during an incident because a template did.
    try:
        return runtime.customer_notice(incident)
    except Exception:
        log.exception("customer notice for %s failed", incident.id)
        return incident.customer_notice or f"We are investigating an issue with {incident.service}."


@router.get("/status", tags=["status page"], response_class=HTMLResponse)
def status_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Server-rendered status page (no JavaScript)."""
    open_incidents = []
    for state in (IncidentStatus.investigating, IncidentStatus.mitigating):
        for listed in runtime.list_incidents(state.value, None):
            # Lists come without timelines; the page shows each incident's updates.
            open_incidents.append(runtime.get_incident(listed.id) or listed)
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
    )
    return HTMLResponse(render_status_page(view), headers={"Cache-Control": "no-store"})
