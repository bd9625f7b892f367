"""The audit log: every change made through the API — answered, replayed or refused — is an
entry (actor, roles, action, target, request id, source address, result) in the store (on
SQLite and PostgreSQL alike), in the log, and at GET /api/v1/audit for admins; entries
older than the retention are deleted."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, sample_runtime
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime
from engine.store.audit import AuditEntry
from engine.store.sqlite import SQLiteStore

ADMIN = "admin-token-Zq8w3n5v9k2m"
READER = "reader-token-Hp4t7y1u6r0e"
ALICE = "alice-token-Wd2s5x8c1v4b"
DAY = 86400.0


def auth(token: str = ADMIN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 600)


@pytest.fixture
def runtime(tmp_path: Path, clock: FakeClock) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, clock, T0)
    yield runtime
    runtime.close()


@pytest.fixture
def client(runtime: Runtime, tmp_path: Path, clock: FakeClock) -> TestClient:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"{ADMIN} admin name=ops-admin\n{READER} read\n{ALICE} responder name=alice\n"
    )
    app = create_app(
        runtime,
        load_tokens(tokens),
        rate_limit_per_s=1000,
        burst=1000,
        clock=clock,
        audit_retention_s=30 * DAY,
    )
    return TestClient(app)


def audit(client: TestClient, **query: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/audit", params=query, headers=auth())
    assert answer.status_code == 200, answer.text
    return answer.json()["entries"]


def test_every_change_is_audited_with_the_authenticated_actor(client, runtime, caplog):
    caplog.set_level(logging.INFO, logger="engine.audit")
    incident_id = runtime.list_incidents("investigating", None)[0].id
    base = f"/api/v1/incidents/{incident_id}"
    acked = client.post(f"{base}/ack", json={}, headers=auth(ALICE, **{"X-Request-Id": "req-1"}))
    assert acked.status_code == 200
    comment = {"text": "rolled back"}
    client.post(f"{base}/comment", json=comment, headers=auth(ALICE, **{"Idempotency-Key": "k"}))
    replayed = client.post(
        f"{base}/comment", json=comment, headers=auth(ALICE, **{"Idempotency-Key": "k"})
    )
    assert replayed.headers["Idempotent-Replayed"] == "true"
    silence = client.post(
        "/api/v1/silences",
        json={"matchers": [{"name": "service", "value": "api"}], "duration": "1h", "comment": "x"},
        headers=auth(),
    )
    assert silence.status_code == 201
    client.delete(f"/api/v1/silences/{silence.json()['id']}", headers=auth())
    assert client.post(f"{base}/resolve", json={}, headers=auth(READER)).status_code == 403
    assert client.post(f"{base}/comment", json={"by": "x"}, headers=auth(ALICE)).status_code == 422
    missing = client.post("/api/v1/incidents/INC-2024-9999/ack", json={}, headers=auth(ALICE))
    assert missing.status_code == 404
    # Reads and unknown routes are not changes.
    client.get("/api/v1/incidents", headers=auth(READER))
    client.post("/api/v1/nothing", json={}, headers=auth())

    entries = audit(client)  # newest first
    actors = [e["actor"] for e in entries]
    reader_label = "token:" + hashlib.sha256(READER.encode()).hexdigest()[:16]
    assert actors == [
        "alice",
        "alice",
        reader_label,
        "ops-admin",
        "ops-admin",
        "alice",
        "alice",
        "alice",
    ]
    results = [(e["result"], e["detail"]) for e in entries]
    assert results == [
        (404, ""),
        (422, ""),
        (403, ""),
        (200, ""),
        (201, ""),
        (200, "replayed"),
        (200, ""),
        (200, ""),
    ]
    assert [e["target"] for e in entries] == [
        "INC-2024-9999",
        incident_id,
        incident_id,
        silence.json()["id"],
        silence.json()["id"],
        incident_id,
        incident_id,
        incident_id,
    ]
    assert entries[3]["action"] == "DELETE /api/v1/silences/{silence_id}"
    assert entries[4]["action"] == "POST /api/v1/silences"
    first = entries[-1]
    assert first["action"] == "POST /api/v1/incidents/{incident_id}/ack"
    assert first["request_id"] == "req-1" == acked.headers["X-Request-Id"]
    assert first["roles"] == "read,responder" and entries[3]["roles"] == "read,responder,admin"
    assert first["source"] == "testclient" and first["at"] == runtime.clock()
    # The same entries in the log, one line each.
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.audit"]
    assert len(lines) == 8
    assert "actor=alice" in lines[0] and "result=200" in lines[0] and "request_id=req-1" in lines[0]
    # Filters, and admins only.
    assert [e["result"] for e in audit(client, actor="ops-admin")] == [200, 201]
    assert len(audit(client, limit=2)) == 2
    assert client.get("/api/v1/audit", headers=auth(ALICE)).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401


def test_entries_older_than_the_retention_are_deleted(client, runtime, clock):
    incident_id = runtime.list_incidents("investigating", None)[0].id
    url = f"/api/v1/incidents/{incident_id}/comment"
    client.post(url, json={"text": "first"}, headers=auth(ALICE))
    clock.advance(10 * DAY)
    client.post(url, json={"text": "second"}, headers=auth(ALICE))
    assert len(audit(client)) == 2
    clock.advance(25 * DAY)  # the first entry is 35 days old: past the 30 days kept
    client.post(url, json={"text": "third"}, headers=auth(ALICE))
    assert [e["at"] for e in audit(client)] == [clock.now, clock.now - 25 * DAY]
    assert len(audit(client, since=clock.now - DAY)) == 1


# ------------------------------------------------------------------ the store, both backends


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens another store on the same data each call (a restart, another replica)."""
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


def entry(at: float, actor: str = "alice", result: int = 200) -> AuditEntry:
    return AuditEntry(
        at=at,
        actor=actor,
        roles="read,responder",
        action="POST /api/v1/incidents/{incident_id}/ack",
        target="INC-2024-0001",
        request_id=f"req-{at:g}",
        source="192.0.2.7",
        result=result,
        detail="",
    )


def test_the_audit_log_in_the_store_survives_a_restart_and_is_shared(open_store) -> None:
    first, second = open_store().audit_log(), open_store().audit_log()
    first.record(entry(T0, "alice"))
    second.record(entry(T0 + 1, "bob", 403))
    first.record(entry(T0 + 2, "alice", 409))
    reopened = open_store().audit_log()
    assert reopened.entries() == [entry(T0 + 2, "alice", 409), entry(T0 + 1, "bob", 403), entry(T0)]
    assert [e.result for e in reopened.entries(actor="alice")] == [409, 200]
    assert [e.at for e in reopened.entries(since=T0 + 1, limit=1)] == [T0 + 2]
    assert reopened.prune(T0 + 1) == 1
    assert [e.at for e in second.entries()] == [T0 + 2, T0 + 1]
