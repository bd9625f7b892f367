"""Operations: liveness, readiness (with the reasons) and the Prometheus exposition of the
engine's and the API's own metrics. Never rate limited: probes and scrapes must get through."""

from __future__ import annotations

import logging

import prometheus_client
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from engine.api.deps import RuntimeDep, api_context

log = logging.getLogger("engine.api")

# The classic text format every Prometheus 2.x understands; our metric names need nothing
# newer, so the body is the same as prometheus_client's 1.0.0 flavour.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> JSONResponse:
    """The process is alive and serving HTTP."""
    return JSONResponse({"status": "alive"})


@router.get("/readyz", responses={503: {"description": "Degraded."}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Source reachable, store writable, last cycle recent, specs valid — or why not."""
    try:
        ready, reasons = runtime.readiness()
    except Exception:
        log.exception("readiness check failed")
        ready, reasons = False, ["readiness check failed; see the slo-engine log"]
    return JSONResponse({"ready": ready, "reasons": list(reasons)}, 200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    """Prometheus exposition of the engine's own metrics."""
    text = prometheus_client.generate_latest(runtime.metrics_registry)
    text += prometheus_client.generate_latest(api_context(request).registry)
    return PlainTextResponse(text, media_type=EXPOSITION_CONTENT_TYPE)
