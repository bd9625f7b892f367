"""The audit log of the API: one entry per change request — who, with which roles, did what
to which target, from where, under which request id, and how it ended.

    app.add_middleware(AuditMiddleware, auditor=Auditor(store.audit_log(), retention, clock))

Written as an ASGI middleware so that *every* change is recorded whatever answered it: the
route (200, 404, 409), an idempotent replay (`detail: replayed`), a refusal for a missing
role (403) or a body that does not validate (422). Requests for no route are not changes;
rate-limited requests without an identity are not recorded either, so a flood cannot turn
into a flood of writes. Each entry goes to the `engine.audit` logger and to the store
(engine/store/audit.py), which keeps it for `retention` seconds; a store that cannot be
written is logged and never fails the request, which has already been answered.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from anyio import to_thread

from engine.api.identity import Identity
from engine.api.middleware import ASGIApp, Message, Receive, Scope, Send
from engine.store.audit import AuditEntry, AuditLog

log = logging.getLogger("engine.audit")

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Enough of a response body to find the id of what a change created.
_BODY_CAP = 64 * 1024
PRUNE_EVERY_S = 3600.0


class Auditor:
    """Where entries go: the log, and the store's audit log when there is one."""

    def __init__(
        self, store: AuditLog | None, retention_s: float, clock: Callable[[], float]
    ) -> None:
        self.store, self.retention_s, self.clock = store, retention_s, clock
        self._pruned_at: float | None = None
        self._lock = threading.Lock()

    def write(self, entry: AuditEntry) -> None:
        log.info(
            "audit: actor=%s roles=%s action=%r target=%s result=%d%s request_id=%s source=%s",
            entry.actor,
            entry.roles,
            entry.action,
            entry.target or "-",
            entry.result,
            f" ({entry.detail})" if entry.detail else "",
            entry.request_id,
            entry.source,
        )
        if self.store is None:
            return
        try:
            self.store.record(entry)
            self._prune(entry.at)
        except Exception as exc:  # sqlite3/psycopg errors: the answer has gone out already
            log.error("audit entry not stored (%s): %s", type(exc).__name__, entry.request_id)

    def _prune(self, now: float) -> None:
        with self._lock:
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
                return
            self._pruned_at = now
        assert self.store is not None
        removed = self.store.prune(now - self.retention_s)
        if removed:
            log.info("audit log: %d entries older than the retention removed", removed)


class AuditMiddleware:
    def __init__(self, app: ASGIApp, *, auditor: Auditor) -> None:
        self.app, self.auditor = app, auditor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        answer: dict[str, Any] = {"status": 500, "body": [], "replayed": False}

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                answer["replayed"] = headers.get(b"idempotent-replayed") == b"true"
            elif (
                message["type"] == "http.response.body"
                and sum(map(len, answer["body"])) < _BODY_CAP
            ):
                answer["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            entry = self._entry(scope, answer)
            if entry is not None:
                await to_thread.run_sync(self.auditor.write, entry)

    def _entry(self, scope: Scope, answer: dict[str, Any]) -> AuditEntry | None:
        route = scope.get("route")
        if route is None:
            return None
        state = scope.get("state") or {}
        identity: Identity | None = state.get("identity")
        if identity is None and answer["status"] == 429:
            return None
        client = scope.get("client")
        return AuditEntry(
            at=self.auditor.clock(),
            actor=identity.name if identity is not None else "anonymous",
            roles=identity.roles_text() if identity is not None else "none",
            action=f"{scope['method']} {getattr(route, 'path', scope['path'])}",
            target=_target(scope, answer),
            request_id=str(state.get("request_id", "")),
            source=str(client[0]) if client else "unknown",
            result=int(answer["status"]),
            detail="replayed" if answer["replayed"] else "",
        )


def _target(scope: Scope, answer: dict[str, Any]) -> str:
    """The path's ids (`INC-2024-0001`, `INC-2024-0001/AI-1`), else the id of what the
    change created (a declared incident, a silence)."""
    params = scope.get("path_params") or {}
    if params:
        return "/".join(str(v) for v in params.values())
    if 200 <= answer["status"] < 300:
        try:
            created = json.loads(b"".join(answer["body"]))
        except ValueError:
            return ""
        if isinstance(created, dict) and isinstance(created.get("id"), str):
            return created["id"]
    return ""
