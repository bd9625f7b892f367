"""The daemon's HTTP face: JSON API, health and readiness probes, /metrics and the status page.

    app = create_app(runtime, load_tokens(Path("tokens")), oidc=JwtVerifier(config.oidc))
    uvicorn.run(app, host="127.0.0.1", port=8080)

The app is a thin shell over the `Runtime` (engine/daemon/runtime.py): it validates input,
checks who is asking, and turns the runtime's answers and errors into HTTP. Every route
needs a role (engine/api/identity.py) held by a static token or an OIDC access token:
`read` for reads (unless `anonymous_reads`), `responder` for incident response, `admin`
for silences and the audit log; probes stay anonymous, and so may `/status`
(`public_status_page`) and `/metrics` (unless `metrics_auth`). Requests are rate limited
per identity (per client address without one); every change honours `Idempotency-Key` so a
retried POST acts once, and is written to the audit log (engine/api/audit.py); a client
address with `auth_failures` failed authentications within `auth_failure_window_s` is
refused (429) until the window moves on. Errors are always `{"error": "..."}` JSON; tokens
and stack traces never reach a response or a log line.

This module assembles the app: middleware, error handlers and the per-app state
(`ApiContext`); the routes live in one router per resource under engine/api/routers/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import prometheus_client
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.api.audit import AuditMiddleware, Auditor
from engine.api.contract import Runtime
from engine.api.deps import Access, ApiContext, authorize, change_role
from engine.api.errors import ApiError
from engine.api.middleware import STRICT_CSP, GuardMiddleware, request_duration
from engine.api.oidc import JwtVerifier
from engine.api.routers import (
    audit,
    docs,
    gates,
    health,
    incidents,
    maintenance,
    response,
    silences,
    slos,
    status_page,
)
from engine.api.security import ApiToken, FailedAuthLimiter, IdempotencyCache, RateLimiter
from engine.store.audit import AuditLog

__all__ = ["API_VERSION", "DEFAULT_MAX_BODY_BYTES", "ApiError", "Runtime", "create_app"]

API_VERSION = "1"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KNOWN_METHODS = MUTATING_METHODS | {"GET", "HEAD", "OPTIONS"}
DAY = 86400.0


def create_app(
    runtime: Runtime,
    tokens: list[ApiToken],
    *,
    rate_limit_per_s: float = 5,
    burst: int = 20,
    auth_failures: int = 10,
    auth_failure_window_s: float = 60,
    idempotency_ttl_s: float = DAY,
    clock: Callable[[], float] = time.time,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    oidc: JwtVerifier | None = None,
    access: Access | None = None,
    docs_page: bool = False,
    audit_log: AuditLog | None = None,
    audit_retention_s: float = 90 * DAY,
    hsts_max_age_s: float = 365 * DAY,
) -> FastAPI:
    """The app. `audit_log` defaults to the runtime's store's (`store.audit_log()`), and
    `access` to reads for the `read` role only (no public status page, open /metrics)."""
    app = FastAPI(
        title="slo-engine API",
        version=API_VERSION,
        description=(
            "SLO status, incidents and silences of a running slo-engine. Every route needs "
            "`Authorization: Bearer <token>` (a static token or an OIDC access token) with a "
            "role: read, responder (incident response), admin (silences, audit log), security "
            "(security incidents). Changes honour `Idempotency-Key`."
        ),
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    registry = prometheus_client.CollectorRegistry()
    auditor = Auditor(audit_log or _store_audit_log(runtime), audit_retention_s, clock)
    app.state.api = ApiContext(
        runtime=runtime,
        tokens=tokens,
        limiter=RateLimiter(rate_limit_per_s, burst, clock),
        failed_auth=FailedAuthLimiter(auth_failures, auth_failure_window_s, clock),
        idempotency=IdempotencyCache(idempotency_ttl_s, clock),
        clock=clock,
        registry=registry,
        verifier=oidc,
        access=access or Access(),
        auditor=auditor,
    )
    # Added first, so inside the guard: the guard's request id is known to the audit log.
    app.add_middleware(AuditMiddleware, auditor=auditor)
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=max_body_bytes,
        csp_for=_csp_for,
        on_response=_request_counter(registry),
        on_complete=request_duration(registry),
        hsts=f"max-age={int(hsts_max_age_s)}; includeSubDomains" if hsts_max_age_s > 0 else None,
    )
    static_dir = Path(str(files("engine.api") / "static"))
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    routers = [slos, gates, incidents, response, silences, maintenance, audit, health, status_page]
    for resource in [*routers, docs] if docs_page else routers:
        app.include_router(resource.router)
    return app


def _store_audit_log(runtime: Runtime) -> AuditLog | None:
    """The audit log of the runtime's store (the daemon's SQLite or PostgreSQL), if any."""
    opener = getattr(getattr(runtime, "store", None), "audit_log", None)
    return opener() if callable(opener) else None


def _csp_for(path: str) -> str:
    return docs.DOCS_CSP if path == "/docs" else STRICT_CSP


def _request_counter(registry: prometheus_client.CollectorRegistry) -> Callable[..., None]:
    requests_total = prometheus_client.Counter(
        "slo_engine_api_requests",
        "HTTP requests answered by the slo-engine API, by route template and status code.",
        ["method", "route", "code"],
        registry=registry,
    )

    def count(scope: dict[str, Any], status: int) -> None:
        # Labels from a closed set only: route templates, known methods (clients choose paths
        # and methods, and must not be able to grow the metric without bound).
        route = getattr(scope.get("route"), "path", None)
        if route is None:
            route = "/static" if scope["path"].startswith("/static/") else "unmatched"
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        requests_total.labels(method, route, str(status)).inc()

    return count


# ---------------------------------------------------------------------- errors as JSON


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


# FastAPI's answer to a body it cannot even decode (not UTF-8, say): a 400 before any
# dependency ran.
UNPARSABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
        refused = await _refuse_stranger(request)
        if refused is not None:
            return refused
        return JSONResponse({"error": "invalid request: body: not JSON text in UTF-8"}, 400)
    return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)


async def _refuse_stranger(request: Request) -> JSONResponse | None:
    """The refusal of a change whose body failed to parse, if its caller may not make it.

    FastAPI parses a JSON body before it runs dependencies: a mutation whose body is not
    even JSON gets to the error handlers without its token checked. Check it now, so
    strangers learn nothing about validation and still count against their rate limit."""
    role = change_role(request.scope.get("route"))
    if role is not None and not hasattr(request.state, "caller"):
        try:
            await authorize(request, role, change=True)
        except ApiError as refused:
            return refused.response()
    return None


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    refused = await _refuse_stranger(request)
    if refused is not None:
        return refused
    # loc and msg only: pydantic's `input` would echo whatever the client sent.
    reasons = [
        {
            "where": ".".join(str(part) for part in e.get("loc", ())),
            "message": e.get("msg", "invalid"),
        }
        for e in exc.errors()
    ]
    first = reasons[0] if reasons else {"where": "", "message": "invalid request"}
    return JSONResponse(
        {"error": f"invalid request: {first['where']}: {first['message']}", "reasons": reasons},
        422,
    )
