"""SLOs: the latest evaluation of every SLO (the `evaluate --format json` contract) and the
state of the spec files they come from. Read-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from engine.api.deps import Reader, RuntimeDep
from engine.api.errors import AUTH_ERRORS, READ_ERRORS, ApiError, error_doc
from engine.api.replies import SloEvaluationReply, SloList, SpecStatus
from engine.evaluation.budget_policy import policy_state
from engine.evaluation.result import SLOEvaluation
from engine.spec.models import NAME_RE

_NAME_PATTERN = NAME_RE.pattern

router = APIRouter(tags=["slos"], dependencies=[Reader])


@router.get("/api/v1/slos", operation_id="listSlos", response_model=SloList, responses=AUTH_ERRORS)
def list_slos(runtime: RuntimeDep) -> JSONResponse:
    """Every SLO's latest evaluation: the `slo-engine evaluate --format json` contract."""
    results = runtime.slo_results()
    evaluated_at = max((r.evaluated_at for r in results), default=None)
    return JSONResponse({"evaluated_at": evaluated_at, "slos": [_with_policy(r) for r in results]})


@router.get(
    "/api/v1/slos/{service}/{slo}",
    operation_id="getSlo",
    response_model=SloEvaluationReply,
    responses={**READ_ERRORS, 404: error_doc("No such SLO (or not evaluated yet).")},
)
def get_slo(
    service: Annotated[str, PathParam(pattern=_NAME_PATTERN)],
    slo: Annotated[str, PathParam(pattern=_NAME_PATTERN)],
    runtime: RuntimeDep,
) -> JSONResponse:
    """One SLO's latest evaluation (with `policy_state` when it has a `budget_policy`)."""
    result = runtime.slo_result(f"{service}/{slo}")
    if result is None:
        raise ApiError(404, f"no evaluated SLO {service}/{slo}; GET /api/v1/slos lists the SLOs")
    return JSONResponse(_with_policy(result))


def _with_policy(result: SLOEvaluation) -> dict:
    """The evaluate contract, plus `policy_state` for an SLO with a `budget_policy` (absent
    otherwise, so the contract of SLOs without one is unchanged)."""
    state = policy_state(result)
    return (
        result.to_json() if state is None else {**result.to_json(), "policy_state": state.to_json()}
    )


@router.get(
    "/api/v1/specs",
    operation_id="getSpecStatus",
    response_model=SpecStatus,
    responses=AUTH_ERRORS,
)
def spec_status(runtime: RuntimeDep) -> JSONResponse:
    """When the specs were last loaded, how many, and the last reload error if any."""
    return JSONResponse(runtime.spec_status())
