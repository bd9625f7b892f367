"""Maintenance windows declared through the API, in the store — SQLite and a real PostgreSQL
alike: stored, read back by planned end, ended early once (the first end stays), kept
across a restart, and seen by every store on the same database (every replica)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store.maintenance_windows import MaintenanceWindows, StoredWindow
from engine.store.sqlite import SQLiteStore

T0 = 1_764_547_200.0  # 2025-12-01T00:00:00Z
HOUR = 3600.0


def window(window_id: str, start: float, end: float, **changes: Any) -> StoredWindow:
    values: dict[str, Any] = {
        "id": window_id,
        "services": ("api",),
        "slos": (),
        "starts_at": start,
        "ends_at": end,
        "reason": "database upgrade",
        "created_by": "ops-admin",
        "created_at": T0,
        **changes,
    }
    return StoredWindow(**values)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens a store on the same data each call (a restart, or another replica)."""
    opened: list[Any] = []

    def open_store() -> Any:
        if request.param == "sqlite":
            store = SQLiteStore.in_state_dir(tmp_path / "state")
        else:
            from engine.store.postgresql import PostgreSQLStore

            database = request.getfixturevalue("postgresql_database")
            store = PostgreSQLStore(database.dsn, database.password_file)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def windows_of(store: Any) -> MaintenanceWindows:
    return store.maintenance_windows()


def test_windows_round_trip_and_read_by_planned_end(opener: Callable[[], Any]):
    store = windows_of(opener())
    first = window("mw-a", T0, T0 + HOUR, slos=("api/availability", "api/latency-p95"))
    second = window("mw-b", T0 + 2 * HOUR, T0 + 3 * HOUR, services=(), slos=("db/durability",))
    store.add(second)
    store.add(first)
    assert store.get("mw-a") == first and store.get("mw-b") == second
    assert store.get("mw-nope") is None
    # By start; only those planned to end after the instant.
    assert store.all() == [first, second]
    assert store.ending_after(T0 + HOUR) == [second]
    assert store.ending_after(T0 + HOUR - 1) == [first, second]
    assert store.ending_after(T0 + 3 * HOUR) == []


def test_a_duplicate_id_is_refused(opener: Callable[[], Any]):
    store = windows_of(opener())
    store.add(window("mw-a", T0, T0 + HOUR))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        store.add(window("mw-a", T0, T0 + 2 * HOUR))
    assert store.get("mw-a") == window("mw-a", T0, T0 + HOUR)


def test_ending_early_records_the_first_end_only(opener: Callable[[], Any]):
    store = windows_of(opener())
    store.add(window("mw-a", T0, T0 + 2 * HOUR))
    ended = store.end_early("mw-a", T0 + HOUR, "ops-admin")
    assert ended is not None
    assert (ended.ended_at, ended.ended_by, ended.end) == (T0 + HOUR, "ops-admin", T0 + HOUR)
    assert ended.ends_at == T0 + 2 * HOUR  # the plan stays for the record
    assert [ended.state(t) for t in (T0 - 1, T0, T0 + HOUR)] == ["upcoming", "active", "ended"]
    # A second end (another replica, a retry) changes nothing.
    again = store.end_early("mw-a", T0 + 90 * 60, "someone-else")
    assert again == ended
    assert store.end_early("mw-nope", T0, "ops-admin") is None


def test_a_window_ended_before_it_began_is_cancelled(opener: Callable[[], Any]):
    store = windows_of(opener())
    store.add(window("mw-a", T0 + HOUR, T0 + 2 * HOUR))
    cancelled = store.end_early("mw-a", T0, "ops-admin")
    assert cancelled is not None and cancelled.cancelled
    assert cancelled.state(T0 + 90 * 60) == "cancelled"
    listed = cancelled.to_json(T0)
    assert listed["state"] == "cancelled" and listed["ended_at"] == "2025-12-01T00:00:00Z"
    assert listed["planned_end"] == "2025-12-01T02:00:00Z"
    assert listed["matchers"] == {"service": ["api"], "slo": []}


def test_windows_survive_a_restart_and_every_store_on_the_data_sees_them(
    opener: Callable[[], Any],
):
    one, other = opener(), opener()
    windows_of(one).add(window("mw-a", T0, T0 + HOUR))
    # Another replica (PostgreSQL) or process (SQLite) reads it at once …
    assert [w.id for w in windows_of(other).all()] == ["mw-a"]
    windows_of(other).end_early("mw-a", T0 + 60, "bob")
    one.close()
    # … and a restart finds it, ended.
    again = windows_of(opener()).get("mw-a")
    assert again is not None and again.ended_by == "bob" and again.end == T0 + 60


def test_the_migration_adds_the_table_to_an_existing_store(tmp_path: Path):
    # A store from before the table: the next open migrates it, nothing else changes.
    import sqlite3

    from engine.store.sqlite import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "incidents.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )
    mine = next(i for i, m in enumerate(MIGRATIONS) if m[1].startswith("maintenance windows"))
    for version, description, statements in MIGRATIONS[:mine]:
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version VALUES (?, ?, '2026-01-01T00:00:00+00:00')",
            (version, description),
        )
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        windows_of(store).add(window("mw-a", T0, T0 + HOUR))
        assert windows_of(store).all()[0].id == "mw-a"
    finally:
        store.close()
