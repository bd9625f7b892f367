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
from engine.api.deps import Caller, RuntimeDep, api_context
from engine.api.incident_access import publicly_visible, visible
from engine.api.security import authenticate
from engine.api.status_page import build_view, render_status_page
from engine.incidents.incident import OPEN_STATUSES, Incident

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
    """Server-rendered status page (no JavaScript); with a valid bearer token, the internal
    view (roles, recovery time objectives, runbooks)."""
    caller = _caller(request)

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
    )
    return HTMLResponse(render_status_page(view), headers={"Cache-Control": "no-store"})


def _caller(request: Request) -> Caller | None:
    """Who asks, when the request carries a valid token: that reader sees the internal view
    (of the incidents they may see). No rate limit here: the page must answer in an outage."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    token = authenticate(api_context(request).tokens, presented.strip())
    if token is None:
        return None
    return Caller(token, "token:" + token.digest.hex()[:16], True)
