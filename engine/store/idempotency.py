"""Idempotency keys in the store: a retried API change acts once, whichever replica answers.

The HTTP API (engine/api/mutations.py) reserves a (caller, key) before it acts, records the
answer afterwards, and replays that answer to every retry until the key expires. Kept in
the incident store, next to what the change changed, so a retry sent to another replica —
or to the same daemon after a restart — finds it.

Semantics, the same on SQLite and PostgreSQL (one SQL text, placeholders translated):
- `reserve` inserts an in-progress row unless one exists, in one transaction; a concurrent
  reserve of the same key waits for that transaction (SQLite: the write lock; PostgreSQL:
  the primary key's `ON CONFLICT`) and then sees the row. Exactly one caller gets `None`
  ("yours: act now"), every other one the stored answer or the in-progress marker.
- The row is keyed by (caller, key): the route and the request's fingerprint are stored
  with it, so one key reused for another request — even on another route — is told apart
  (the API answers 422) instead of silently acting or replaying something unrelated.
- An in-progress row whose owner died expires after `hold` seconds; a complete one after
  the API's time-to-live. Expired rows are deleted by the next reservation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from engine.store.sql_table import SQLTable

# SQLite's and PostgreSQL's DDL are the same here.
CREATE_TABLE = """CREATE TABLE idempotency_keys (
    caller text NOT NULL,
    key text NOT NULL,
    route text NOT NULL,
    fingerprint text NOT NULL,
    status integer,
    body text,
    expires_at double precision NOT NULL,
    PRIMARY KEY (caller, key)
)"""
CREATE_INDEX = "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)"


@dataclass(frozen=True)
class StoredAnswer:
    route: str
    fingerprint: str
    status: int | None  # None: the first request is still being answered
    body: Any


class IdempotencyKeys(Protocol):
    def reserve(
        self, caller: str, key: str, route: str, fingerprint: str, now: float, hold: float
    ) -> StoredAnswer | None:
        """None: reserved for this caller (act, then `complete` or `release`); else what
        is stored under the key."""
        ...

    def complete(
        self, caller: str, key: str, status: int, body: Any, now: float, ttl: float
    ) -> None: ...

    def release(self, caller: str, key: str) -> None:
        """Forget an in-progress reservation (the action failed in a way a retry may cure)."""
        ...


class SQLIdempotencyKeys(SQLTable):
    """`IdempotencyKeys` over a store's transactions (`transaction()` yields something with
    `execute(sql, params)` returning a cursor: a sqlite3 connection, a psycopg cursor)."""

    def reserve(
        self, caller: str, key: str, route: str, fingerprint: str, now: float, hold: float
    ) -> StoredAnswer | None:
        with self._transaction() as db:
            db.execute(self._sql("DELETE FROM idempotency_keys WHERE expires_at <= %s"), (now,))
            inserted = db.execute(
                self._sql(
                    "INSERT INTO idempotency_keys (caller, key, route, fingerprint, status, "
                    "body, expires_at) VALUES (%s, %s, %s, %s, NULL, NULL, %s) "
                    "ON CONFLICT (caller, key) DO NOTHING"
                ),
                (caller, key, route, fingerprint, now + hold),
            ).rowcount
            if inserted == 1:
                return None
            row = db.execute(
                self._sql(
                    "SELECT route, fingerprint, status, body FROM idempotency_keys "
                    "WHERE caller = %s AND key = %s"
                ),
                (caller, key),
            ).fetchone()
        return StoredAnswer(
            route=row["route"],
            fingerprint=row["fingerprint"],
            status=None if row["status"] is None else int(row["status"]),
            body=None if row["body"] is None else json.loads(row["body"]),
        )

    def complete(
        self, caller: str, key: str, status: int, body: Any, now: float, ttl: float
    ) -> None:
        # Plain json.dumps: key order kept, so a replay is byte-identical to the first answer.
        with self._transaction() as db:
            db.execute(
                self._sql(
                    "UPDATE idempotency_keys SET status = %s, body = %s, expires_at = %s "
                    "WHERE caller = %s AND key = %s"
                ),
                (int(status), json.dumps(body), now + ttl, caller, key),
            )

    def release(self, caller: str, key: str) -> None:
        with self._transaction() as db:
            db.execute(
                self._sql(
                    "DELETE FROM idempotency_keys WHERE caller = %s AND key = %s AND status IS NULL"
                ),
                (caller, key),
            )
