"""The idempotency-key contract of the store, on SQLite and PostgreSQL alike: one reservation
per (caller, key), the answer replayed to every retry — from another store (replica) too —
until it expires, nothing kept for an answer a retry may cure. Then the HTTP API on top:
a retried POST sent to another replica gets the same answer and acts once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store.sqlite import SQLiteStore

T = 1_700_000_000.0
HOLD, TTL = 60.0, 86_400.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens another store on the same data each call (another process or replica)."""
    opened: list[Any] = []
    if request.param == "sqlite":

        def opener() -> Any:
            return SQLiteStore.in_state_dir(tmp_path / "state")
    else:
        from engine.store.postgresql import PostgreSQLStore

        database = request.getfixturevalue("postgresql_database")

        def opener() -> Any:
            return PostgreSQLStore(database.dsn, database.password_file)

    def open_one() -> Any:
        store = opener()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def test_one_reservation_then_the_answer_for_everyone(open_store: Callable[[], Any]) -> None:
    first, other = open_store().idempotency_keys(), open_store().idempotency_keys()
    assert first.reserve("token:a", "k1", "POST /x", "fp", T, HOLD) is None
    pending = other.reserve("token:a", "k1", "POST /x", "fp", T + 1, HOLD)
    assert pending is not None and pending.status is None and pending.fingerprint == "fp"
    body = {"id": "INC-2024-0001", "z": 1, "a": [1.5, None, "é"]}
    first.complete("token:a", "k1", 200, body, T + 2, TTL)
    replay = other.reserve("token:a", "k1", "POST /x", "fp", T + 3, HOLD)
    assert replay is not None and (replay.status, replay.body) == (200, body)
    assert list(replay.body) == ["id", "z", "a"]  # key order kept: byte-identical replays
    assert replay.route == "POST /x"
    # Another caller's key of the same name is another key.
    assert other.reserve("token:b", "k1", "POST /x", "fp", T + 3, HOLD) is None


def test_a_reused_key_shows_the_first_requests_fingerprint(open_store: Callable[[], Any]) -> None:
    keys = open_store().idempotency_keys()
    assert keys.reserve("c", "k", "POST /a", "fp-1", T, HOLD) is None
    keys.complete("c", "k", 409, {"error": "already resolved"}, T, TTL)
    found = keys.reserve("c", "k", "POST /b", "fp-2", T + 1, HOLD)
    assert found is not None and found.fingerprint == "fp-1" and found.route == "POST /a"


def test_released_and_expired_keys_act_again(open_store: Callable[[], Any]) -> None:
    keys = open_store().idempotency_keys()
    assert keys.reserve("c", "released", "POST /x", "fp", T, HOLD) is None
    keys.release("c", "released")  # e.g. a 503: a retry may cure it
    assert keys.reserve("c", "released", "POST /x", "fp", T, HOLD) is None

    assert keys.reserve("c", "done", "POST /x", "fp", T, HOLD) is None
    keys.complete("c", "done", 200, {"ok": True}, T, TTL)
    keys.release("c", "done")  # a complete answer is never released
    assert keys.reserve("c", "done", "POST /x", "fp", T + TTL - 1, HOLD) is not None
    assert keys.reserve("c", "done", "POST /x", "fp", T + TTL, HOLD) is None

    # An owner that died mid-request frees its key after the hold.
    assert keys.reserve("c", "orphan", "POST /x", "fp", T, HOLD) is None
    assert keys.reserve("c", "orphan", "POST /x", "fp", T + HOLD - 1, HOLD) is not None
    assert keys.reserve("c", "orphan", "POST /x", "fp", T + HOLD, HOLD) is None


def test_concurrent_reservations_from_two_stores_let_exactly_one_act(
    open_store: Callable[[], Any],
) -> None:
    stores = [open_store().idempotency_keys() for _ in range(2)]
    barrier = threading.Barrier(8)
    won: list[bool] = []
    lock = threading.Lock()

    def reserve(keys: Any) -> None:
        barrier.wait()
        got = keys.reserve("c", "storm", "POST /x", "fp", T, HOLD) is None
        with lock:
            won.append(got)

    threads = [threading.Thread(target=reserve, args=(stores[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == [False] * 7 + [True]
