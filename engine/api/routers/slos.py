"""SLOs: the latest evaluation of every SLO (the `evaluate --format json` contract) and the
state of the spec files they come from. Read-only.

A grouped SLO's instances are addressed by their labels, never by their id in a path: a
label value may hold any character (`/`, `,`, `=`, `}`), and a `%2F` in a path is decoded
before routing by most servers and proxies. So `?group=<label>=<value>` is a query parameter,
once per `group_by` label, split at its first `=` (label names cannot hold one)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from engine.api.contract import Runtime
from engine.api.deps import Reader, RuntimeDep
from engine.api.errors import AUTH_ERRORS, READ_ERRORS, ApiError, error_doc
from engine.api.replies import SloEvaluationReply, SloGroupList, SloList, SpecStatus
from engine.evaluation.budget_policy import policy_state
from engine.evaluation.result import SLOEvaluation
from engine.spec.group_labels import label_set_text
from engine.spec.models import NAME_RE

_NAME_PATTERN = NAME_RE.pattern
# Prometheus label names: what `group_by` accepts.
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# More than any group_by has; keeps a hostile query string from costing anything.
_MAX_GROUP_LABELS = 32
GroupQuery = Annotated[
    list[str] | None,
    Query(
        description="One instance of a grouped SLO: `<label>=<value>`, once per `group_by` "
        "label (percent-encoded as any query value; split at the first `=`).",
        max_length=_MAX_GROUP_LABELS,
    ),
]

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
    group: GroupQuery = None,
) -> JSONResponse:
    """One SLO's latest evaluation (with `policy_state` when it has a `budget_policy`); for
    a grouped SLO, one instance: `?group=route=/cart` (its placeholder while it has none)."""
    base = f"{service}/{slo}"
    if group:
        labels = _group_labels(group)
        found = next(
            (r for r in _of(runtime, base) if r.slo.group and r.slo.group_labels == labels),
            None,
        )
        if found is None:
            raise ApiError(
                404,
                f"no evaluated instance {base}{label_set_text(labels.items())}; "
                f"GET /api/v1/slos/{base}/groups lists them",
            )
        return JSONResponse(_with_policy(found))
    result = runtime.slo_result(base)
    if result is not None:
        return JSONResponse(_with_policy(result))
    instances = _of(runtime, base)
    if instances:
        by = ", ".join(instances[0].slo.group_by)
        raise ApiError(
            404,
            f"{base} is grouped by {by}: GET /api/v1/slos/{base}/groups lists its instances, "
            "?group=<label>=<value> picks one",
        )
    raise ApiError(404, f"no evaluated SLO {base}; GET /api/v1/slos lists the SLOs")


@router.get(
    "/api/v1/slos/{service}/{slo}/groups",
    operation_id="listSloGroups",
    response_model=SloGroupList,
    responses={**READ_ERRORS, 404: error_doc("No such SLO, or it is not grouped.")},
)
def list_slo_groups(
    service: Annotated[str, PathParam(pattern=_NAME_PATTERN)],
    slo: Annotated[str, PathParam(pattern=_NAME_PATTERN)],
    runtime: RuntimeDep,
) -> JSONResponse:
    """A grouped SLO's instances: each group's labels and status. None yet (before
    discovery found a group): `groups` is empty and `status`/`error` say why."""
    base = f"{service}/{slo}"
    results = _of(runtime, base)
    if not results:
        raise ApiError(404, f"no evaluated SLO {base}; GET /api/v1/slos lists the SLOs")
    if not results[0].slo.grouped:
        raise ApiError(404, f"{base} is not grouped (no group_by); GET /api/v1/slos/{base}")
    instances = [r for r in results if r.slo.group]
    placeholder = None if instances else results[0]
    return JSONResponse(
        {
            "slo": base,
            "group_by": list(results[0].slo.group_by),
            "status": None if placeholder is None else placeholder.status,
            "error": None if placeholder is None else placeholder.error,
            "groups": [_group_reply(r) for r in instances],
        }
    )


def _group_reply(result: SLOEvaluation) -> dict:
    full = result.to_json()  # the same numbers as the instance's own evaluation
    return {
        "id": result.slo.id,
        "group": result.slo.group_labels,
        "status": result.status,
        "error_budget_remaining": full["error_budget_remaining"],
        "evaluated_at": result.evaluated_at,
        "error": result.error,
    }


def _of(runtime: Runtime, base: str) -> list[SLOEvaluation]:
    """The results of the spec SLO `base`: itself, or its instances (or placeholder)."""
    return [r for r in runtime.slo_results() if r.slo.base_id == base]


def _group_labels(pairs: list[str]) -> dict[str, str]:
    """`["route=/cart", …]` → {"route": "/cart"}; ApiError(422) for a malformed pair."""
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _LABEL_NAME.fullmatch(name):
            raise ApiError(
                422, "invalid request: query.group: write <label>=<value>, e.g. route=/cart"
            )
        if name in labels:
            raise ApiError(422, f"invalid request: query.group: label {name} given twice")
        labels[name] = value
    return labels


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
