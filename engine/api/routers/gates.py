"""The release gate: may a service ship now? For CI/CD (`slo-engine gate SERVICE`).

200 `{"allowed": true, ...}` when no SLO of the service with a `freeze` threshold has spent
that much of its budget; 423 Locked `{"allowed": false, "reasons": [...], ...}` otherwise —
and also while such an SLO's budget is unknown (no data, source errors): a gate that opens
on what it cannot see would wave releases through exactly when nobody is looking
(docs/budgets.md). Read-only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from engine.api.deps import Reader, RuntimeDep
from engine.api.errors import READ_ERRORS, ApiError, error_doc
from engine.api.replies import GateDecisionReply
from engine.evaluation.budget_policy import release_gate
from engine.spec.models import NAME_RE

router = APIRouter(tags=["gates"], dependencies=[Reader])


@router.get(
    "/api/v1/gates/{service}",
    operation_id="getReleaseGate",
    response_model=GateDecisionReply,
    responses={
        **READ_ERRORS,
        404: error_doc("No evaluated SLO of that service."),
        423: {
            "model": GateDecisionReply,
            "description": "Releases are frozen (or a guarding budget is unknown).",
        },
    },
)
def gate(
    service: Annotated[str, PathParam(pattern=NAME_RE.pattern)], runtime: RuntimeDep
) -> JSONResponse:
    """Whether `service` may release: its error-budget policies' freeze state."""
    decision = release_gate(service, runtime.slo_results())
    if decision is None:
        raise ApiError(404, f"no evaluated SLO of service {service}; GET /api/v1/slos lists them")
    return JSONResponse(decision.to_json(), 200 if decision.allowed else 423)
