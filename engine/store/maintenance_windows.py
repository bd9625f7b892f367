"""Maintenance windows declared at run time (`POST /api/v1/maintenance`), in the store.

Kept in the incident store so every replica of one PostgreSQL database reads the same
windows, and a restart forgets none. A row is never deleted: ending a window early (`DELETE
/api/v1/maintenance/{id}`) records when and by whom, and the planned end stays for the
record. A window's past stays in effect — the events it excluded stay excluded — so the
evaluation reads windows that ended up to one SLO period ago.

One SQL text for SQLite and PostgreSQL (placeholders translated), like engine.store.audit.
Matchers are JSON lists as text (the store's convention for JSON columns).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.store.sql_table import SQLTable

CREATE_TABLE = """CREATE TABLE maintenance_windows (
    id text PRIMARY KEY,
    services text NOT NULL,
    slos text NOT NULL,
    starts_at double precision NOT NULL,
    ends_at double precision NOT NULL,
    reason text NOT NULL,
    created_by text NOT NULL,
    created_at double precision NOT NULL,
    ended_at double precision,
    ended_by text
)"""
CREATE_INDEX = "CREATE INDEX maintenance_windows_by_end ON maintenance_windows (ends_at)"
_FIELDS = (
    "id",
    "services",
    "slos",
    "starts_at",
    "ends_at",
    "reason",
    "created_by",
    "created_at",
    "ended_at",
    "ended_by",
)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredWindow:
    """One window. `ends_at` is the planned end; `ended_at` set: ended early (at or before
    `starts_at`: cancelled before it began)."""

    id: str
    services: tuple[str, ...]  # empty: any service
    slos: tuple[str, ...]  # SLO ids `service/name`; empty: any SLO of the services
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float
    ended_at: float | None = None
    ended_by: str | None = None

    @property
    def end(self) -> float:
        """When the window stops (or stopped) excluding events."""
        return self.ends_at if self.ended_at is None else min(self.ends_at, self.ended_at)

    @property
    def cancelled(self) -> bool:
        return self.end <= self.starts_at

    def state(self, now: float) -> str:
        if self.cancelled:
            return "cancelled"
        if now < self.starts_at:
            return "upcoming"
        return "active" if now < self.end else "ended"

    def to_json(self, now: float) -> dict[str, Any]:
        """The API's form: RFC 3339 times in UTC, `end` the effective one."""
        return {
            "id": self.id,
            "matchers": {"service": list(self.services), "slo": list(self.slos)},
            "start": rfc3339(self.starts_at),
            "end": rfc3339(self.end),
            "planned_end": rfc3339(self.ends_at),
            "reason": self.reason,
            "state": self.state(now),
            "created_by": self.created_by,
            "created_at": rfc3339(self.created_at),
            "ended_by": self.ended_by,
            "ended_at": None if self.ended_at is None else rfc3339(self.ended_at),
        }

    def matches(self, service: str, slo_id: str) -> bool:
        """Whether the window covers the SLO `slo_id` (its base id) of `service`."""
        return (not self.services or service in self.services) and (
            not self.slos or slo_id in self.slos
        )


class MaintenanceWindows(Protocol):
    def add(self, window: StoredWindow) -> None: ...

    def get(self, window_id: str) -> StoredWindow | None: ...

    def ending_after(self, since: float) -> list[StoredWindow]:
        """Windows (cancelled ones included) whose planned end is after `since`, by start."""
        ...

    def all(self) -> list[StoredWindow]:
        """Every window ever declared, by start."""
        ...

    def end_early(self, window_id: str, at: float, by: str) -> StoredWindow | None:
        """Record that the window ends at `at` (if it was not ended already); the window as
        stored afterwards, None for an unknown id."""
        ...


class SQLMaintenanceWindows(SQLTable):
    """`MaintenanceWindows` over a store's transactions (see engine/store/idempotency.py)."""

    def add(self, window: StoredWindow) -> None:
        marks = ", ".join(["%s"] * len(_FIELDS))
        with self._transaction() as db:
            db.execute(
                self._sql(
                    f"INSERT INTO maintenance_windows ({', '.join(_FIELDS)}) VALUES ({marks})"
                ),
                _row(window),
            )

    def _select(self, where: str, params: tuple[Any, ...]) -> list[StoredWindow]:
        sql = f"SELECT {', '.join(_FIELDS)} FROM maintenance_windows {where} ORDER BY starts_at, id"
        with self._transaction() as db:
            return [_window(row) for row in db.execute(self._sql(sql), params).fetchall()]

    def get(self, window_id: str) -> StoredWindow | None:
        found = self._select("WHERE id = %s", (window_id,))
        return found[0] if found else None

    def ending_after(self, since: float) -> list[StoredWindow]:
        return self._select("WHERE ends_at > %s", (since,))

    def all(self) -> list[StoredWindow]:
        return self._select("", ())

    def end_early(self, window_id: str, at: float, by: str) -> StoredWindow | None:
        # One statement: of two replicas ending the same window, the first one's time stays.
        with self._transaction() as db:
            db.execute(
                self._sql(
                    "UPDATE maintenance_windows SET ended_at = %s, ended_by = %s "
                    "WHERE id = %s AND ended_at IS NULL"
                ),
                (at, by, window_id),
            )
        return self.get(window_id)


def _row(window: StoredWindow) -> tuple[Any, ...]:
    return (
        window.id,
        json.dumps(list(window.services)),
        json.dumps(list(window.slos)),
        window.starts_at,
        window.ends_at,
        window.reason,
        window.created_by,
        window.created_at,
        window.ended_at,
        window.ended_by,
    )


def _window(row: Any) -> StoredWindow:
    ended_at = row["ended_at"]
    return StoredWindow(
        id=row["id"],
        services=tuple(json.loads(row["services"])),
        slos=tuple(json.loads(row["slos"])),
        starts_at=float(row["starts_at"]),
        ends_at=float(row["ends_at"]),
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=float(row["created_at"]),
        ended_at=None if ended_at is None else float(ended_at),
        ended_by=row["ended_by"],
    )
