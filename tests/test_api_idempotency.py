"""Idempotency-Key: a retried mutation acts once, concurrent retries included, over a real
uvicorn server and the daemon's real Runtime (incident engine, SQLite store)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, SampleSource, daemon_config, sample_runtime, serve
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime

ADMIN = "admin-token-Zq8w3n5v9k2m"
OTHER_ADMIN = "second-admin-Lk3j5h7g9f1d"


def auth(token: str = ADMIN, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 600)


@pytest.fixture
def runtime(tmp_path: Path, clock: FakeClock) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, clock, T0)
    yield runtime
    runtime.close()


@pytest.fixture
def app(runtime: Runtime, tmp_path: Path, clock: FakeClock):
    path = tmp_path / "tokens"
    path.write_text(f"{ADMIN}\n{OTHER_ADMIN}\n")
    return create_app(runtime, load_tokens(path), rate_limit_per_s=1000, burst=1000, clock=clock)


@pytest.fixture
def incident_id(runtime: Runtime) -> str:
    (incident,) = runtime.list_incidents("investigating", None)
    return incident.id


def entries(runtime: Runtime, incident_id: str, kind: str) -> list:
    incident = runtime.get_incident(incident_id)
    assert incident is not None
    return [e for e in incident.timeline if e.kind == kind]


def test_same_key_same_body_replays_the_stored_response(app, runtime, incident_id, clock):
    client = TestClient(app)
    url = f"/api/v1/incidents/{incident_id}/ack"
    first = client.post(url, json={}, headers=auth(key="ack-1"))
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    clock.advance(30)
    # Same meaning, different spelling of the JSON: still the same request.
    retry = client.post(
        url,
        content=b"{ }",
        headers={**auth(key="ack-1"), "Content-Type": "application/json"},
    )
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert len(entries(runtime, incident_id, "acknowledged")) == 1

    # Without a key, a second ack is a second effect ("acknowledged again"): the key matters.
    client.post(url, json={}, headers=auth())
    assert len(entries(runtime, incident_id, "acknowledged")) == 2


def test_same_key_different_body_is_refused(app, runtime, incident_id):
    client = TestClient(app)
    url = f"/api/v1/incidents/{incident_id}/comment"
    ok = client.post(url, json={"text": "first"}, headers=auth(key="c-1"))
    assert ok.status_code == 200
    reused = client.post(url, json={"text": "second"}, headers=auth(key="c-1"))
    assert reused.status_code == 422
    assert "already used for a different request" in reused.json()["error"]
    # Same body on another endpoint is also a different request.
    other = client.post(
        f"/api/v1/incidents/{incident_id}/resolve", json={}, headers=auth(key="c-1")
    )
    assert other.status_code == 422
    assert [e.message for e in entries(runtime, incident_id, "commented")] == ["first"]
    assert runtime.get_incident(incident_id).status.value == "investigating"


def test_keys_are_scoped_per_token(app, runtime, incident_id):
    client = TestClient(app)
    url = f"/api/v1/incidents/{incident_id}/comment"
    body = {"text": "same words"}
    assert client.post(url, json=body, headers=auth(ADMIN, "k")).status_code == 200
    second = client.post(url, json=body, headers=auth(OTHER_ADMIN, "k"))
    assert second.status_code == 200 and "Idempotent-Replayed" not in second.headers
    assert len(entries(runtime, incident_id, "commented")) == 2


def test_errors_are_replayed_too_but_not_server_errors(app, runtime, incident_id):
    client = TestClient(app)
    missing = client.post("/api/v1/incidents/INC-2024-9999/ack", json={}, headers=auth(key="m"))
    assert missing.status_code == 404
    again = client.post("/api/v1/incidents/INC-2024-9999/ack", json={}, headers=auth(key="m"))
    assert again.status_code == 404 and again.headers["Idempotent-Replayed"] == "true"


def test_silence_creation_is_single_effect(app, runtime):
    client = TestClient(app)
    body = {
        "matchers": [{"name": "service", "value": "api"}],
        "duration": "30m",
        "comment": "deploy",
    }
    first = client.post("/api/v1/silences", json=body, headers=auth(key="sil-1"))
    second = client.post("/api/v1/silences", json=body, headers=auth(key="sil-1"))
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(client.get("/api/v1/silences", headers=auth()).json()["silences"]) == 1


def test_idempotency_survives_a_restart(tmp_path, clock):
    """The keys live in the incident store: a retry sent after the daemon restarted (a new
    Runtime and app on the same state directory) gets the first answer, once."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ADMIN}\n")
    first_runtime = sample_runtime(tmp_path, clock, T0)
    try:
        (incident,) = first_runtime.list_incidents("investigating", None)
        url = f"/api/v1/incidents/{incident.id}/comment"
        body = {"text": "failing over to the standby"}
        app = create_app(first_runtime, load_tokens(tokens), clock=clock)
        first = TestClient(app).post(url, json=body, headers=auth(key="restart-1"))
        assert first.status_code == 200
    finally:
        first_runtime.close()
    clock.advance(600)
    restarted = Runtime(daemon_config(tmp_path), clock=clock, source=SampleSource(T0))
    try:
        client = TestClient(create_app(restarted, load_tokens(tokens), clock=clock))
        retry = client.post(url, json=body, headers=auth(key="restart-1"))
        assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json() == first.json()
        comments = [
            e for e in restarted.get_incident(incident.id).timeline if e.kind == "commented"
        ]
        assert [e.message for e in comments] == [body["text"]]
        # A different request under the same key is still told apart after the restart.
        reused = client.post(url, json={"text": "other"}, headers=auth(key="restart-1"))
        assert reused.status_code == 422
        # The audit log, in the same store, saw all three, acted by the token's identity.
        audit = client.get("/api/v1/audit", headers=auth()).json()["entries"]
        assert [(e["result"], e["detail"]) for e in audit] == [
            (422, ""),
            (200, "replayed"),
            (200, ""),
        ]
        assert {e["target"] for e in audit} == {incident.id}
    finally:
        restarted.close()


def test_expired_keys_act_again(app, runtime, incident_id, clock):
    client = TestClient(app)
    url = f"/api/v1/incidents/{incident_id}/comment"
    body = {"text": "hourly update"}
    client.post(url, json=body, headers=auth(key="daily"))
    clock.advance(86400 + 1)
    replay = client.post(url, json=body, headers=auth(key="daily"))
    assert "Idempotent-Replayed" not in replay.headers
    assert len(entries(runtime, incident_id, "commented")) == 2


def test_invalid_keys_are_refused(app, incident_id):
    client = TestClient(app)
    url = f"/api/v1/incidents/{incident_id}/comment"
    for key in ("x" * 256, "has space", "tab\there"):
        response = client.post(url, json={"text": "t"}, headers=auth(key=key))
        assert response.status_code == 422, key
        assert "Idempotency-Key" in response.json()["error"]


def test_concurrent_retries_have_a_single_effect(app, runtime, incident_id):
    """Eight clients send the same keyed comment at the same moment over real HTTP."""
    workers = 8
    barrier = threading.Barrier(workers)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    with serve(app) as base:

        def send() -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                barrier.wait()
                response = http.post(
                    f"/api/v1/incidents/{incident_id}/comment",
                    json={"text": "mitigation deployed"},
                    headers=auth(key="retry-storm-1"),
                )
            with lock:
                responses.append(response)

        threads = [threading.Thread(target=send) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert len(responses) == workers
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1  # byte-identical answers
    assert sum("Idempotent-Replayed" in r.headers for r in responses) == workers - 1
    comments = entries(runtime, incident_id, "commented")
    assert [c.message for c in comments] == ["mitigation deployed"]
