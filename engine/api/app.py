"""The daemon's HTTP face: JSON API, health and readiness probes, /metrics and the status page.

    app = create_app(runtime, load_tokens(Path("tokens")))
    uvicorn.run(app, host="127.0.0.1", port=8080)

The app is a thin shell over the `Runtime` (engine/daemon/runtime.py): it validates input,
checks who is asking, and turns the runtime's answers and errors into HTTP. Reads are open;
every mutation needs an admin bearer token, is rate limited per token (per client address
without one), and honours `Idempotency-Key` so a retried POST acts once. Errors are always
`{"error": "..."}` JSON; tokens and stack traces never reach a response or a log line.
"""

import base64
import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import prometheus_client
from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.api.middleware import STRICT_CSP, GuardMiddleware
from engine.api.schemas import (
    IDEMPOTENCY_KEY_RE,
    INCIDENT_ID_PATTERN,
    SILENCE_ID_PATTERN,
    AckRequest,
    CommentRequest,
    ResolveRequest,
    SilenceRequest,
)
from engine.api.security import (
    ApiToken,
    IdempotencyCache,
    RateLimiter,
    StoredResponse,
    authenticate,
    request_fingerprint,
)
from engine.api.status_page import build_view, render_status_page
from engine.evaluation.result import SLOEvaluation
from engine.incidents.incident import Incident, IncidentStatus
from engine.spec.durations import Duration
from engine.spec.models import NAME_RE
from engine.store.base import StoreError

log = logging.getLogger("engine.api")

API_VERSION = "1"
# A silence longer than this is a forgotten silence: use a spec change instead.
MAX_SILENCE_SECONDS = 90 * 86400.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KNOWN_METHODS = MUTATING_METHODS | {"GET", "HEAD", "OPTIONS"}
_NAME_PATTERN = NAME_RE.pattern
# The classic text format every Prometheus 2.x understands; our metric names need nothing
# newer, so the body is the same as prometheus_client's 1.0.0 flavour.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Runtime(Protocol):
    """What the API needs from the daemon (the contract in engine/daemon/runtime.py)."""

    clock: Callable[[], float]
    metrics_registry: prometheus_client.CollectorRegistry

    def slo_results(self) -> list[SLOEvaluation]: ...
    def slo_result(self, slo_id: str) -> SLOEvaluation | None: ...
    def list_incidents(self, status: str | None, severity: str | None) -> list[Incident]: ...
    def get_incident(self, incident_id: str) -> Incident | None: ...
    def acknowledge(self, incident_id: str, by: str) -> Incident: ...
    def resolve(self, incident_id: str, by: str, note: str | None) -> Incident: ...
    def comment(self, incident_id: str, by: str, text: str) -> Incident: ...
    def add_silence(
        self,
        matchers: list[dict],
        ends_at: float,
        created_by: str,
        comment: str,
        starts_at: float | None,
    ) -> dict: ...
    def delete_silence(self, silence_id: str) -> bool: ...
    def list_silences(self) -> list[dict]: ...
    def readiness(self) -> tuple[bool, list[str]]: ...
    def spec_status(self) -> dict: ...
    def customer_notice(self, incident: Incident) -> str: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class ErrorBody(BaseModel):
    error: str


@dataclass(frozen=True)
class Caller:
    token: ApiToken | None
    # Rate-limit and idempotency scope: a digest prefix of the token, or the client address.
    key: str
    presented: bool


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_MUTATION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _err("No or an unknown bearer token (`WWW-Authenticate: Bearer`)."),
    403: _err("A read-only token."),
    413: _err("Request body too large."),
    422: _err("Invalid body, parameters, or an Idempotency-Key reused for another request."),
    429: _err("Rate limited; retry after `Retry-After` seconds."),
}


def _message(exc: BaseException) -> str:
    # str(KeyError("x")) is "'x'": use the runtime's message as written.
    return str(exc.args[0]) if exc.args else exc.__class__.__name__


def _docs_csp(html: str) -> str:
    """Swagger UI needs its CDN and one inline script: allow exactly that script by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    ]
    return (
        "default-src 'none'; "
        f"script-src https://cdn.jsdelivr.net {' '.join(hashes)}; "
        "style-src https://cdn.jsdelivr.net 'unsafe-inline'; "
        "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )


def create_app(
    runtime: Runtime,
    tokens: list[ApiToken],
    *,
    rate_limit_per_s: float = 5,
    burst: int = 20,
    idempotency_ttl_s: float = 86400,
    clock: Callable[[], float] = time.time,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    limiter = RateLimiter(rate_limit_per_s, burst, clock)
    idempotency = IdempotencyCache(idempotency_ttl_s, clock)
    api_registry = prometheus_client.CollectorRegistry()
    requests_total = prometheus_client.Counter(
        "slo_engine_api_requests",
        "HTTP requests answered by the slo-engine API, by route template and status code.",
        ["method", "route", "code"],
        registry=api_registry,
    )

    app = FastAPI(
        title="slo-engine API",
        version=API_VERSION,
        description=(
            "SLO status, incidents and silences of a running slo-engine. Reads are open; "
            "changes need `Authorization: Bearer <admin token>` and honour `Idempotency-Key`."
        ),
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    docs_html = get_swagger_ui_html(
        openapi_url="/openapi.json", title="slo-engine API"
    ).body.decode()
    docs_csp = _docs_csp(docs_html)

    def csp_for(path: str) -> str:
        return docs_csp if path == "/docs" else STRICT_CSP

    def count(scope: dict[str, Any], status: int) -> None:
        # Labels from a closed set only: route templates, known methods (clients choose paths
        # and methods, and must not be able to grow the metric without bound).
        route = getattr(scope.get("route"), "path", None)
        if route is None:
            route = "/static" if scope["path"].startswith("/static/") else "unmatched"
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        requests_total.labels(method, route, str(status)).inc()

    app.add_middleware(
        GuardMiddleware, max_body_bytes=max_body_bytes, csp_for=csp_for, on_response=count
    )
    static_dir = Path(str(files("engine.api") / "static"))
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    # ------------------------------------------------------------------ errors as JSON

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses a JSON body before it runs dependencies: a mutation whose body is
        # not even JSON gets here without its token checked. Check it now, so strangers
        # learn nothing about validation and still count against their rate limit.
        if request.method in MUTATING_METHODS and not hasattr(request.state, "caller"):
            try:
                await admin(request, await bearer(request))
            except ApiError as refused:
                return JSONResponse(
                    {"error": refused.message}, refused.status, headers=refused.headers
                )
        # loc and msg only: pydantic's `input` would echo whatever the client sent.
        reasons = [
            {
                "where": ".".join(str(part) for part in e.get("loc", ())),
                "message": e.get("msg", "invalid"),
            }
            for e in exc.errors()
        ]
        first = reasons[0] if reasons else {"where": "", "message": "invalid request"}
        return JSONResponse(
            {
                "error": f"invalid request: {first['where']}: {first['message']}",
                "reasons": reasons,
            },
            422,
        )

    # ------------------------------------------------------------------ who is asking

    bearer = HTTPBearer(
        auto_error=False,
        description="A token from the daemon's --api-token-file (admin for changes).",
    )

    def identify(request: Request, presented: str | None) -> Caller:
        token = authenticate(tokens, presented)
        if token is not None:
            key = "token:" + token.digest.hex()[:16]
        else:
            key = "client:" + (request.client.host if request.client else "unknown")
        wait = limiter.acquire(key)
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of {rate_limit_per_s:g} requests/s (burst {burst}) exceeded; "
                "retry later",
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
        caller = identify(request, credentials.credentials if credentials else None)
        client = request.client.host if request.client else "unknown"
        if caller.token is None:
            problem = "invalid bearer token" if caller.presented else "missing bearer token"
            log.warning(
                "refused %s %s from %s: %s", request.method, request.url.path, client, problem
            )
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

    Admin = Annotated[Caller, Depends(admin)]
    IdempotencyKey = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Any unique string (e.g. a UUID): a retry with the same key and body "
            "gets the stored response instead of acting twice.",
        ),
    ]
    IncidentId = Annotated[
        str, PathParam(pattern=INCIDENT_ID_PATTERN, description="e.g. INC-2024-0001")
    ]

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
                return JSONResponse(
                    stored.body, stored.status, headers={"Idempotent-Replayed": "true"}
                )
            status, body = run()
            if status < 500:
                idempotency.put(scoped, StoredResponse(fingerprint, status, body))
            return JSONResponse(body, status)

    def incident_change(change: Callable[[], Incident]) -> tuple[int, Any]:
        try:
            incident = change()
        except KeyError as exc:
            raise ApiError(404, _message(exc)) from None
        except ValueError as exc:
            raise ApiError(409, _message(exc)) from None
        except StoreError as exc:
            # Not stored as the idempotent answer (5xx): a retry may act once the store works.
            log.error("incident change not recorded: %s", exc)
            raise ApiError(503, "the incident store cannot be written right now; retry") from None
        return 200, incident.to_json()

    # ------------------------------------------------------------------ reads

    Reader = Depends(reader)

    @app.get("/api/v1/slos", tags=["slos"], dependencies=[Reader])
    def list_slos() -> JSONResponse:
        """Every SLO's latest evaluation: the `slo-engine evaluate --format json` contract."""
        results = runtime.slo_results()
        evaluated_at = max((r.evaluated_at for r in results), default=None)
        return JSONResponse({"evaluated_at": evaluated_at, "slos": [r.to_json() for r in results]})

    @app.get(
        "/api/v1/slos/{service}/{slo}",
        tags=["slos"],
        dependencies=[Reader],
        responses={404: _err("No such SLO (or not evaluated yet).")},
    )
    def get_slo(
        service: Annotated[str, PathParam(pattern=_NAME_PATTERN)],
        slo: Annotated[str, PathParam(pattern=_NAME_PATTERN)],
    ) -> JSONResponse:
        """One SLO's latest evaluation."""
        result = runtime.slo_result(f"{service}/{slo}")
        if result is None:
            raise ApiError(
                404, f"no evaluated SLO {service}/{slo}; GET /api/v1/slos lists the SLOs"
            )
        return JSONResponse(result.to_json())

    @app.get("/api/v1/specs", tags=["slos"], dependencies=[Reader])
    def spec_status() -> JSONResponse:
        """When the specs were last loaded, how many, and the last reload error if any."""
        return JSONResponse(runtime.spec_status())

    @app.get("/api/v1/incidents", tags=["incidents"], dependencies=[Reader])
    def list_incidents(
        status: Annotated[
            Literal["open", "investigating", "mitigating", "resolved"] | None,
            Query(description="open = investigating or mitigating"),
        ] = None,
        severity: Literal["SEV1", "SEV2", "SEV3", "SEV4"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JSONResponse:
        """Incidents, newest first, without timelines."""
        if status == "open":
            found = [
                i
                for s in (IncidentStatus.investigating, IncidentStatus.mitigating)
                for i in runtime.list_incidents(s.value, severity)
            ]
        else:
            found = runtime.list_incidents(status, severity)
        found.sort(key=lambda i: (i.opened_at, i.id), reverse=True)
        return JSONResponse(
            {"incidents": [i.to_json(timeline=False) for i in found[:limit]], "total": len(found)}
        )

    @app.get(
        "/api/v1/incidents/{incident_id}",
        tags=["incidents"],
        dependencies=[Reader],
        responses={404: _err("No such incident.")},
    )
    def get_incident(incident_id: IncidentId) -> JSONResponse:
        """One incident with its full timeline."""
        incident = runtime.get_incident(incident_id)
        if incident is None:
            raise ApiError(404, f"no incident {incident_id}")
        return JSONResponse(incident.to_json())

    @app.get("/api/v1/silences", tags=["silences"], dependencies=[Reader])
    def list_silences() -> JSONResponse:
        """Silences that have not expired yet."""
        return JSONResponse({"silences": runtime.list_silences()})

    # ------------------------------------------------------------------ changes

    incident_errors = {
        **_MUTATION_ERRORS,
        404: _err("No such incident."),
        409: _err("Not possible in the incident's state (e.g. already resolved)."),
    }

    @app.post("/api/v1/incidents/{incident_id}/ack", tags=["incidents"], responses=incident_errors)
    def acknowledge(
        incident_id: IncidentId,
        body: AckRequest,
        request: Request,
        caller: Admin,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Acknowledge: stops escalation and repeat notifications. Returns the incident."""

        def act() -> tuple[int, Any]:
            result = incident_change(lambda: runtime.acknowledge(incident_id, body.by))
            log.info("%s acknowledged by %s (%s)", incident_id, body.by, caller.key)
            return result

        return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)

    @app.post(
        "/api/v1/incidents/{incident_id}/resolve", tags=["incidents"], responses=incident_errors
    )
    def resolve(
        incident_id: IncidentId,
        body: ResolveRequest,
        request: Request,
        caller: Admin,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Resolve by hand. Alerts still firing must clear before they can page again."""

        def act() -> tuple[int, Any]:
            result = incident_change(lambda: runtime.resolve(incident_id, body.by, body.note))
            log.info("%s resolved by %s (%s)", incident_id, body.by, caller.key)
            return result

        return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)

    @app.post(
        "/api/v1/incidents/{incident_id}/comment", tags=["incidents"], responses=incident_errors
    )
    def comment(
        incident_id: IncidentId,
        body: CommentRequest,
        request: Request,
        caller: Admin,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Add a timeline comment. Comments show on the status page as updates."""

        def act() -> tuple[int, Any]:
            result = incident_change(lambda: runtime.comment(incident_id, body.by, body.text))
            log.info("%s commented by %s (%s)", incident_id, body.by, caller.key)
            return result

        return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)

    @app.post(
        "/api/v1/silences",
        tags=["silences"],
        status_code=201,
        responses={**_MUTATION_ERRORS, 201: {"description": "The silence, with its id."}},
    )
    def add_silence(
        body: SilenceRequest,
        request: Request,
        caller: Admin,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Silence alerts matching every matcher until `ends_at` (or for `duration`)."""

        def act() -> tuple[int, Any]:
            now = clock()
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
            try:
                silence = runtime.add_silence(
                    [m.model_dump() for m in body.matchers],
                    ends,
                    body.created_by,
                    body.comment,
                    None if body.starts_at is None else starts,
                )
            except ValueError as exc:
                raise ApiError(422, _message(exc)) from None
            except StoreError as exc:
                log.error("silence not recorded: %s", exc)
                raise ApiError(
                    503, "the incident store cannot be written right now; retry"
                ) from None
            log.info(
                "silence %s added by %s until %s (%s)",
                silence.get("id"),
                body.created_by,
                ends,
                caller.key,
            )
            return 201, silence

        return mutate(caller, idempotency_key, request, body.model_dump_json().encode(), act)

    @app.delete(
        "/api/v1/silences/{silence_id}",
        tags=["silences"],
        responses={**_MUTATION_ERRORS, 404: _err("No such silence.")},
    )
    def delete_silence(
        silence_id: Annotated[str, PathParam(pattern=SILENCE_ID_PATTERN)],
        request: Request,
        caller: Admin,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Expire a silence now."""

        def act() -> tuple[int, Any]:
            if not runtime.delete_silence(silence_id):
                raise ApiError(404, f"no silence {silence_id}")
            log.info("silence %s deleted (%s)", silence_id, caller.key)
            return 200, {"deleted": silence_id}

        return mutate(caller, idempotency_key, request, b"", act)

    # ------------------------------------------------------------------ probes and metrics

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """The process is alive and serving HTTP."""
        return JSONResponse({"status": "alive"})

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Degraded."}})
    def readyz() -> JSONResponse:
        """Source reachable, store writable, last cycle recent, specs valid — or why not."""
        try:
            ready, reasons = runtime.readiness()
        except Exception:
            log.exception("readiness check failed")
            ready, reasons = False, ["readiness check failed; see the slo-engine log"]
        return JSONResponse({"ready": ready, "reasons": list(reasons)}, 200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus exposition of the engine's own metrics."""
        text = prometheus_client.generate_latest(runtime.metrics_registry)
        text += prometheus_client.generate_latest(api_registry)
        return PlainTextResponse(text, media_type=EXPOSITION_CONTENT_TYPE)

    # ------------------------------------------------------------------ pages

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_html)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/status")

    def notice(incident: Incident) -> str:
        # The status page must not fail during an incident because a template did.
        try:
            return runtime.customer_notice(incident)
        except Exception:
            log.exception("customer notice for %s failed", incident.id)
            return (
                incident.customer_notice
                or f"We are investigating an issue with {incident.service}."
            )

    @app.get("/status", tags=["status page"], response_class=HTMLResponse)
    def status_page() -> HTMLResponse:
        """Server-rendered status page (no JavaScript)."""
        open_incidents = []
        for state in (IncidentStatus.investigating, IncidentStatus.mitigating):
            for listed in runtime.list_incidents(state.value, None):
                # Lists come without timelines; the page shows each incident's updates.
                open_incidents.append(runtime.get_incident(listed.id) or listed)
        try:
            ready = runtime.readiness()[0]
        except Exception:
            ready = False
        view = build_view(runtime.slo_results(), open_incidents, notice, clock(), ready)
        return HTMLResponse(render_status_page(view), headers={"Cache-Control": "no-store"})

    return app
