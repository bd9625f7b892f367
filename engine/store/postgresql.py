"""PostgreSQL store: the same tables and contract as `engine.store.sqlite`, shared by several
daemon replicas (psycopg 3, one `psycopg_pool.ConnectionPool` per process).

Concurrency choices:
- Optimistic state versioning with a row lock, not SERIALIZABLE. Every writer of incident
  state (`apply`, `add_silence`, `delete_silence`) first takes `SELECT ... FOR UPDATE` on the
  single `engine_state` row, compares the version and writes everything in that same READ
  COMMITTED transaction. A second replica applying from the same base version waits on that
  lock, then reads the committed new version and gets `StaleStateError` — exactly the SQLite
  behaviour. SERIALIZABLE would also be correct but can abort a transaction for reasons
  unrelated to the version (predicate locks on the outbox or incident indexes), which would
  need a retry loop of its own on top of `apply_with_retry`'s; the version row is already the
  one serialization point, and taking it first gives every writer the same lock order, so
  writers cannot deadlock.
- The outbox is claimed in `due()` with `FOR UPDATE SKIP LOCKED`: two replicas scanning at
  the same moment never lock the same row, and the claim (`claimed_by`, `claimed_until`) is
  committed with the scan, so the other replica skips those rows afterwards too. A claim is
  a lease: if its owner dies without `mark_sent`/`mark_failed`, the row is handed out again
  once `claimed_until` has passed. The lease is measured on the database's clock (the only
  clock every replica shares; callers pass `due(math.inf)` and fake clocks in backtests).
  The owner's own later `due()` calls see its claimed rows again and renew the lease, so one
  store behaves like SQLite (the same rows until they are marked). An overrun lease can only
  cause a duplicate delivery, which receivers fold by notification id and dedup_key.
  The Deliverer's per-incident order (a later item of a (receiver, dedup_key) pair waits
  while an earlier one is pending) needs to see every row of the pair, and another
  replica's claimed rows are invisible to it: so only the incident leader delivers
  (engine.daemon.replicas) — one deliverer per database — and a new leader releases its
  predecessor's claims at once (`PostgreSQLCoordination.adopt_outbox`).
- Migrations run under a transaction-scoped advisory lock: two replicas starting at once
  apply them once, and PostgreSQL's DDL is transactional, so a migration is all or nothing.

Stored like SQLite: timestamps as `double precision` seconds, JSON as text (see
`engine.store.rows`: the same Python values come out, NaN included, which jsonb rejects).
Parameterized SQL only. The password never leaves the connection settings: it is kept out of
`dsn`, `repr()` and every error this module raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

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
from engine.store.leases import Fence, check_fence
from engine.store.postgresql_schema import migrate

# Long enough for a delivery batch (receivers answer or time out within seconds), short
# enough that the pages a dead replica had claimed still go out within a minute.
CLAIM_LEASE_SECONDS = 60.0
POOL_WAIT_SECONDS = 5.0
_SECRET_KEYS = ("password", "sslpassword")
_DB_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

_CLAIM_DUE = f"""
    WITH picked AS MATERIALIZED (
        SELECT id FROM outbox
        WHERE status = 'pending' AND next_attempt_at <= %(now)s
          AND (claimed_by IS NULL OR claimed_by = %(me)s OR claimed_until <= {_DB_NOW})
        ORDER BY created_at, seq
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox SET claimed_by = %(me)s, claimed_until = {_DB_NOW} + %(lease)s
    FROM picked WHERE outbox.id = picked.id
    RETURNING outbox.*"""

_UPSERT_INCIDENT = """
    INSERT INTO incidents (id, year, number, service, severity, status, summary,
        opened_at, acknowledged_at, resolved_at, body)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (id) DO UPDATE SET
        service = excluded.service, severity = excluded.severity,
        status = excluded.status, summary = excluded.summary,
        acknowledged_at = excluded.acknowledged_at,
        resolved_at = excluded.resolved_at, body = excluded.body"""


def read_password_file(path: Path | str) -> str:
    """The first line of `path` (a trailing newline is not part of the password)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StoreError(f"{path}: cannot read the PostgreSQL password file: {reason}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise StoreError(f"{path}: the PostgreSQL password file is empty")
    return password


def connection_settings(
    dsn: str, password_file: Path | str | None = None
) -> tuple[str, str | None, str]:
    """(conninfo without the password, the password, a printable DSN without secrets).

    A password in the DSN is accepted; `password_file` wins over it. Neither ever appears in
    the conninfo or the printable form, which is what errors and logs show.
    """
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        # libpq's parse errors quote the offending fragment, which may be the password.
        raise StoreError(
            "the PostgreSQL DSN cannot be parsed (expected postgresql://user@host:port/dbname)"
        ) from None
    password = params.pop("password", None)
    if password_file is not None:
        password = read_password_file(password_file)
    public = {k: v for k, v in params.items() if k not in _SECRET_KEYS}
    printable = make_conninfo("", **public) or "(default PostgreSQL connection)"
    params.setdefault("connect_timeout", "10")
    return make_conninfo("", **params), (str(password) if password else None), printable


def _redact(text: str, secret: str | None) -> str:
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote(secret)}:
        text = text.replace(form, "***")
    return text


class PostgreSQLStore:
    """`IncidentStore` and `Outbox` on one PostgreSQL database, safe across replicas."""

    def __init__(
        self,
        dsn: str,
        password_file: Path | str | None = None,
        *,
        claim_lease: float = CLAIM_LEASE_SECONDS,
        max_connections: int = 8,
    ) -> None:
        conninfo, password, self.dsn = connection_settings(dsn, password_file)
        self.claim_lease = float(claim_lease)
        # Who holds an outbox claim: this store instance (one per process and replica).
        self.claimer = uuid.uuid4().hex
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if password is not None:
            kwargs["password"] = password
        try:
            # A direct connection first: a wrong host or password fails here, clearly,
            # instead of as a pool timeout later.
            with psycopg.connect(conninfo, **kwargs) as conn:
                migrate(conn, self.dsn)
        except psycopg.Error as exc:
            reason = _redact(str(exc).strip(), password)
            raise StoreError(f"{self.dsn}: cannot open the incident store: {reason}") from None
        self._pool: ConnectionPool[Any] = ConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=1,
            max_size=max_connections,
            # A healthy pool hands a connection out at once; this long only when the
            # database cannot be reached — then fail, do not hold a cycle or a scrape.
            timeout=POOL_WAIT_SECONDS,
            open=True,
            check=ConnectionPool.check_connection,  # survive a database restart
            name="slo-engine-store",
        )

    def __repr__(self) -> str:
        return f"PostgreSQLStore({self.dsn!r})"

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self, wait: float | None = None) -> Iterator[psycopg.Cursor[Any]]:
        """One READ COMMITTED transaction: commit on success, roll back on any exception.
        `wait`: how long to wait for a connection (default `POOL_WAIT_SECONDS`) — a
        heartbeat must fail faster when the database is gone."""
        with self._pool.connection(timeout=wait) as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Cursor[Any]]:
        """A read-only transaction that sees one consistent state of every table."""
        with self._transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cur

    # Public for the replica tables (engine.store.coordination) and idempotency keys.
    transaction = _transaction
    snapshot = _snapshot

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        """One statement, its own transaction; the number of rows it touched."""
        with self._pool.connection() as conn:
            return conn.execute(sql, params).rowcount

    def schema_version(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")[0]["v"])

    def idempotency_keys(self) -> idempotency.IdempotencyKeys:
        """The API's idempotency keys, shared by every replica on this database."""
        return idempotency.SQLIdempotencyKeys(self.transaction)

    def audit_log(self) -> audit.AuditLog:
        """The API's audit log of changes, one for every replica on this database."""
        return audit.SQLAuditLog(self.transaction)

    def compliance_history(self) -> history.ComplianceHistory:
        """Daily compliance rows of every SLO, one table for every replica."""
        return history.SQLComplianceHistory(self.transaction)

    def maintenance_windows(self) -> maintenance_windows.MaintenanceWindows:
        """Maintenance windows declared through the API, the same for every replica."""
        return maintenance_windows.SQLMaintenanceWindows(self.transaction)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgreSQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ engine state

    def load_state(self, now: float | None = None) -> EngineState:
        with self._snapshot() as cur:
            row = cur.execute("SELECT version, body FROM engine_state WHERE id = 1").fetchone()
            state = rows.state_from_body(row["version"], row["body"])
            state.sequences = self._sequences(cur)
            cur.execute(
                # Open ones only: resolved, or resolved and awaiting its review.
                "SELECT id, body FROM incidents WHERE status NOT IN (%s, %s) "
                'ORDER BY opened_at, id COLLATE "C"',
                (IncidentStatus.resolved.value, IncidentStatus.review.value),
            )
            incidents = [rows.incident_from(r) for r in cur.fetchall()]
            timelines = self._timelines(cur, [i.id for i in incidents])
            for incident in incidents:
                incident.timeline = timelines.get(incident.id, [])
            state.incidents = {i.id: i for i in incidents}
            silences = self._silences(cur, include_expired=now is None, now=now)
            state.silences = {s.id: s for s in silences}
            return state

    @staticmethod
    def _lock_state(cur: psycopg.Cursor[Any]) -> int:
        """Take the version row (every state writer does, first) and read the version."""
        row = cur.execute("SELECT version FROM engine_state WHERE id = 1 FOR UPDATE").fetchone()
        return int(row["version"])

    def apply(self, decision: Decision, fence: Fence | None = None) -> None:
        """As SQLite's; with a `fence` (the incident leader's writes), first check that its
        token is still the lease's (`FencedOut` otherwise, nothing written)."""
        if not decision.changed:
            return
        state = decision.state
        with self._transaction() as cur:
            if fence is not None:
                check_fence(cur, fence)
            current = self._lock_state(cur)
            if current != decision.base_version:
                raise StaleStateError(rows.stale_message(current, decision.base_version))
            cur.execute(
                "UPDATE engine_state SET version = %s, body = %s WHERE id = 1",
                (state.version, rows.state_body(state)),
            )
            for year, last in state.sequences.items():
                # GREATEST: the sequence never goes backwards, whatever a stale writer thinks.
                cur.execute(
                    "INSERT INTO id_sequence (year, last) VALUES (%s, %s) ON CONFLICT (year) "
                    "DO UPDATE SET last = GREATEST(id_sequence.last, excluded.last)",
                    (year, last),
                )
            for incident in decision.incidents:
                cur.execute(_UPSERT_INCIDENT, rows.incident_row(incident))
            for record in decision.timeline:
                cur.execute(
                    """INSERT INTO timeline (incident_id, seq, at, kind, message, actor, data)
                       VALUES (%s, %s, %s, %s, %s, %s, %s)
                       ON CONFLICT (incident_id, seq) DO NOTHING""",
                    rows.timeline_row(record),
                )
            for silence in decision.silences_upserted:
                self._upsert_silence(cur, silence)
            for silence_id in decision.silences_deleted:
                cur.execute("DELETE FROM silences WHERE id = %s", (silence_id,))
            for notification in decision.notifications:
                self._enqueue(cur, notification)

    @staticmethod
    def _enqueue(cur: psycopg.Cursor[Any], notification: Notification) -> None:
        cur.execute(
            """INSERT INTO outbox (id, receiver, dedup_key, event, notification,
                   next_attempt_at, created_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
            rows.outbox_row(notification),
        )

    # ------------------------------------------------------------------ incidents

    def list_incidents(
        self,
        status: IncidentStatus | str | None = None,
        severity: Severity | str | None = None,
        limit: int | None = None,
    ) -> list[Incident]:
        sql, params = rows.incident_list_query(status, severity, limit, "%s", 'id COLLATE "C"')
        return [rows.incident_from(r) for r in self._read(sql, params)]

    def get_incident(self, incident_id: str) -> Incident | None:
        with self._snapshot() as cur:
            row = cur.execute(
                "SELECT id, body FROM incidents WHERE id = %s", (incident_id,)
            ).fetchone()
            if row is None:
                return None
            incident = rows.incident_from(row)
            incident.timeline = self._timelines(cur, [incident_id]).get(incident_id, [])
            return incident

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        with self._snapshot() as cur:
            return self._timelines(cur, [incident_id]).get(incident_id, [])

    @staticmethod
    def _timelines(cur: psycopg.Cursor[Any], ids: list[str]) -> dict[str, list[TimelineEntry]]:
        """The timelines of several incidents in one query."""
        found: dict[str, list[TimelineEntry]] = {}
        if not ids:
            return found
        cur.execute(
            "SELECT incident_id, at, kind, message, actor, data FROM timeline "
            "WHERE incident_id = ANY(%s) ORDER BY incident_id, seq",
            (ids,),
        )
        for r in cur.fetchall():
            found.setdefault(r["incident_id"], []).append(rows.timeline_entry(r))
        return found

    @staticmethod
    def _sequences(cur: psycopg.Cursor[Any]) -> dict[int, int]:
        cur.execute("SELECT year, last FROM id_sequence")
        return {int(r["year"]): int(r["last"]) for r in cur.fetchall()}

    def id_sequence(self) -> dict[int, int]:
        with self._snapshot() as cur:
            return self._sequences(cur)

    # ------------------------------------------------------------------ silences

    @staticmethod
    def _upsert_silence(cur: psycopg.Cursor[Any], silence: Silence) -> None:
        cur.execute(
            """INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment,
                   created_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers,
                   starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                   comment = excluded.comment""",
            rows.silence_row(silence),
        )

    def add_silence(self, silence: Silence) -> None:
        with self._transaction() as cur:
            self._lock_state(cur)
            self._upsert_silence(cur, silence)
            # A running engine holds the old state: make its next apply reload.
            cur.execute("UPDATE engine_state SET version = version + 1 WHERE id = 1")

    @staticmethod
    def _silences(
        cur: psycopg.Cursor[Any], include_expired: bool, now: float | None
    ) -> list[Silence]:
        if not include_expired and now is None:
            raise ValueError("list_silences: give `now` to filter expired silences")
        where, params = ("", ()) if include_expired else ("WHERE ends_at > %s", (now,))
        cur.execute(f'SELECT * FROM silences {where} ORDER BY starts_at, id COLLATE "C"', params)
        return [rows.silence_from(r) for r in cur.fetchall()]

    def list_silences(
        self, include_expired: bool = False, now: float | None = None
    ) -> list[Silence]:
        with self._snapshot() as cur:
            return self._silences(cur, include_expired, now)

    def delete_silence(self, silence_id: str) -> bool:
        with self._transaction() as cur:
            self._lock_state(cur)
            deleted = cur.execute("DELETE FROM silences WHERE id = %s", (silence_id,)).rowcount
            if deleted:
                cur.execute("UPDATE engine_state SET version = version + 1 WHERE id = 1")
        return bool(deleted)

    # ------------------------------------------------------------------ outbox

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """Pending items due at `now`, oldest first — and claimed for `claim_lease` seconds,
        so another replica's `due()` does not return them meanwhile."""
        params = {"now": now, "me": self.claimer, "limit": int(limit), "lease": self.claim_lease}
        claimed = sorted(self._read(_CLAIM_DUE, params), key=lambda r: (r["created_at"], r["seq"]))
        return [rows.outbox_item(r) for r in claimed]

    def mark_sent(self, item_id: str, now: float) -> None:
        self._write(
            "UPDATE outbox SET status = 'sent', sent_at = %s, attempts = attempts + 1, "
            "last_error = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = %s",
            (now, item_id),
        )

    def mark_failed(
        self, item_id: str, now: float, next_attempt_at: float | None, error: str
    ) -> None:
        # The attempt is over either way: release the claim so any replica may retry it.
        if next_attempt_at is None:
            self._write(
                "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = %s, "
                "claimed_by = NULL, claimed_until = NULL WHERE id = %s",
                (error, item_id),
            )
        else:
            self._write(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s, "
                "next_attempt_at = %s, claimed_by = NULL, claimed_until = NULL WHERE id = %s",
                (error, next_attempt_at, item_id),
            )

    def counts(self) -> dict[str, int]:
        return rows.outbox_counts(
            self._read("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        )

    def outbox_items(self, status: str | None = None) -> list[OutboxItem]:
        """Every outbox row (oldest first), optionally of one status — for the CLI and tests.
        Claims nothing."""
        if status is None:
            found = self._read("SELECT * FROM outbox ORDER BY created_at, seq")
        else:
            found = self._read(
                "SELECT * FROM outbox WHERE status = %s ORDER BY created_at, seq", (status,)
            )
        return [rows.outbox_item(r) for r in found]
