"""Who is asking, and what a route needs to answer: FastAPI dependencies shared by routers.

`create_app` keeps everything per app in one `ApiContext` (`app.state.api`): the runtime,
the tokens and the OIDC verifier, the rate limiter and the idempotency cache. Routers are
module-level and reach it through these dependencies, so two apps in one process (tests)
never share a bucket.

Every route needs a role (engine/api/identity.py): reads `read` (unless the daemon allows
anonymous reads), incident response `responder`, silences and the audit log `admin`. A
caller is a static token (engine/api/security.py) or a verified OIDC JWT
(engine/api/oidc.py); either way an `Identity` whose name is the actor of what it changes.
Requests are rate limited per identity (per client address without one), and a client
address with too many failed authentications is refused for a while (`FailedAuthLimiter`).
The client address is the TCP peer's unless the daemon trusts a proxy in front of it
(`trusted_proxies`, engine/api/server.py).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import prometheus_client
from anyio import to_thread
from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.api.audit import Auditor
from engine.api.contract import Runtime
from engine.api.errors import ApiError
from engine.api.identity import Identity
from engine.api.oidc import InvalidToken, JwtVerifier, looks_like_jwt
from engine.api.security import (
    ApiToken,
    FailedAuthLimiter,
    IdempotencyCache,
    RateLimiter,
    authenticate,
)

log = logging.getLogger("engine.api")


@dataclass(frozen=True)
class Access:
    """What anonymous callers may see (the daemon config's keys of the same names)."""

    anonymous_reads: bool = False
    public_status_page: bool = False
    metrics_auth: bool = False


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
    verifier: JwtVerifier | None = None
    access: Access = field(default_factory=Access)
    auditor: Auditor | None = None


def api_context(request: Request) -> ApiContext:
    return request.app.state.api


def runtime(request: Request) -> Runtime:
    return api_context(request).runtime


@dataclass(frozen=True)
class Caller:
    token: ApiToken | None
    # Rate-limit and idempotency scope: a digest prefix of the token or of the OIDC
    # subject, or the client address.
    key: str
    presented: bool
    identity: Identity | None = None


bearer = HTTPBearer(
    auto_error=False,
    description="A token from the daemon's --api-token-file, or an OIDC access token (JWT).",
)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def presented_token(request: Request) -> str | None:
    """The bearer credentials of the request, if any (other schemes count as none)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


async def identify(request: Request, presented: str | None) -> Caller:
    """Who presented what (an unknown or invalid token: no identity), rate limited."""
    api = api_context(request)
    token = authenticate(api.tokens, presented)
    identity = token.identity() if token is not None else None
    if identity is None and presented and api.verifier is not None and looks_like_jwt(presented):
        try:
            # A thread: verifying may fetch the provider's keys (bounded by its timeout).
            identity = await to_thread.run_sync(api.verifier.verify, presented)
        except InvalidToken as exc:
            log.warning("refused an OIDC token from %s: %s", client_address(request), exc)
    if token is not None:
        key = token.label
    elif identity is not None:
        key = "oidc:" + hashlib.sha256(identity.name.encode()).hexdigest()[:16]
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
    return Caller(token, key, presented is not None, identity)


def _refuse_locked(request: Request, api: ApiContext, client: str) -> None:
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


async def authorize(request: Request, role: str | None, *, change: bool) -> Caller:
    """The caller if it has `role` (None: anyone, an anonymous caller too); else 401 (no
    or an invalid token, `WWW-Authenticate: Bearer`) or 403 (the role is missing). A
    missing token counts as a failed authentication for changes, not for reads."""
    api = api_context(request)
    client = client_address(request)
    presented = presented_token(request)
    if presented or role is not None:
        _refuse_locked(request, api, client)
    caller = await identify(request, presented)
    if caller.identity is None:
        if not presented and role is None:
            return caller
        if presented or change:
            api.failed_auth.record(client)
        problem = "invalid bearer token" if presented else "missing bearer token"
        log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, problem)
        challenge = 'Bearer realm="slo-engine"' + (', error="invalid_token"' if presented else "")
        raise ApiError(401, problem, headers={"WWW-Authenticate": challenge})
    # Kept for the audit log, refused or not.
    request.state.identity = caller.identity
    if role is not None and not caller.identity.has(role):
        log.warning(
            "refused %s %s from %s: %s (roles %s) lacks the %s role",
            request.method,
            request.url.path,
            client,
            caller.identity.name,
            caller.identity.roles_text(),
            role,
        )
        raise ApiError(
            403,
            f"this needs the {role} role; this identity has: {caller.identity.roles_text()}",
            headers={"WWW-Authenticate": 'Bearer realm="slo-engine", error="insufficient_scope"'},
        )
    request.state.caller = caller
    return caller


async def reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Caller:
    anonymous = api_context(request).access.anonymous_reads
    return await authorize(request, None if anonymous else "read", change=False)


async def responder(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Caller:
    return await authorize(request, "responder", change=True)


async def admin(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Caller:
    return await authorize(request, "admin", change=True)


# The role each change dependency stands for (the app checks it for bodies that fail to
# parse, before FastAPI would run the dependency).
CHANGE_ROLES: dict[Callable[..., Any], str] = {responder: "responder", admin: "admin"}


def change_role(route: Any) -> str | None:
    """The role a route's change dependency requires (None: not a change)."""
    dependant = getattr(route, "dependant", None)
    for dependency in getattr(dependant, "dependencies", ()):
        if dependency.call in CHANGE_ROLES:
            return CHANGE_ROLES[dependency.call]
    return None


Reader = Depends(reader)
ReaderCaller = Annotated[Caller, Depends(reader)]
Responder = Annotated[Caller, Depends(responder)]
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
