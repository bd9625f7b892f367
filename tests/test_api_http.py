"""HTTP API semantics over the daemon's real Runtime (harness.api_runtime: SQLite state in
tmp_path, a scripted source, one cycle at T0): contracts, auth, validation, rate limits,
probes, metrics, headers. `client` reads with the read-only token unless told otherwise;
`anonymous` sends none (engine/api/deps.py: every route needs a role)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import (
    FakeClock,
    SampleSource,
    sample_runtime,
    specs_with_descriptions,
)
from harness.incidents import T0
from prometheus_client.parser import text_string_to_metric_families

from engine.api.app import create_app
from engine.api.deps import Access
from engine.api.middleware import STRICT_CSP
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime

ADMIN = "admin-token-Zq8w3n5v9k2m"
READER = "reader-token-Hp4t7y1u6r0e"
ALICE = "alice-token-Wd2s5x8c1v4b"
# A token without a name acts under its label (never the token itself).
ADMIN_NAME = "token:" + hashlib.sha256(ADMIN.encode()).hexdigest()[:16]


def auth(token: str = ADMIN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 600)


@pytest.fixture
def source() -> SampleSource:
    return SampleSource(T0)


@pytest.fixture
def runtime(tmp_path: Path, clock: FakeClock, source: SampleSource) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, clock, T0, source=source)
    yield runtime
    runtime.close()


@pytest.fixture
def tokens(tmp_path: Path):
    path = tmp_path / "api-tokens"
    path.write_text(f"# ops team\n{ADMIN}\n{READER} read-only\n{ALICE} responder name=alice\n")
    return load_tokens(path)


@pytest.fixture
def app(runtime: Runtime, tokens, clock: FakeClock):
    # A generous limit: these tests are about everything but rate limiting.
    return create_app(runtime, tokens, rate_limit_per_s=1000, burst=1000, clock=clock)


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, headers=auth(READER))


@pytest.fixture
def anonymous(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def open_incident_id(runtime: Runtime) -> str:
    (incident,) = runtime.list_incidents("investigating", None)
    return incident.id


# ------------------------------------------------------------------ reads: contracts


def test_slos_list_is_the_evaluate_json_contract(client: TestClient, runtime: Runtime):
    response = client.get("/api/v1/slos")
    assert response.status_code == 200
    body = response.json()
    expected = [r.to_json() for r in runtime.slo_results()]
    assert body == {"evaluated_at": T0, "slos": json.loads(json.dumps(expected))}
    assert [s["status"] for s in body["slos"]] == ["page", "ticket", "ok", "exhausted", "no_data"]
    first = body["slos"][0]
    assert first["id"] == "api/availability"
    assert first["burn_rate"]["1h"] == pytest.approx(18.0)
    assert first["alerts"][0]["severity"] == "page"
    # No data stays None, never 0 or 1.
    assert body["slos"][4]["error_budget_remaining"] is None


def test_one_slo_and_unknown_slo(client: TestClient):
    response = client.get("/api/v1/slos/database/durability")
    assert response.status_code == 200
    assert response.json()["status"] == "exhausted"
    assert response.json()["error_budget_remaining"] == pytest.approx(-0.12)
    missing = client.get("/api/v1/slos/database/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "no evaluated SLO database/nope; GET /api/v1/slos lists the SLOs"
    }
    assert client.get("/api/v1/slos/Bad Name/x").status_code == 422


def test_incidents_list_filters_and_validation(client: TestClient, runtime: Runtime):
    listed = client.get("/api/v1/incidents").json()
    assert listed["total"] == 1
    (incident,) = listed["incidents"]
    assert incident["service"] == "api" and incident["status"] == "investigating"
    assert "timeline" not in incident
    assert client.get("/api/v1/incidents?status=open").json()["total"] == 1
    assert client.get("/api/v1/incidents?status=resolved").json()["total"] == 0
    severity = incident["severity"]
    assert client.get(f"/api/v1/incidents?severity={severity}").json()["total"] == 1
    other = "SEV4" if severity != "SEV4" else "SEV3"
    assert client.get(f"/api/v1/incidents?severity={other}").json()["total"] == 0
    for bad in ("status=broken", "severity=SEV9", "severity=sev1; drop table", "limit=0"):
        response = client.get(f"/api/v1/incidents?{bad}")
        assert response.status_code == 422, bad
        assert response.json()["reasons"], bad


def test_incident_detail_with_timeline_and_id_validation(client: TestClient, runtime):
    incident_id = open_incident_id(runtime)
    body = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert body["id"] == incident_id
    assert body["timeline"][0]["kind"] == "opened"
    assert "customer_notice" in body
    missing = client.get("/api/v1/incidents/INC-2024-9999")
    assert missing.status_code == 404 and missing.json() == {"error": "no incident INC-2024-9999"}
    for bad in ("INC-1", "INC-2024-01", "x' OR 1=1"):
        assert client.get(f"/api/v1/incidents/{bad}").status_code == 422, bad


def test_specs_status(client: TestClient, runtime: Runtime, clock: FakeClock):
    status = client.get("/api/v1/specs").json()
    assert status == json.loads(json.dumps(runtime.spec_status()))
    assert status["loaded_at"] == clock.now
    assert (status["slos"], status["files"], status["last_error"]) == (5, 2, None)


# ------------------------------------------------------------------ mutations


def test_ack_resolve_comment_happy_path(client: TestClient, runtime: Runtime, clock):
    incident_id = open_incident_id(runtime)
    acked = client.post(f"/api/v1/incidents/{incident_id}/ack", json={}, headers=auth(ALICE))
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == "alice"
    assert acked.json()["acknowledged_at"] == clock.now

    commented = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        json={"text": "rolled back deploy 42"},
        headers=auth(ALICE),
    )
    assert commented.status_code == 200
    last = commented.json()["timeline"][-1]
    assert (last["kind"], last["message"], last["actor"]) == (
        "commented",
        "rolled back deploy 42",
        "alice",
    )

    resolved = client.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        json={"note": "fixed by rollback"},
        headers=auth(ALICE),
    )
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    stored = runtime.get_incident(incident_id)
    assert stored is not None and stored.status.value == "resolved"
    assert "fixed by rollback" in stored.timeline[-1].message

    # Acknowledging a resolved incident is a conflict, with the engine's reason.
    again = client.post(f"/api/v1/incidents/{incident_id}/ack", json={}, headers=auth())
    assert again.status_code == 409
    assert incident_id in again.json()["error"]
    unknown = client.post("/api/v1/incidents/INC-2024-9999/ack", json={}, headers=auth())
    assert unknown.status_code == 404 and unknown.json() == {"error": "no incident INC-2024-9999"}


def test_silences_create_list_delete(client: TestClient, runtime: Runtime, clock):
    created = client.post(
        "/api/v1/silences",
        json={
            "matchers": [
                {"name": "service", "value": "api"},
                {"name": "slo", "value": "avail.*", "op": "=~"},
            ],
            "duration": "2h",
            "comment": "planned failover",
        },
        headers=auth(),
    )
    assert created.status_code == 201
    silence = created.json()
    assert silence["created_by"] == ADMIN_NAME  # the token's label: never a body field
    assert silence["starts_at"] == clock.now
    assert silence["ends_at"] == clock.now + 7200
    assert silence["matchers"][1] == {"name": "slo", "op": "=~", "value": "avail.*"}
    assert client.get("/api/v1/silences").json()["silences"] == [silence]

    by_time = client.post(
        "/api/v1/silences",
        json={
            "matchers": [{"name": "service", "value": "database"}],
            "ends_at": "2024-03-02T00:00:00Z",
            "comment": "vacuum",
        },
        headers=auth(),
    )
    assert by_time.status_code == 201
    assert by_time.json()["ends_at"] == T0 + 86400

    clock.advance(60)
    deleted = client.delete(f"/api/v1/silences/{silence['id']}", headers=auth())
    assert deleted.status_code == 200 and deleted.json() == {"deleted": silence["id"]}
    ids = [s["id"] for s in client.get("/api/v1/silences").json()["silences"]]
    assert ids == [by_time.json()["id"]]
    assert client.delete("/api/v1/silences/SIL-999999", headers=auth()).status_code == 404
    assert client.delete("/api/v1/silences/..%2Fx y", headers=auth()).status_code in (404, 422)


SILENCE = {
    "matchers": [{"name": "service", "value": "api"}],
    "duration": "1h",
    "comment": "deploy",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"matchers": [{"name": "slo", "value": "(", "op": "=~"}]}, "bad regex"),
        ({"matchers": [{"name": "slo", "value": "x", "op": "=="}]}, "matchers.0.op"),
        ({"matchers": [{"name": "9bad", "value": "x"}]}, "matchers.0.name"),
        ({"matchers": [{"name": "slo", "value": ".*", "op": "=~"}]}, "empty string"),
        ({"matchers": []}, "matchers"),
        ({"duration": "forever"}, "duration"),
        ({"duration": "0s"}, "positive"),
        ({"duration": "365d"}, "at most 90 days"),
        ({"duration": None}, "exactly one of ends_at or duration"),
        ({"ends_at": "2024-03-02T00:00:00Z"}, "exactly one of ends_at or duration"),
        ({"duration": None, "ends_at": "2024-02-01T00:00:00Z"}, "already have expired"),
        ({"duration": None, "ends_at": "2024-03-02T00:00:00"}, "timezone"),
        ({"comment": ""}, "comment"),
        ({"comment": "x" * 1001}, "comment"),
        ({"created_by": "bob"}, "`created_by` is not accepted: the actor is the authenticated"),
        ({"surprise": True}, "Extra inputs"),
    ],
)
def test_silence_validation(client: TestClient, change: dict, reason: str):
    body = {k: v for k, v in {**SILENCE, **change}.items() if v is not None}
    response = client.post("/api/v1/silences", json=body, headers=auth())
    assert response.status_code == 422, response.text
    assert reason in json.dumps(response.json()), response.json()
    assert client.get("/api/v1/silences").json()["silences"] == []


BY_REFUSED = "`by` is not accepted: the actor is the authenticated identity"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"by": "alice"}, BY_REFUSED),
        ({"by": ""}, BY_REFUSED),
        ({"by": 42}, BY_REFUSED),
        ({"commander": "bob"}, "Extra inputs are not permitted"),
        ([], "valid dictionary"),
    ],
)
def test_ack_body_validation(client: TestClient, runtime, body: dict, reason: str):
    incident_id = open_incident_id(runtime)
    response = client.post(f"/api/v1/incidents/{incident_id}/ack", json=body, headers=auth())
    assert response.status_code == 422
    assert reason in json.dumps(response.json())
    assert runtime.get_incident(incident_id).acknowledged_at is None  # nothing happened


def test_validation_errors_do_not_echo_input(client: TestClient, runtime):
    incident_id = open_incident_id(runtime)
    secret = "x" * 4001 + "SENSITIVE"
    response = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        json={"text": secret},
        headers=auth(),
    )
    assert response.status_code == 422
    assert "SENSITIVE" not in response.text
    assert response.json()["reasons"] == [
        {"where": "body.text", "message": "String should have at most 4000 characters"}
    ]


def test_malformed_json_and_oversized_body(client: TestClient, runtime):
    incident_id = open_incident_id(runtime)
    before = len(runtime.get_incident(incident_id).timeline)
    broken = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        content=b'{"text": ',
        headers=auth(**{"Content-Type": "application/json"}),
    )
    assert broken.status_code == 422 and "error" in broken.json()
    huge = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        content=json.dumps({"text": "y" * 70_000}).encode(),
        headers=auth(**{"Content-Type": "application/json"}),
    )
    assert huge.status_code == 413
    assert huge.json() == {"error": "request body larger than 65536 bytes"}
    assert len(runtime.get_incident(incident_id).timeline) == before


# ------------------------------------------------------------------ auth


def test_mutations_need_a_role(client: TestClient, anonymous: TestClient, runtime: Runtime):
    incident_id = open_incident_id(runtime)
    before = len(runtime.get_incident(incident_id).timeline)
    url = f"/api/v1/incidents/{incident_id}/ack"
    missing = anonymous.post(url, json={})
    assert missing.status_code == 401
    assert missing.json() == {"error": "missing bearer token"}
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    wrong = client.post(url, json={}, headers=auth("not-a-real-token-at-all"))
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid bearer token"}
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]

    basic = anonymous.post(url, json={}, headers={"Authorization": f"Basic {ADMIN}"})
    assert basic.status_code == 401

    read_only = client.post(url, json={}, headers=auth(READER))
    assert read_only.status_code == 403
    assert read_only.json() == {"error": "this needs the responder role; this identity has: read"}

    for method, path, role in [
        ("post", f"/api/v1/incidents/{incident_id}/resolve", "responder"),
        ("post", f"/api/v1/incidents/{incident_id}/comment", "responder"),
        ("post", "/api/v1/silences", "admin"),
        ("delete", "/api/v1/silences/SIL-000001", "admin"),
    ]:
        assert getattr(anonymous, method)(path).status_code == 401, path
        refused = getattr(client, method)(path, headers=auth(READER))
        assert refused.status_code == 403, path
        assert f"needs the {role} role" in refused.json()["error"], path
    # A responder acts on incidents, but silences are for admins.
    silence = {**SILENCE}
    assert client.post("/api/v1/silences", json=silence, headers=auth(ALICE)).status_code == 403

    assert runtime.get_incident(incident_id).acknowledged_at is None
    assert len(runtime.get_incident(incident_id).timeline) == before


def test_reads_need_the_read_role(client: TestClient, anonymous: TestClient, runtime: Runtime):
    incident_id = open_incident_id(runtime)
    for path in (
        "/api/v1/slos",
        "/api/v1/slos/api/availability",
        "/api/v1/incidents",
        f"/api/v1/incidents/{incident_id}",
        f"/api/v1/incidents/{incident_id}/updates",
        "/api/v1/silences",
        "/api/v1/specs",
        "/status",
    ):
        refused = anonymous.get(path)
        assert refused.status_code == 401, path
        assert refused.json() == {"error": "missing bearer token"}, path
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="slo-engine"', path
        assert anonymous.get(path, headers=auth("bogus-token-123456")).status_code == 401, path
        assert client.get(path).status_code == 200, path  # the read-only token
    # The audit log is for admins.
    assert client.get("/api/v1/audit").status_code == 403
    assert client.get("/api/v1/audit", headers=auth()).status_code == 200


def test_tokens_never_reach_responses_or_logs(client: TestClient, runtime, caplog):
    caplog.set_level(logging.DEBUG)
    incident_id = open_incident_id(runtime)
    wrong = "wrong-token-Xy7Ak2Lm9Qp4"
    responses = [
        client.post(f"/api/v1/incidents/{incident_id}/ack", json={}, headers=auth(t))
        for t in (ADMIN, READER, wrong)
    ]
    responses.append(client.post("/api/v1/silences", json={"x": 1}, headers=auth()))
    responses.append(client.get("/api/v1/incidents", headers=auth(READER)))
    assert [r.status_code for r in responses] == [200, 403, 401, 422, 200]
    for response in responses:
        text = response.text + json.dumps(dict(response.headers))
        for token in (ADMIN, READER, wrong):
            assert token not in text
    assert caplog.records, "refusals should be logged"
    for token in (ADMIN, READER, wrong):
        assert token not in caplog.text
    assert any("lacks the responder role" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ rate limiting


def test_rate_limit_per_token_with_retry_after(runtime, tokens, clock: FakeClock):
    app = create_app(runtime, tokens, rate_limit_per_s=1, burst=3, clock=clock)
    client = TestClient(app)
    incident_id = open_incident_id(runtime)
    url = f"/api/v1/incidents/{incident_id}/comment"

    def post(token: str = ADMIN):
        return client.post(url, json={"text": "update"}, headers=auth(token))

    assert [post().status_code for _ in range(3)] == [200, 200, 200]
    limited = post()
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert "rate limit" in limited.json()["error"]
    # Another token has its own bucket; reads by an admin token share its bucket.
    assert post(READER).status_code == 403
    assert client.get("/api/v1/slos", headers=auth()).status_code == 429
    clock.advance(1.0)
    assert post().status_code == 200
    assert post().status_code == 429
    comments = [e for e in runtime.get_incident(incident_id).timeline if e.kind == "commented"]
    assert len(comments) == 4


def test_unauthenticated_clients_are_limited_by_address(runtime, tokens, clock):
    public = Access(public_status_page=True)
    app = create_app(runtime, tokens, rate_limit_per_s=0.5, burst=2, clock=clock, access=public)
    client = TestClient(app)
    url = "/api/v1/silences"
    assert [client.post(url, json={}).status_code for _ in range(2)] == [401, 401]
    limited = client.post(url, json={})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    # A valid token is not held back by the anonymous bucket of the same address.
    assert client.get("/api/v1/silences", headers=auth()).status_code == 200
    # Probes, metrics and the public status page are never rate limited.
    for path in ("/healthz", "/readyz", "/metrics", "/status"):
        assert client.get(path).status_code == 200, path


# ------------------------------------------------------------------ probes, metrics, errors


def test_healthz_and_readyz(
    client: TestClient,
    anonymous: TestClient,
    runtime: Runtime,
    source: SampleSource,
    clock: FakeClock,
):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "reasons": []}
    # The source goes away for a cycle, then no cycle runs for 5 minutes (interval 1m).
    source.down = "connection refused"
    clock.advance(60)
    runtime.run_cycle()
    clock.advance(300)
    degraded = client.get("/readyz")
    assert degraded.status_code == 503
    assert degraded.json() == {
        "ready": False,
        "reasons": [
            "last evaluation cycle finished 300s ago (more than 3 intervals of 1m)",
            "source unreachable: connection refused",
        ],
    }
    # Probes answer anonymous callers too, but the reasons (backends, addresses) are for
    # authenticated ones.
    assert anonymous.get("/readyz").status_code == 503
    assert anonymous.get("/readyz").json() == {
        "ready": False,
        "reasons": ["not ready; the reasons are shown to authenticated callers"],
    }
    assert anonymous.get("/readyz", headers=auth("bogus-token-123456")).json()["reasons"] == [
        "not ready; the reasons are shown to authenticated callers"
    ]
    assert client.get("/healthz").status_code == 200  # alive even when not ready
    assert anonymous.get("/healthz").status_code == 200


def test_metrics_parse_with_prometheus_client(client: TestClient):
    client.get("/api/v1/slos")
    client.get("/random-path-1")
    client.request("BREW", "/random-path-2")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    status = {
        (s.labels["slo"], s.labels["status"]): s.value
        for s in families["slo_engine_slo_status"].samples
    }
    assert status[("api/availability", "page")] == 1
    assert status[("api/availability", "ok")] == 0
    requests = [
        s
        for s in families["slo_engine_api_requests"].samples
        if s.name == "slo_engine_api_requests_total"
    ]
    assert any(
        s.labels == {"method": "GET", "route": "/api/v1/slos", "code": "200"} and s.value == 1
        for s in requests
    )
    # Client-chosen paths and methods do not become label values.
    assert not [s for s in requests if "random" in s.labels["route"]]
    assert {s.labels["method"] for s in requests} <= {"GET", "other"}
    assert any(s.labels["route"] == "unmatched" for s in requests)


def test_readiness_failure_and_unexpected_errors_leak_nothing(
    tokens, runtime, clock, caplog, monkeypatch
):
    # The runtime fails in ways it should not: the API still answers without internals.
    def slo_results():
        raise RuntimeError("database at /secret/path/incidents.sqlite3 is corrupt")

    def readiness():
        raise OSError("disk /secret/path gone")

    monkeypatch.setattr(runtime, "slo_results", slo_results)
    monkeypatch.setattr(runtime, "readiness", readiness)
    client = TestClient(
        create_app(runtime, tokens, clock=clock),
        raise_server_exceptions=False,
        headers=auth(READER),
    )
    response = client.get("/api/v1/slos")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error — see the slo-engine log"}
    assert response.headers["Content-Security-Policy"] == STRICT_CSP
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["readiness check failed; see the slo-engine log"]
    for r in (response, ready):
        assert "secret" not in r.text and "Traceback" not in r.text
    assert "corrupt" in caplog.text  # the operator sees it in the log


def test_unknown_route_and_method_are_json(client: TestClient):
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong_method = client.put("/api/v1/slos")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_security_headers_on_every_kind_of_response(
    client: TestClient, anonymous: TestClient, runtime
):
    incident_id = open_incident_id(runtime)
    responses = [
        client.get("/api/v1/slos"),
        client.get("/status"),
        client.get("/static/status.css"),
        client.get("/metrics"),
        client.get("/nope"),
        anonymous.post(f"/api/v1/incidents/{incident_id}/ack", json={}),
        anonymous.get("/api/v1/slos"),
        client.post("/api/v1/silences", json={}, headers=auth()),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 404, 401, 401, 422]
    for response in responses:
        assert response.headers["Content-Security-Policy"] == STRICT_CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        # Plain HTTP: no HSTS (RFC 6797 §7.2), but every answer has a request id.
        assert "Strict-Transport-Security" not in response.headers
        assert len(response.headers["X-Request-Id"]) == 32
    # A client's own request id is kept when it is a plain token, replaced otherwise.
    assert client.get("/healthz", headers={"X-Request-Id": "req-42"}).headers["X-Request-Id"] == (
        "req-42"
    )
    assert client.get("/healthz", headers={"X-Request-Id": "a b\tc"}).headers["X-Request-Id"] != (
        "a b\tc"
    )


def test_openapi_lists_every_route_with_auth_and_idempotency(client: TestClient):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/api/v1/slos",
        "/api/v1/slos/{service}/{slo}",
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}",
        "/api/v1/incidents/{incident_id}/ack",
        "/api/v1/incidents/{incident_id}/resolve",
        "/api/v1/incidents/{incident_id}/comment",
        "/api/v1/silences",
        "/api/v1/silences/{silence_id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/status",
    }
    assert set(paths["/api/v1/silences"]) == {"get", "post"}
    ack = paths["/api/v1/incidents/{incident_id}/ack"]["post"]
    assert ack["security"] == [{"HTTPBearer": []}]
    assert {p["name"] for p in ack["parameters"]} == {"incident_id", "Idempotency-Key"}
    assert {"401", "403", "409", "422", "429"} <= set(ack["responses"])
    # Reads need a token too (the read role).
    assert paths["/api/v1/slos"]["get"]["security"] == [{"HTTPBearer": []}]
    assert paths["/api/v1/audit"]["get"]["security"] == [{"HTTPBearer": []}]
    status_param = next(
        p for p in paths["/api/v1/incidents"]["get"]["parameters"] if p["name"] == "status"
    )
    assert "resolved" in json.dumps(status_param["schema"])
    assert spec["components"]["schemas"]["SilenceRequest"]["additionalProperties"] is False


def test_docs_are_off_by_default_and_load_nothing_from_outside(runtime, tokens, clock):
    assert TestClient(create_app(runtime, tokens, clock=clock)).get("/docs").status_code == 404
    client = TestClient(create_app(runtime, tokens, clock=clock, docs_page=True))
    response = client.get("/docs")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp and "http" not in csp
    assert "'sha256-" not in csp and "frame-ancestors 'self'" in csp
    # Every asset the page names is served here, from the swagger-ui-bundle package.
    assert "<script>" not in response.text and "//" not in response.text.replace("<!doctype", "")
    for asset in (
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/static/swagger-init.js",
    ):
        assert asset in response.text
        assert client.get(asset).status_code == 200, asset
    assert client.get("/docs/assets/index.html").status_code == 422  # nothing else of it


def test_root_redirects_to_status_page(client: TestClient):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/status"


def test_hostile_strings_come_back_as_json_strings(client: TestClient, runtime):
    incident_id = open_incident_id(runtime)
    payload = "<script>document.title='pwned'</script>\"onerror=alert(1)"
    response = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        json={"text": payload},
        headers=auth(),
    )
    assert response.headers["content-type"] == "application/json"
    assert response.json()["timeline"][-1]["message"] == payload


def test_spec_description_travels_unchanged_through_the_json(tmp_path, tokens, clock):
    specs = specs_with_descriptions(
        tmp_path / "specs", {"api/availability": '<b>bold</b> & "quoted"'}
    )
    runtime = sample_runtime(tmp_path, clock, T0, specs=specs)
    try:
        client = TestClient(create_app(runtime, tokens, clock=clock), headers=auth(READER))
        # The evaluate contract has no description; the status page shows it (escaped).
        assert "description" not in client.get("/api/v1/slos/api/availability").json()
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;" in client.get("/status").text
    finally:
        runtime.close()


def test_unparseable_bodies_are_refused_before_validation_without_a_token(runtime, tokens, clock):
    client = TestClient(create_app(runtime, tokens, rate_limit_per_s=1, burst=3, clock=clock))
    junk = {"content": b'{"note": ', "headers": {"Content-Type": "application/json"}}
    url = f"/api/v1/incidents/{open_incident_id(runtime)}/ack"
    anonymous = client.post(url, **junk)
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "missing bearer token"}
    read_only = client.post(
        url, content=junk["content"], headers={**junk["headers"], **auth(READER)}
    )
    assert read_only.status_code == 403
    admin = client.post(url, content=junk["content"], headers={**junk["headers"], **auth()})
    assert admin.status_code == 422 and "JSON" in admin.json()["error"]
    # Each request counted once against its bucket: the admin's burst of 3 has 2 left.
    assert client.post(url, json={"nope": 1}, headers=auth()).status_code == 422
    assert client.post(url, json={}, headers=auth()).status_code == 200
    assert client.post(url, json={}, headers=auth()).status_code == 429
