"""SQLite store: incidents, timeline, silences, the incident-id sequence, the engine's state
and the notification outbox, in one file under the state directory.

Durability choices:
- WAL journal: readers (CLI, API) never block the daemon's writer and vice versa.
- `synchronous=FULL`: with WAL, NORMAL survives an application crash but may lose the last
  transactions on power loss. A committed transaction here can hold a page that was already
  decided; losing it after the outbox worker read it would break "no lost incident". We
  write once per evaluation cycle, so the extra fsync costs nothing that matters.
- Every decision is applied in ONE `BEGIN IMMEDIATE` transaction; any exception rolls back
  everything (incidents, timeline, state, outbox).
- Parameterized SQL only. Outbox rows are keyed by the deterministic notification id and
  inserted with `ON CONFLICT DO NOTHING`, so re-inserting is harmless.
- One connection guarded by a lock: safe for the daemon's scheduler and API threads. Other
  processes (the `incidents` CLI) open their own connection; `busy_timeout` makes them wait.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.incidents.incident import (
    Incident,
    IncidentStatus,
    Notification,
    Severity,
    TimelineEntry,
)
from engine.incidents.silences import Silence
from engine.incidents.state import Decision, EngineState
from engine.store import audit, history, idempotency, maintenance_windows, rows
from engine.store.base import OutboxItem, StaleStateError, StoreError

DB_FILENAME = "incidents.sqlite3"

# Ordered, append-only. Never edit a released migration: add the next one.
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        1,
        "incidents, timeline, silences, id sequence, engine state, outbox",
        (
            """CREATE TABLE incidents (
                id TEXT PRIMARY KEY,
                year INTEGER NOT NULL,
                number INTEGER NOT NULL,
                service TEXT NOT NULL,
                severity TEXT NOT NULL,
                status TEXT NOT NULL,
                summary TEXT NOT NULL,
                opened_at REAL NOT NULL,
                acknowledged_at REAL,
                resolved_at REAL,
                body TEXT NOT NULL,
                UNIQUE (year, number)
            )""",
            "CREATE INDEX incidents_by_status ON incidents (status, severity, opened_at)",
            """CREATE TABLE timeline (
                incident_id TEXT NOT NULL REFERENCES incidents (id),
                seq INTEGER NOT NULL,
                at REAL NOT NULL,
                kind TEXT NOT NULL,
                message TEXT NOT NULL,
                actor TEXT,
                data TEXT NOT NULL,
                PRIMARY KEY (incident_id, seq)
            )""",
            """CREATE TABLE silences (
                id TEXT PRIMARY KEY,
                matchers TEXT NOT NULL,
                starts_at REAL NOT NULL,
                ends_at REAL NOT NULL,
                created_by TEXT NOT NULL,
                comment TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            """CREATE TABLE id_sequence (
                year INTEGER PRIMARY KEY,
                last INTEGER NOT NULL CHECK (last >= 0)
            )""",
            """CREATE TABLE engine_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                version INTEGER NOT NULL,
                body TEXT NOT NULL
            )""",
            "INSERT INTO engine_state (id, version, body) VALUES (1, 0, '{}')",
            """CREATE TABLE outbox (
                id TEXT PRIMARY KEY,
                receiver TEXT NOT NULL,
                dedup_key TEXT NOT NULL,
                event TEXT NOT NULL,
                notification TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'dead')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL,
                created_at REAL NOT NULL,
                sent_at REAL,
                last_error TEXT
            )""",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        ),
    ),
    (2, "idempotency keys of API changes", (idempotency.CREATE_TABLE, idempotency.CREATE_INDEX)),
    (3, "audit log of API changes", (audit.CREATE_TABLE_SQLITE, audit.CREATE_INDEX)),
    (
        4,
        "compliance history: one row per SLO per day",
        (history.CREATE_TABLE, history.CREATE_INDEX),
    ),
    (
        5,
        "maintenance windows declared through the API",
        (maintenance_windows.CREATE_TABLE, maintenance_windows.CREATE_INDEX),
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SQLiteStore:
    """`IncidentStore` and `Outbox` on one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the incident store: {exc}") from None
        self._conn.row_factory = sqlite3.Row
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal" and str(self.path) != ":memory:":
            raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    @classmethod
    def in_state_dir(cls, state_dir: Path | str) -> SQLiteStore:
        """The store of a daemon state directory (created, owner-only, if missing)."""
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(directory / DB_FILENAME)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._transaction() as db:
            db.execute(
                """CREATE TABLE IF NOT EXISTS schema_version (
                    version INTEGER PRIMARY KEY,
                    description TEXT NOT NULL,
                    applied_at TEXT NOT NULL
                )"""
            )
            current = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[
                0
            ]
            if current > SCHEMA_VERSION:
                raise StoreError(
                    rows.newer_schema_message(
                        str(self.path), current, SCHEMA_VERSION, "another --state-dir"
                    )
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (version, description, datetime.now(tz=UTC).isoformat(timespec="seconds")),
                )

    def schema_version(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    def idempotency_keys(self) -> idempotency.IdempotencyKeys:
        """The API's idempotency keys, kept here so they survive a restart."""
        return idempotency.SQLIdempotencyKeys(self._transaction, "?")

    def audit_log(self) -> audit.AuditLog:
        """The API's audit log of changes, kept here so it survives a restart."""
        return audit.SQLAuditLog(self._transaction, "?")

    def compliance_history(self) -> history.ComplianceHistory:
        """Daily compliance rows of every SLO (the monthly report's source)."""
        return history.SQLComplianceHistory(self._transaction, "?")

    def maintenance_windows(self) -> maintenance_windows.MaintenanceWindows:
        """Maintenance windows declared through the API (they survive a restart)."""
        return maintenance_windows.SQLMaintenanceWindows(self._transaction, "?")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ engine state

    def load_state(self, now: float | None = None) -> EngineState:
        with self._lock:
            row = self._conn.execute(
                "SELECT version, body FROM engine_state WHERE id = 1"
            ).fetchone()
            state = rows.state_from_body(row["version"], row["body"])
            state.sequences = {
                int(r["year"]): int(r["last"])
                for r in self._conn.execute("SELECT year, last FROM id_sequence")
            }
            state.incidents = {
                inc.id: inc
                for inc in (
                    self._incident(r)
                    for r in self._conn.execute(
                        # Open ones only: resolved, or resolved and awaiting its review.
                        "SELECT id, body FROM incidents WHERE status NOT IN (?, ?) "
                        "ORDER BY opened_at, id",
                        (IncidentStatus.resolved.value, IncidentStatus.review.value),
                    ).fetchall()
                )
            }
            state.silences = {
                s.id: s for s in self.list_silences(include_expired=now is None, now=now)
            }
            return state

    def _incident(self, row: sqlite3.Row) -> Incident:
        incident = rows.incident_from(row)
        incident.timeline = self.timeline(incident.id)
        return incident

    def apply(self, decision: Decision) -> None:
        if not decision.changed:
            return
        state = decision.state
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE engine_state SET version = ?, body = ? WHERE id = 1 AND version = ?",
                (state.version, rows.state_body(state), decision.base_version),
            ).rowcount
            if updated != 1:
                current = db.execute("SELECT version FROM engine_state WHERE id = 1").fetchone()[0]
                raise StaleStateError(rows.stale_message(current, decision.base_version))
            for year, last in state.sequences.items():
                # max(): the sequence never goes backwards, whatever a stale writer thinks.
                db.execute(
                    "INSERT INTO id_sequence (year, last) VALUES (?, ?) "
                    "ON CONFLICT (year) DO UPDATE SET last = MAX(last, excluded.last)",
                    (year, last),
                )
            for incident in decision.incidents:
                db.execute(
                    """INSERT INTO incidents (id, year, number, service, severity, status, summary,
                           opened_at, acknowledged_at, resolved_at, body)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (id) DO UPDATE SET
                           service = excluded.service, severity = excluded.severity,
                           status = excluded.status, summary = excluded.summary,
                           acknowledged_at = excluded.acknowledged_at,
                           resolved_at = excluded.resolved_at, body = excluded.body""",
                    rows.incident_row(incident),
                )
            for record in decision.timeline:
                db.execute(
                    """INSERT INTO timeline (incident_id, seq, at, kind, message, actor, data)
                       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, seq) DO NOTHING""",
                    rows.timeline_row(record),
                )
            for silence in decision.silences_upserted:
                self._upsert_silence(db, silence)
            for silence_id in decision.silences_deleted:
                db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))
            for notification in decision.notifications:
                self._enqueue(db, notification)

    @staticmethod
    def _enqueue(db: sqlite3.Connection, notification: Notification) -> None:
        db.execute(
            """INSERT INTO outbox (id, receiver, dedup_key, event, notification,
                   next_attempt_at, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING""",
            rows.outbox_row(notification),
        )

    # ------------------------------------------------------------------ incidents

    def list_incidents(
        self,
        status: IncidentStatus | str | None = None,
        severity: Severity | str | None = None,
        limit: int | None = None,
    ) -> list[Incident]:
        sql, params = rows.incident_list_query(status, severity, limit, "?", "id")
        return [rows.incident_from(r) for r in self._read(sql, tuple(params))]

    def get_incident(self, incident_id: str) -> Incident | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, body FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
            return None if row is None else self._incident(row)

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        return [
            rows.timeline_entry(r)
            for r in self._read(
                "SELECT at, kind, message, actor, data FROM timeline WHERE incident_id = ? "
                "ORDER BY seq",
                (incident_id,),
            )
        ]

    def id_sequence(self) -> dict[int, int]:
        return {
            int(r["year"]): int(r["last"]) for r in self._read("SELECT year, last FROM id_sequence")
        }

    # ------------------------------------------------------------------ silences

    @staticmethod
    def _upsert_silence(db: sqlite3.Connection, silence: Silence) -> None:
        db.execute(
            """INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers,
                   starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                   comment = excluded.comment""",
            rows.silence_row(silence),
        )

    def add_silence(self, silence: Silence) -> None:
        with self._transaction() as db:
            self._upsert_silence(db, silence)
            # A running engine holds the old state: make its next apply reload.
            db.execute("UPDATE engine_state SET version = version + 1 WHERE id = 1")

    def list_silences(
        self, include_expired: bool = False, now: float | None = None
    ) -> list[Silence]:
        if not include_expired and now is None:
            raise ValueError("list_silences: give `now` to filter expired silences")
        sql = "SELECT * FROM silences"
        params: tuple[Any, ...] = ()
        if not include_expired:
            sql += " WHERE ends_at > ?"
            params = (now,)
        return [rows.silence_from(r) for r in self._read(sql + " ORDER BY starts_at, id", params)]

    def delete_silence(self, silence_id: str) -> bool:
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount
            if deleted:
                db.execute("UPDATE engine_state SET version = version + 1 WHERE id = 1")
        return bool(deleted)

    # ------------------------------------------------------------------ outbox

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        found = self._read(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY created_at, rowid LIMIT ?",
            (now, int(limit)),
        )
        return [rows.outbox_item(r) for r in found]

    def mark_sent(self, item_id: str, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                "last_error = NULL WHERE id = ?",
                (now, item_id),
            )

    def mark_failed(
        self, item_id: str, now: float, next_attempt_at: float | None, error: str
    ) -> None:
        with self._transaction() as db:
            if next_attempt_at is None:
                db.execute(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ? "
                    "WHERE id = ?",
                    (error, item_id),
                )
            else:
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                    "next_attempt_at = ? WHERE id = ?",
                    (error, next_attempt_at, item_id),
                )

    def counts(self) -> dict[str, int]:
        return rows.outbox_counts(
            self._read("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        )

    def outbox_items(self, status: str | None = None) -> list[OutboxItem]:
        """Every outbox row (oldest first), optionally of one status — for the CLI and tests."""
        if status is None:
            found = self._read("SELECT * FROM outbox ORDER BY created_at, rowid")
        else:
            found = self._read(
                "SELECT * FROM outbox WHERE status = ? ORDER BY created_at, rowid", (status,)
            )
        return [rows.outbox_item(r) for r in found]
