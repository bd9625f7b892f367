"""Who is asking, and what a route needs to answer: FastAPI dependencies shared by routers.

`create_app` keeps everything per app in one `ApiContext` (`app.state.api`): the runtime,
the tokens, the rate limiter and the idempotency cache. Routers are module-level and reach
it through these dependencies, so two apps in one process (tests) never share a bucket.
Reads are open (`Reader`, rate limited per token or client address); changes need an admin
token (`Admin`), and a client address with too many failed authentications is refused for
a while (`FailedAuthLimiter`). The client address is the TCP peer's unless the daemon
trusts a proxy in front of it (`trusted_proxies`, engine/api/server.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import prometheus_client
from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.api.contract import Runtime
from engine.api.errors import ApiError
from engine.api.security import (
    ApiToken,
    FailedAuthLimiter,
    IdempotencyCache,
    RateLimiter,
    authenticate,
)

log = logging.getLogger("engine.api")


@dataclass(frozen=True)
class ApiContext:
    """One app's state: what it serves and the limits it keeps."""

    runtime: Runtime
    tokens: list[ApiToken]
    limiter: RateLimiter
    failed_auth: FailedAuthLimiter
    idempotency: IdempotencyCache
    clock: Callable[[], float]
    # The API's own metrics (requests by route and code), exposed beside the runtime's.
    registry: prometheus_client.CollectorRegistry


def api_context(request: Request) -> ApiContext:
    return request.app.state.api


def runtime(request: Request) -> Runtime:
    return api_context(request).runtime


@dataclass(frozen=True)
class Caller:
    token: ApiToken | None
    # Rate-limit and idempotency scope: a digest prefix of the token, or the client address.
    key: str
    presented: bool


bearer = HTTPBearer(
    auto_error=False,
    description="A token from the daemon's --api-token-file (admin for changes).",
)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def identify(request: Request, presented: str | None) -> Caller:
    api = api_context(request)
    token = authenticate(api.tokens, presented)
    if token is not None:
        key = "token:" + token.digest.hex()[:16]
    else:
        key = "client:" + client_address(request)
    wait = api.limiter.acquire(key)
    if wait > 0:
        raise ApiError(
            429,
            f"rate limit of {api.limiter.rate:g} requests/s (burst {api.limiter.burst}) "
            "exceeded; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return Caller(token, key, presented is not None)


async def reader(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    presented = credentials.strip() if scheme.lower() == "bearer" else None
    return identify(request, presented or None)


async def admin(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> Caller:
    api = api_context(request)
    client = client_address(request)
    # Checked before the token: while locked, a right guess must look like a wrong one.
    wait = api.failed_auth.locked(client)
    if wait > 0:
        log.warning(
            "refused %s %s from %s: too many failed authentications",
            request.method,
            request.url.path,
            client,
        )
        raise ApiError(
            429,
            f"too many failed authentications from this address ({api.failed_auth.failures} "
            f"in {api.failed_auth.window:g}s); retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    caller = identify(request, credentials.credentials if credentials else None)
    if caller.token is None:
        api.failed_auth.record(client)
        problem = "invalid bearer token" if caller.presented else "missing bearer token"
        log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, problem)
        challenge = 'Bearer realm="slo-engine"' + (
            ', error="invalid_token"' if caller.presented else ""
        )
        raise ApiError(401, problem, headers={"WWW-Authenticate": challenge})
    if caller.token.role != "admin":
        log.warning(
            "refused %s %s from %s: read-only token %s",
            request.method,
            request.url.path,
            client,
            caller.key,
        )
        raise ApiError(403, "this token is read-only; changes need an admin token")
    request.state.caller = caller
    return caller


Reader = Depends(reader)
Admin = Annotated[Caller, Depends(admin)]
RuntimeDep = Annotated[Runtime, Depends(runtime)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (e.g. a UUID): a retry with the same key and body "
        "gets the stored response instead of acting twice.",
    ),
]
