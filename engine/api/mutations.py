"""How every change is carried out: once per `Idempotency-Key`, with runtime errors mapped
to HTTP the same way for every incident change.

    return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)

`act` returns `(status, body)` or raises `ApiError`; either answer is stored under the
caller's key (unless it is a 5xx, which a retry may cure) and replayed with
`Idempotent-Replayed: true` when the same request comes again.

Where the answers are kept: in the incident store when the runtime offers one
(`runtime.idempotency_keys`, engine/store/idempotency.py) — so a retry that a load balancer
sends to another replica, or to the same daemon after a restart, is answered from the
same record — else in the app's memory (`IdempotencyCache`). Either way a per-key lock
serialises concurrent retries within this process; across replicas the store's
reservation does: a retry arriving while the first request is still being answered
elsewhere waits for its answer (up to `IN_PROGRESS_WAIT_S`, then 409 "retry later").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from engine.api.deps import ApiContext, Caller, api_context
from engine.api.errors import ApiError, runtime_message
from engine.api.schemas import IDEMPOTENCY_KEY_RE
from engine.api.security import StoredResponse, request_fingerprint
from engine.incidents.incident import Incident
from engine.store.base import StoreError
from engine.store.idempotency import IdempotencyKeys

log = logging.getLogger("engine.api")

# A reservation's hold while its request is answered: a replica that died mid-request frees
# the key after this long.
IN_PROGRESS_HOLD_S = 60.0
# How long a retry waits for the same key's first request to be answered on another replica.
IN_PROGRESS_WAIT_S = 10.0
_POLL_S = 0.05
_REUSED = (
    "Idempotency-Key was already used for a different request; use a new key for a new request"
)
_REPLAYED = {"Idempotent-Replayed": "true"}


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
    api = api_context(request)
    scoped = f"{caller.key}\n{key}"
    fingerprint = request_fingerprint(request.method, request.url.path, canonical_body)
    shared: IdempotencyKeys | None = getattr(api.runtime, "idempotency_keys", None)
    # Held across the action: a concurrent retry waits and then replays this response.
    with api.idempotency.lock_for(scoped):
        if shared is not None:
            route = f"{request.method} {request.url.path}"
            return _once_in_store(shared, api, (caller.key, key), route, fingerprint, run)
        stored = api.idempotency.get(scoped)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(422, _REUSED)
            return JSONResponse(stored.body, stored.status, headers=_REPLAYED)
        status, body = run()
        if status < 500:
            api.idempotency.put(scoped, StoredResponse(fingerprint, status, body))
        return JSONResponse(body, status)


def _once_in_store(
    keys: IdempotencyKeys,
    api: ApiContext,
    scope: tuple[str, str],
    route: str,
    fingerprint: str,
    run: Callable[[], tuple[int, Any]],
) -> JSONResponse:
    """Reserve the key in the store, act, record the answer — or replay what is stored."""
    caller, key = scope
    deadline = time.monotonic() + IN_PROGRESS_WAIT_S
    while True:
        try:
            stored = keys.reserve(caller, key, route, fingerprint, api.clock(), IN_PROGRESS_HOLD_S)
        except Exception as exc:  # psycopg/sqlite3 errors: the change must not run blind
            log.error("idempotency keys unreadable: %s", type(exc).__name__)
            raise ApiError(503, "the incident store cannot be read right now; retry") from None
        if stored is None:
            break
        if stored.fingerprint != fingerprint:
            raise ApiError(422, _REUSED)
        if stored.status is not None:
            return JSONResponse(stored.body, stored.status, headers=_REPLAYED)
        if time.monotonic() >= deadline:
            raise ApiError(
                409, "a request with this Idempotency-Key is still being answered; retry later"
            )
        time.sleep(_POLL_S)
    try:
        status, body = run()
    except BaseException:
        with contextlib.suppress(Exception):
            keys.release(caller, key)
        raise
    try:
        if status < 500:
            keys.complete(caller, key, status, body, api.clock(), api.idempotency.ttl)
        else:  # not the answer to keep: a retry may act once the cause is gone
            keys.release(caller, key)
    except Exception as exc:
        log.error("could not record the answer of an idempotent request: %s", exc)
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
