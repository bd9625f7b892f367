"""The audit log in the store: every change made through the HTTP API — who (the
authenticated actor and roles), what (action and target), from where (client address),
which request (request id), and how it ended (the HTTP status).

Kept in the incident store next to what the changes changed, so it survives restarts and
every replica of one PostgreSQL database writes to the same log. Rows are only ever
inserted, and deleted by `prune` once older than the configured retention.

One SQL text for SQLite and PostgreSQL (placeholders translated), except the table's id:
SQLite's INTEGER PRIMARY KEY and PostgreSQL's identity column both number rows in the
order they were written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from engine.store.sql_table import SQLTable

_COLUMNS = """
    at double precision NOT NULL,
    actor text NOT NULL,
    roles text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    request_id text NOT NULL,
    source text NOT NULL,
    result integer NOT NULL,
    detail text NOT NULL DEFAULT ''
)"""
CREATE_TABLE_SQLITE = "CREATE TABLE audit_log (\n    id INTEGER PRIMARY KEY," + _COLUMNS
CREATE_TABLE_POSTGRESQL = (
    "CREATE TABLE audit_log (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY," + _COLUMNS
)
CREATE_INDEX = "CREATE INDEX audit_log_at ON audit_log (at)"
_FIELDS = ("at", "actor", "roles", "action", "target", "request_id", "source", "result", "detail")


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str  # the authenticated identity, or "anonymous"
    roles: str  # comma-separated, as they were when the request was answered
    action: str  # e.g. "POST /api/v1/incidents/{incident_id}/ack"
    target: str  # e.g. "INC-2024-0001", a silence id, or ""
    request_id: str
    source: str  # client address
    result: int  # HTTP status
    detail: str = ""  # e.g. "replayed" for an idempotent replay

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog(Protocol):
    def record(self, entry: AuditEntry) -> None: ...

    def entries(
        self, *, since: float | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Newest first."""
        ...

    def prune(self, before: float) -> int:
        """Delete entries older than `before`; how many."""
        ...


class SQLAuditLog(SQLTable):
    """`AuditLog` over a store's transactions (see engine/store/idempotency.py)."""

    def record(self, entry: AuditEntry) -> None:
        marks = ", ".join(["%s"] * len(_FIELDS))
        with self._transaction() as db:
            db.execute(
                self._sql(f"INSERT INTO audit_log ({', '.join(_FIELDS)}) VALUES ({marks})"),
                tuple(getattr(entry, name) for name in _FIELDS),
            )

    def entries(
        self, *, since: float | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("at >= %s")
            params.append(since)
        if actor is not None:
            where.append("actor = %s")
            params.append(actor)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {', '.join(_FIELDS)} FROM audit_log{clause} ORDER BY id DESC LIMIT %s"
        with self._transaction() as db:
            found = db.execute(self._sql(sql), (*params, int(limit))).fetchall()
        return [_entry(row) for row in found]

    def prune(self, before: float) -> int:
        with self._transaction() as db:
            return int(
                db.execute(self._sql("DELETE FROM audit_log WHERE at < %s"), (before,)).rowcount
            )


def _entry(row: Any) -> AuditEntry:
    values: Sequence[Any] = [row[name] for name in _FIELDS]
    at, actor, roles, action, target, request_id, source, result, detail = values
    return AuditEntry(
        float(at), actor, roles, action, target, request_id, source, int(result), detail
    )
