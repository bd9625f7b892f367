"""The outermost layer of the HTTP app: security headers on every response (HSTS too when
served over HTTPS), a request id on every request and response (`X-Request-Id`: the
client's, when it is a plain token, else a new one), a request body size limit, a
last-resort error handler that answers `{"error": ...}` without a trace, and the
request-duration histogram.

Written as plain ASGI (not Starlette's BaseHTTPMiddleware) so it also wraps the responses of
exception handlers and static files, and so an oversized body is refused before any of it
reaches JSON parsing.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

log = logging.getLogger("engine.api")

# No scripts at all, styles only from /static, nothing may frame us but ourselves.
STRICT_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "SAMEORIGIN"),
    ("cross-origin-opener-policy", "same-origin"),
)
KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
# A client's request id is kept only when it cannot smuggle anything into logs or headers.
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id(scope: Scope) -> str:
    """The request's id: the client's `X-Request-Id` when it is a plain token, else new."""
    given = dict(scope.get("headers", [])).get(b"x-request-id", b"")
    return given.decode() if _REQUEST_ID.match(given) else uuid.uuid4().hex


# API answers take milliseconds; the status page and /metrics of a large fleet longer.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def route_label(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/incidents/{incident_id}`), never the raw
    path: clients choose paths and must not be able to grow a metric without bound."""
    route = getattr(scope.get("route"), "path", None)
    if route is not None:
        return str(route)
    return "/static" if scope["path"].startswith("/static/") else "unmatched"


def request_duration(registry: CollectorRegistry) -> Callable[[Scope, int, float], None]:
    """`slo_engine_http_request_duration_seconds{method, route, code}` on `registry`; the
    returned function observes one answered request (GuardMiddleware's `on_complete`)."""
    histogram = Histogram(
        "slo_engine_http_request_duration_seconds",
        "Time from a request's arrival to the end of its response, by route template.",
        ["method", "route", "code"],
        buckets=HTTP_BUCKETS,
        registry=registry,
    )

    def observe(scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        histogram.labels(method, route_label(scope), str(status)).observe(seconds)

    return observe


def _json(status: int, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, headers, body


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        csp_for: Callable[[str], str],
        on_response: Callable[[Scope, int], None] | None = None,
        on_complete: Callable[[Scope, int, float], None] | None = None,
        hsts: str | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.csp_for = csp_for
        self.on_response = on_response
        self.on_complete = on_complete
        # Strict-Transport-Security value, sent only on HTTPS (RFC 6797 §7.2: not over HTTP).
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.on_complete is None:
            await self._guarded(scope, receive, send)
            return
        arrived = time.perf_counter()
        status = 500

        async def timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, timed)
        finally:
            self.on_complete(scope, status, time.perf_counter() - arrived)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
        extra.append((b"content-security-policy", self.csp_for(scope["path"]).encode()))
        if self.hsts and scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self.hsts.encode()))
        scope.setdefault("state", {})["request_id"] = identifier = request_id(scope)
        extra.append((b"x-request-id", identifier.encode()))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.on_response is not None:
                    self.on_response(scope, message["status"])
                present = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        async def reply(status: int, message: str) -> None:
            code, headers, body = _json(status, message)
            await send_with_headers(
                {"type": "http.response.start", "status": code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})

        downstream = receive
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            declared = dict(scope.get("headers", [])).get(b"content-length")
            if declared is not None:
                try:
                    too_big = int(declared) > self.max_body_bytes
                except ValueError:
                    await reply(400, "invalid Content-Length header")
                    return
                if too_big:
                    await reply(413, f"request body larger than {self.max_body_bytes} bytes")
                    return
            # Chunked bodies have no Content-Length: read (at most the limit) before parsing.
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    await reply(413, f"request body larger than {self.max_body_bytes} bytes")
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            downstream = _replay(b"".join(chunks), receive)

        try:
            await self.app(scope, downstream, send_with_headers)
        except Exception:
            # Logged here with its trace for operators; the client learns nothing internal.
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not started:
                await reply(500, "internal error — see the slo-engine log")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the already-read body once, then the real channel (for
    the disconnect message)."""
    done = False

    async def replayed() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
