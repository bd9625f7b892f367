"""Operations: liveness, readiness (with the reasons) and the Prometheus exposition of the
engine's and the API's own metrics. Never rate limited: probes and scrapes must get through.

Probes are anonymous (a kubelet has no token), but the reasons of `/readyz` name backends,
addresses and store paths: only a caller with the `read` role sees them; others get the
verdict. `/metrics` is anonymous unless the daemon sets `metrics_auth: true`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import prometheus_client
from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from engine.api.deps import RuntimeDep, api_context, authorize, presented_token
from engine.api.errors import AUTH_ERRORS, json_errors
from engine.api.oidc import InvalidToken, looks_like_jwt
from engine.api.replies import Liveness, Readiness
from engine.api.security import authenticate

log = logging.getLogger("engine.api")

# The classic text format every Prometheus 2.x understands; our metric names need nothing
# newer, so the body is the same as prometheus_client's 1.0.0 flavour.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="getLiveness", response_model=Liveness)
def healthz() -> JSONResponse:
    """The process is alive and serving HTTP."""
    return JSONResponse({"status": "alive"})


async def _may_read(request: Request) -> bool:
    """Whether the caller may read (no rate limit or lockout here: probes must answer)."""
    api = api_context(request)
    if api.access.anonymous_reads:
        return True
    presented = presented_token(request)
    if presented is None:
        return False
    token = authenticate(api.tokens, presented)
    if token is not None:
        return token.identity().has("read")
    if api.verifier is None or not looks_like_jwt(presented):
        return False
    try:
        identity = await to_thread.run_sync(api.verifier.verify, presented)
    except InvalidToken:
        return False
    return identity.has("read")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready (the same body)."}},
)
def readyz(runtime: RuntimeDep, may_read: Annotated[bool, Depends(_may_read)]) -> JSONResponse:
    """Source reachable, store writable, last cycle recent, specs valid — or why not (the
    reasons for callers with the `read` role)."""
    try:
        ready, reasons = runtime.readiness()
    except Exception:
        log.exception("readiness check failed")
        ready, reasons = False, ["readiness check failed; see the slo-engine log"]
    if not may_read:
        reasons = [] if ready else ["not ready; the reasons are shown to authenticated callers"]
    return JSONResponse({"ready": ready, "reasons": list(reasons)}, 200 if ready else 503)


async def _metrics_access(request: Request) -> None:
    if api_context(request).access.metrics_auth:
        await authorize(request, "read", change=False)


@router.get(
    "/metrics",
    operation_id="getMetrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "The Prometheus text exposition format (0.0.4).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        # Only with `metrics_auth: true`.
        **json_errors(AUTH_ERRORS),
    },
)
def metrics(
    request: Request, runtime: RuntimeDep, _: Annotated[None, Depends(_metrics_access)]
) -> PlainTextResponse:
    """Prometheus exposition of the engine's own metrics (`read` role with `metrics_auth`)."""
    text = prometheus_client.generate_latest(runtime.metrics_registry)
    text += prometheus_client.generate_latest(api_context(request).registry)
    return PlainTextResponse(text, media_type=EXPOSITION_CONTENT_TYPE)
