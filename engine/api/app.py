"""The daemon's HTTP face: JSON API, health and readiness probes, /metrics and the status page.

    app = create_app(runtime, load_tokens(Path("tokens")))
    uvicorn.run(app, host="127.0.0.1", port=8080)

The app is a thin shell over the `Runtime` (engine/daemon/runtime.py): it validates input,
checks who is asking, and turns the runtime's answers and errors into HTTP. Reads are open;
every mutation needs an admin bearer token, is rate limited per token (per client address
without one), and honours `Idempotency-Key` so a retried POST acts once; a client address
with `auth_failures` failed authentications within `auth_failure_window_s` is refused (429)
until the window moves on. Errors are always
`{"error": "..."}` JSON; tokens and stack traces never reach a response or a log line.

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

from engine.api.contract import Runtime
from engine.api.deps import ApiContext, admin, bearer
from engine.api.errors import ApiError
from engine.api.middleware import STRICT_CSP, GuardMiddleware, request_duration
from engine.api.routers import health, incidents, response, silences, slos, status_page
from engine.api.security import ApiToken, FailedAuthLimiter, IdempotencyCache, RateLimiter

__all__ = ["API_VERSION", "DEFAULT_MAX_BODY_BYTES", "ApiError", "Runtime", "create_app"]

API_VERSION = "1"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KNOWN_METHODS = MUTATING_METHODS | {"GET", "HEAD", "OPTIONS"}


def create_app(
    runtime: Runtime,
    tokens: list[ApiToken],
    *,
    rate_limit_per_s: float = 5,
    burst: int = 20,
    auth_failures: int = 10,
    auth_failure_window_s: float = 60,
    idempotency_ttl_s: float = 86400,
    clock: Callable[[], float] = time.time,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = FastAPI(
        title="slo-engine API",
        version=API_VERSION,
        description=(
            "SLO status, incidents and silences of a running slo-engine. Reads are open; "
            "changes need `Authorization: Bearer <admin token>` and honour `Idempotency-Key`."
        ),
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    registry = prometheus_client.CollectorRegistry()
    app.state.api = ApiContext(
        runtime=runtime,
        tokens=tokens,
        limiter=RateLimiter(rate_limit_per_s, burst, clock),
        failed_auth=FailedAuthLimiter(auth_failures, auth_failure_window_s, clock),
        idempotency=IdempotencyCache(idempotency_ttl_s, clock),
        clock=clock,
        registry=registry,
    )
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=max_body_bytes,
        csp_for=_csp_for,
        on_response=_request_counter(registry),
        on_complete=request_duration(registry),
    )
    static_dir = Path(str(files("engine.api") / "static"))
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for resource in (slos, incidents, response, silences, health, status_page):
        app.include_router(resource.router)
    return app


def _csp_for(path: str) -> str:
    return status_page.DOCS_CSP if path == "/docs" else STRICT_CSP


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


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI parses a JSON body before it runs dependencies: a mutation whose body is
    # not even JSON gets here without its token checked. Check it now, so strangers
    # learn nothing about validation and still count against their rate limit.
    if request.method in MUTATING_METHODS and not hasattr(request.state, "caller"):
        try:
            await admin(request, await bearer(request))
        except ApiError as refused:
            return refused.response()
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
