"""Silences: list the ones not yet expired (`read`), add one, expire one (`admin`,
idempotent; the creator is the authenticated identity). A silence longer than
`MAX_SILENCE_SECONDS` is refused: change the spec."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from engine.api.contract import Runtime
from engine.api.deps import Admin, IdempotencyKey, Reader, RuntimeDep, api_context
from engine.api.errors import AUTH_ERRORS, MUTATION_ERRORS, ApiError, error_doc, runtime_message
from engine.api.incident_access import actor
from engine.api.mutations import mutate
from engine.api.replies import SilenceDeleted, SilenceList, SilenceReply
from engine.api.schemas import SILENCE_ID_PATTERN, SilenceRequest
from engine.spec.durations import Duration
from engine.store.base import StoreError

log = logging.getLogger("engine.api")

# A silence longer than this is a forgotten silence: use a spec change instead.
MAX_SILENCE_SECONDS = 90 * 86400.0

router = APIRouter(tags=["silences"])


@router.get(
    "/api/v1/silences",
    operation_id="listSilences",
    response_model=SilenceList,
    responses=AUTH_ERRORS,
    dependencies=[Reader],
)
def list_silences(runtime: RuntimeDep) -> JSONResponse:
    """Silences that have not expired yet."""
    return JSONResponse({"silences": runtime.list_silences()})


def silence_span(body: SilenceRequest, now: float) -> tuple[float, float]:
    """(starts, ends) in Unix seconds, or ApiError(422) for a silence that cannot be."""
    starts = body.starts_at.timestamp() if body.starts_at else now
    if body.ends_at is not None:
        ends = body.ends_at.timestamp()
    else:
        ends = starts + Duration.parse(body.duration or "").seconds
    if ends <= now:
        raise ApiError(422, "the silence would already have expired: ends_at is past")
    if ends <= starts:
        raise ApiError(422, "ends_at must be after starts_at")
    if ends - max(now, starts) > MAX_SILENCE_SECONDS:
        raise ApiError(
            422,
            f"a silence may last at most {MAX_SILENCE_SECONDS / 86400:g} days; "
            "change the spec instead of silencing it for longer",
        )
    return starts, ends


def record_silence(
    runtime: Runtime, body: SilenceRequest, clock: Callable[[], float], who: str
) -> tuple[int, Any]:
    """Add the silence through the runtime: 201 with it, 422 for what the runtime refuses,
    503 when the store cannot be written."""
    starts, ends = silence_span(body, clock())
    try:
        silence = runtime.add_silence(
            [m.model_dump() for m in body.matchers],
            ends,
            who,
            body.comment,
            None if body.starts_at is None else starts,
        )
    except ValueError as exc:
        raise ApiError(422, runtime_message(exc)) from None
    except StoreError as exc:
        log.error("silence not recorded: %s", exc)
        raise ApiError(503, "the incident store cannot be written right now; retry") from None
    log.info("silence %s added by %s until %s", silence.get("id"), who, ends)
    return 201, silence


@router.post(
    "/api/v1/silences",
    status_code=201,
    operation_id="addSilence",
    response_model=SilenceReply,
    responses={**MUTATION_ERRORS, 201: {"description": "The silence, with its id."}},
)
def add_silence(
    body: SilenceRequest,
    request: Request,
    caller: Admin,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Silence alerts matching every matcher until `ends_at` (or for `duration`)."""
    clock = api_context(request).clock

    def act() -> tuple[int, Any]:
        return record_silence(runtime, body, clock, actor(caller))

    return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)


@router.delete(
    "/api/v1/silences/{silence_id}",
    operation_id="deleteSilence",
    response_model=SilenceDeleted,
    responses={**MUTATION_ERRORS, 404: error_doc("No such silence.")},
)
def delete_silence(
    silence_id: Annotated[str, PathParam(pattern=SILENCE_ID_PATTERN)],
    request: Request,
    caller: Admin,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Expire a silence now."""

    def act() -> tuple[int, Any]:
        if not runtime.delete_silence(silence_id):
            raise ApiError(404, f"no silence {silence_id}")
        log.info("silence %s deleted by %s", silence_id, actor(caller))
        return 200, {"deleted": silence_id}

    return mutate(caller, idempotency_key, request, b"", act)
