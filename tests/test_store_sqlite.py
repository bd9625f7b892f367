"""What only the SQLite store has: its file in the state directory, its schema and migrations,
WAL with full sync. The behaviour every store shares is in test_store_contract.py."""

from __future__ import annotations

import sqlite3

import pytest

from engine.store.base import IncidentStore, Outbox, StoreError
from engine.store.sqlite import DB_FILENAME, MIGRATIONS, SCHEMA_VERSION, SQLiteStore


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore.in_state_dir(tmp_path / "state")
    yield s
    s.close()


def _tables(path):
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrates_an_empty_database(tmp_path):
    store = SQLiteStore.in_state_dir(tmp_path / "new")
    path = tmp_path / "new" / DB_FILENAME
    assert path.exists()
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    assert {
        "schema_version",
        "incidents",
        "timeline",
        "silences",
        "id_sequence",
        "engine_state",
        "outbox",
    } <= _tables(path)
    assert isinstance(store, IncidentStore) and isinstance(store, Outbox)
    state = store.load_state()
    assert state.version == 0 and state.incidents == {} and state.sequences == {}
    store.close()
    # Reopening runs nothing twice.
    again = SQLiteStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    again.close()


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / DB_FILENAME
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', 'x')", (SCHEMA_VERSION + 1,)
        )
    with pytest.raises(StoreError, match="newer than this slo-engine knows"):
        SQLiteStore(path)


def test_wal_and_full_sync(store):
    assert store._read("PRAGMA journal_mode")[0][0] == "wal"
    assert store._read("PRAGMA synchronous")[0][0] == 2  # FULL
