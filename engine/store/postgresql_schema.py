"""The PostgreSQL store's schema and how it gets there: versioned, append-only migrations
applied at start-up, once, even when several replicas start at the same moment.
"""

from __future__ import annotations

from typing import Any

import psycopg

from engine.store import audit, history, idempotency, maintenance_windows, rows
from engine.store.base import StoreError

# Ordered, append-only. Never edit a released migration: add the next one. The tables are
# SQLite's (see engine.store.sqlite), plus the outbox's insertion order (`seq`, SQLite's
# rowid) and its claim columns; then what only several replicas need (migration 2).
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        1,
        "incidents, timeline, silences, id sequence, engine state, outbox with claims",
        (
            """CREATE TABLE incidents (
                id text PRIMARY KEY,
                year integer NOT NULL,
                number integer NOT NULL,
                service text NOT NULL,
                severity text NOT NULL,
                status text NOT NULL,
                summary text NOT NULL,
                opened_at double precision NOT NULL,
                acknowledged_at double precision,
                resolved_at double precision,
                body text NOT NULL,
                UNIQUE (year, number)
            )""",
            "CREATE INDEX incidents_by_status ON incidents (status, severity, opened_at)",
            """CREATE TABLE timeline (
                incident_id text NOT NULL REFERENCES incidents (id),
                seq integer NOT NULL,
                at double precision NOT NULL,
                kind text NOT NULL,
                message text NOT NULL,
                actor text,
                data text NOT NULL,
                PRIMARY KEY (incident_id, seq)
            )""",
            """CREATE TABLE silences (
                id text PRIMARY KEY,
                matchers text NOT NULL,
                starts_at double precision NOT NULL,
                ends_at double precision NOT NULL,
                created_by text NOT NULL,
                comment text NOT NULL,
                created_at double precision NOT NULL
            )""",
            """CREATE TABLE id_sequence (
                year integer PRIMARY KEY,
                last integer NOT NULL CHECK (last >= 0)
            )""",
            """CREATE TABLE engine_state (
                id integer PRIMARY KEY CHECK (id = 1),
                version bigint NOT NULL,
                body text NOT NULL
            )""",
            "INSERT INTO engine_state (id, version, body) VALUES (1, 0, '{}')",
            """CREATE TABLE outbox (
                id text PRIMARY KEY,
                seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                receiver text NOT NULL,
                dedup_key text NOT NULL,
                event text NOT NULL,
                notification text NOT NULL,
                status text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'dead')),
                attempts integer NOT NULL DEFAULT 0,
                next_attempt_at double precision NOT NULL,
                created_at double precision NOT NULL,
                sent_at double precision,
                last_error text,
                claimed_by text,
                claimed_until double precision
            )""",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        ),
    ),
    (
        2,
        "replicas: members, leases with fencing tokens, published SLO states; idempotency keys",
        (
            # Times are epoch seconds of the database's clock_timestamp() (engine.store.
            # coordination): the one clock every replica shares.
            """CREATE TABLE members (
                replica_id text PRIMARY KEY,
                started_at double precision NOT NULL,
                heartbeat_at double precision NOT NULL,
                published_at double precision,
                alerts text NOT NULL DEFAULT '[]'
            )""",
            """CREATE TABLE leases (
                name text PRIMARY KEY,
                holder text,
                token bigint NOT NULL CHECK (token >= 0),
                expires_at double precision NOT NULL,
                acquired_at double precision
            )""",
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ('incidents', NULL, 0, 0)",
            # JSON as text, like every JSON column here: NaN survives, jsonb would refuse it.
            """CREATE TABLE slo_states (
                slo_id text PRIMARY KEY,
                replica_id text NOT NULL,
                published_at double precision NOT NULL,
                evaluated_at double precision NOT NULL,
                status text NOT NULL,
                evaluation text NOT NULL,
                alerts text NOT NULL
            )""",
            idempotency.CREATE_TABLE,
            idempotency.CREATE_INDEX,
        ),
    ),
    (3, "audit log of API changes", (audit.CREATE_TABLE_POSTGRESQL, audit.CREATE_INDEX)),
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
# pg_advisory_xact_lock key held while migrating ("slo-eng" in ASCII): one migrator at a time.
MIGRATION_LOCK = 0x736C6F2D656E67


def migrate(conn: psycopg.Connection[Any], where: str) -> None:
    """Bring the database to SCHEMA_VERSION in one transaction; refuse a newer schema.

    The advisory lock serializes replicas starting together (two concurrent `CREATE TABLE IF
    NOT EXISTS` can otherwise both fail on PostgreSQL's catalog); DDL is transactional, so a
    migration that fails leaves nothing behind. `conn` must be in autocommit mode and return
    dict rows.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        row = conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version").fetchone()
        current = int(row["v"])
        if current > SCHEMA_VERSION:
            raise StoreError(
                rows.newer_schema_message(where, current, SCHEMA_VERSION, "another database")
            )
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (version, description),
            )
