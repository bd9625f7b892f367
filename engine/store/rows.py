"""How incidents, timeline entries, silences, outbox items and the engine state become table
rows and come back: one copy for every SQL backend (SQLite, PostgreSQL).

Only the values live here; the SQL stays with each backend because placeholders, upserts
and locking differ. Column order of each `*_row` function is the order of the backend's
INSERT column list. JSON columns are stored as text (sorted keys, no spaces) so what comes
out is exactly what went in, whatever the backend: Python floats, NaN included.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from engine.incidents.incident import (
    Incident,
    IncidentStatus,
    Notification,
    Severity,
    TimelineEntry,
)
from engine.incidents.silences import Silence
from engine.incidents.state import EngineState, TimelineRecord
from engine.store.base import OutboxItem

OUTBOX_STATUSES = ("pending", "sent", "dead")


class Row(Protocol):
    """A result row addressable by column name (`sqlite3.Row`, a psycopg dict row)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Any: ...


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------- engine state


def state_body(state: EngineState) -> str:
    """The engine's memory without what has its own tables (incidents, id sequences,
    silences)."""
    body = state.to_json(incidents=False)
    body.pop("sequences", None)
    body.pop("silences", None)
    return dumps(body)


def state_from_body(version: int, body: str) -> EngineState:
    """The stored engine memory; the caller adds sequences, open incidents and silences."""
    loaded = json.loads(body)
    state = EngineState.from_json({k: v for k, v in loaded.items() if k != "incidents"})
    state.version = int(version)
    return state


def stale_message(current: int, base: int) -> str:
    return (
        f"incident state changed underneath (stored version {current}, decision "
        f"based on {base}): reload the state and retry"
    )


def newer_schema_message(where: str, current: int, known: int, instead: str) -> str:
    return (
        f"{where}: schema version {current} is newer than this slo-engine "
        f"knows ({known}) — upgrade slo-engine or use {instead}"
    )


# ---------------------------------------------------------------------- incidents


def incident_row(incident: Incident) -> tuple[Any, ...]:
    """(id, year, number, service, severity, status, summary, opened_at, acknowledged_at,
    resolved_at, body)"""
    year, number = incident.id.split("-")[1:3]
    return (
        incident.id,
        int(year),
        int(number),
        incident.service,
        incident.severity.value,
        incident.status.value,
        incident.summary,
        incident.opened_at,
        incident.acknowledged_at,
        incident.resolved_at,
        dumps(incident.to_json(timeline=False)),
    )


def incident_from(row: Row) -> Incident:
    """From the `body` column; without its timeline."""
    return Incident.from_json(json.loads(row["body"]))


def timeline_row(record: TimelineRecord) -> tuple[Any, ...]:
    """(incident_id, seq, at, kind, message, actor, data)"""
    entry = record.entry
    return (
        record.incident_id,
        record.seq,
        entry.at,
        entry.kind,
        entry.message,
        entry.actor,
        dumps(entry.data),
    )


def timeline_entry(row: Row) -> TimelineEntry:
    return TimelineEntry(
        at=row["at"],
        kind=row["kind"],
        message=row["message"],
        actor=row["actor"],
        data=json.loads(row["data"]),
    )


# ---------------------------------------------------------------------- silences


def silence_row(silence: Silence) -> tuple[Any, ...]:
    """(id, matchers, starts_at, ends_at, created_by, comment, created_at)"""
    return (
        silence.id,
        dumps([m.to_json() for m in silence.matchers]),
        silence.starts_at,
        silence.ends_at,
        silence.created_by,
        silence.comment,
        silence.created_at,
    )


def silence_from(row: Row) -> Silence:
    return Silence.from_json({**dict(row), "matchers": json.loads(row["matchers"])})


# ---------------------------------------------------------------------- outbox


def outbox_row(notification: Notification) -> tuple[Any, ...]:
    """(id, receiver, dedup_key, event, notification, next_attempt_at, created_at): due at
    once."""
    return (
        notification.id,
        notification.receiver,
        notification.dedup_key,
        notification.event,
        dumps(notification.to_json()),
        notification.created_at,
        notification.created_at,
    )


def outbox_item(row: Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        receiver=row["receiver"],
        notification=Notification.from_json(json.loads(row["notification"])),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        created_at=float(row["created_at"]),
        last_error=row["last_error"],
    )


def outbox_counts(rows: list[Row]) -> dict[str, int]:
    """{"pending": n, "sent": n, "dead": n} from `SELECT status, COUNT(*) AS n ... GROUP BY`."""
    found = {r["status"]: int(r["n"]) for r in rows}
    return {k: found.get(k, 0) for k in OUTBOX_STATUSES}


def incident_list_query(
    status: IncidentStatus | str | None,
    severity: Severity | str | None,
    limit: int | None,
    mark: str,
    id_order: str = "id",
) -> tuple[str, list[Any]]:
    """The newest-first incident listing both stores run: `mark` is the driver's parameter
    placeholder (`?` or `%s`), `id_order` how ids sort like SQLite's byte order."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append(f"status = {mark}")
        params.append(IncidentStatus(status).value)
    if severity is not None:
        clauses.append(f"severity = {mark}")
        params.append(Severity(severity).value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT body FROM incidents {where} ORDER BY opened_at DESC, {id_order} DESC"
    if limit is not None:
        sql += f" LIMIT {mark}"
        params.append(int(limit))
    return sql, params
