"""How every change is carried out: once per `Idempotency-Key`, with runtime errors mapped
to HTTP the same way for every incident change.

    return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)

`act` returns `(status, body)` or raises `ApiError`; either answer is stored under the
caller's key (unless it is a 5xx, which a retry may cure) and replayed with
`Idempotent-Replayed: true` when the same request comes again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from engine.api.deps import Caller, api_context
from engine.api.errors import ApiError, runtime_message
from engine.api.schemas import IDEMPOTENCY_KEY_RE
from engine.api.security import StoredResponse, request_fingerprint
from engine.incidents.incident import Incident
from engine.store.base import StoreError

log = logging.getLogger("engine.api")


def mutate(
    caller: Caller,
    key: str | None,
    request: Request,
    canonical_body: bytes,
    action: Callable[[], tuple[int, Any]],
) -> JSONResponse:
    def run() -> tuple[int, Any]:
        try:
            return action()
        except ApiError as exc:
            return exc.status, {"error": exc.message}

    if key is None:
        status, body = run()
        return JSONResponse(body, status)
    if not IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(422, "Idempotency-Key must be 1 to 255 visible ASCII characters")
    idempotency = api_context(request).idempotency
    scoped = f"{caller.key}\n{key}"
    fingerprint = request_fingerprint(request.method, request.url.path, canonical_body)
    # Held across the action: a concurrent retry waits and then replays this response.
    with idempotency.lock_for(scoped):
        stored = idempotency.get(scoped)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(
                    422,
                    "Idempotency-Key was already used for a different request; "
                    "use a new key for a new request",
                )
            return JSONResponse(stored.body, stored.status, headers={"Idempotent-Replayed": "true"})
        status, body = run()
        if status < 500:
            idempotency.put(scoped, StoredResponse(fingerprint, status, body))
        return JSONResponse(body, status)


def incident_change(change: Callable[[], Incident]) -> tuple[int, Any]:
    """Run one incident change: unknown id → 404, impossible transition → 409, a store that
    cannot be written → 503 (not stored as the idempotent answer)."""
    try:
        incident = change()
    except KeyError as exc:
        raise ApiError(404, runtime_message(exc)) from None
    except ValueError as exc:
        raise ApiError(409, runtime_message(exc)) from None
    except StoreError as exc:
        # Not stored as the idempotent answer (5xx): a retry may act once the store works.
        log.error("incident change not recorded: %s", exc)
        raise ApiError(503, "the incident store cannot be written right now; retry") from None
    return 200, incident.to_json()
