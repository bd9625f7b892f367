"""The API's OpenAPI document is a contract: valid OpenAPI, every operation named (stable,
unique operation ids), every answer described — and what the daemon's REAL Runtime answers
(harness.api_runtime: SQLite state, a scripted source, one cycle at T0) validates against it,
success and error bodies alike. tests/test_api_fuzz.py then lets schemathesis loose on it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, SampleSource, sample_runtime, scripted_runtime
from harness.incidents import T0
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime

ADMIN = "admin-token-Zq8w3n5v9k2m"
READER = "reader-token-Hp4t7y1u6r0e"

# Client code is generated from these names: renaming one breaks every client that uses it,
# so a change here is an API change (docs/api.md, "Operation ids").
OPERATION_IDS = {
    "GET /api/v1/slos": "listSlos",
    "GET /api/v1/slos/{service}/{slo}": "getSlo",
    "GET /api/v1/slos/{service}/{slo}/groups": "listSloGroups",
    "GET /api/v1/specs": "getSpecStatus",
    "GET /api/v1/gates/{service}": "getReleaseGate",
    "GET /api/v1/incidents": "listIncidents",
    "POST /api/v1/incidents": "declareIncident",
    "GET /api/v1/incidents/{incident_id}": "getIncident",
    "POST /api/v1/incidents/{incident_id}/ack": "acknowledgeIncident",
    "POST /api/v1/incidents/{incident_id}/resolve": "resolveIncident",
    "POST /api/v1/incidents/{incident_id}/comment": "commentOnIncident",
    "POST /api/v1/incidents/{incident_id}/status": "setIncidentStatus",
    "POST /api/v1/incidents/{incident_id}/severity": "setIncidentSeverity",
    "POST /api/v1/incidents/{incident_id}/roles": "assignIncidentRole",
    "POST /api/v1/incidents/{incident_id}/updates": "postIncidentUpdate",
    "GET /api/v1/incidents/{incident_id}/updates": "listIncidentUpdates",
    "GET /api/v1/incidents/{incident_id}/review": "getIncidentReview",
    "POST /api/v1/incidents/{incident_id}/actions": "addActionItem",
    "PATCH /api/v1/incidents/{incident_id}/actions/{item_id}": "changeActionItem",
    "POST /api/v1/incidents/{incident_id}/review/close": "closeIncidentReview",
    "GET /api/v1/silences": "listSilences",
    "POST /api/v1/silences": "addSilence",
    "DELETE /api/v1/silences/{silence_id}": "deleteSilence",
    "GET /api/v1/maintenance": "listMaintenance",
    "POST /api/v1/maintenance": "createMaintenance",
    "DELETE /api/v1/maintenance/{window_id}": "deleteMaintenance",
    "GET /api/v1/audit": "listAuditEntries",
    "GET /healthz": "getLiveness",
    "GET /readyz": "getReadiness",
    "GET /metrics": "getMetrics",
    "GET /status": "getStatusPage",
}
CAMEL_CASE = re.compile(r"^[a-z]+(?:[A-Z][a-z]+)*$")
ERROR_MODELS = {"#/components/schemas/ErrorBody", "#/components/schemas/InvalidRequestBody"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path_factory.mktemp("contract"), FakeClock(T0 + 600), T0)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def app(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tokens = tmp_path_factory.mktemp("tokens") / "api-tokens"
    tokens.write_text(f"{ADMIN} name=alice\n{READER} read-only\n")
    return create_app(
        runtime, load_tokens(tokens), rate_limit_per_s=1000, burst=1000, clock=runtime.clock
    )


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    # Anonymous, as a client generator fetches it.
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_the_document_is_valid_openapi(document: dict[str, Any]):
    validate(document)
    assert document["openapi"].startswith("3.")
    # The validator must be able to fail: a response without its required description.
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_operation_has_its_stable_unique_name(document: dict[str, Any]):
    named = {where: operation.get("operationId") for where, operation in operations(document)}
    assert named == OPERATION_IDS
    ids = list(named.values())
    assert len(ids) == len(set(ids))
    assert all(CAMEL_CASE.match(name) for name in ids), ids


def test_routes_left_out_of_the_document_are_named_too(app: Any):
    # The redirect and the Swagger UI pages are not in the document, but a route without a
    # name would get FastAPI's generated one the day it is included.
    unnamed = [r.path for r in app.routes if isinstance(r, APIRoute) and not r.operation_id]
    assert unnamed == []


def test_every_operation_describes_its_success_and_its_errors(document: dict[str, Any]):
    for where, operation in operations(document):
        responses = operation["responses"]
        successes = [code for code in responses if code.startswith("2")]
        assert successes, f"{where}: no 2xx response"
        for code in successes:
            content = responses[code].get("content", {})
            assert content, f"{where} {code}: no content described"
            for media, described in content.items():
                assert "schema" in described, f"{where} {code} {media}: no schema"
            if "application/json" in content:
                assert "$ref" in content["application/json"]["schema"], where
        for code, response in responses.items():
            if code.startswith(("4", "5")) and (where, code) not in {
                ("GET /readyz", "503"),  # the readiness body, not ready
                ("GET /api/v1/gates/{service}", "423"),  # the gate's decision, closed
            }:
                schema = response["content"]["application/json"]["schema"]
                assert schema.get("$ref") in ERROR_MODELS, f"{where} {code}: {schema}"
        # Everything behind a role documents its refusals.
        if operation.get("security"):
            assert {"401", "403", "429"} <= set(responses), where


# ---------------------------------------------------------------------- real answers


class Contract:
    """Validates real answers against the document's response schemas."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.checked: set[tuple[str, str]] = set()

    def check(self, operation_id: str, response: Any) -> Any:
        operation = next(
            op for _, op in operations(self.document) if op["operationId"] == operation_id
        )
        described = operation["responses"].get(str(response.status_code))
        assert described is not None, f"{operation_id}: {response.status_code} not documented"
        media = response.headers["content-type"].split(";")[0]
        schema = described["content"][media]["schema"]
        body = response.json() if media == "application/json" else response.text
        # The components travel along so that the schema's $refs resolve.
        validator = OAS31Validator({**schema, "components": self.document["components"]})
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], f"{operation_id} {response.status_code}: {errors}"
        self.checked.add((operation_id, str(response.status_code)))
        return body


@pytest.fixture
def contract(document: dict[str, Any]) -> Contract:
    return Contract(document)


def test_the_validation_can_fail(contract: Contract, app: Any):
    # A real answer held against another operation's schema must not pass.
    slos = TestClient(app, headers={"Authorization": f"Bearer {READER}"}).get("/api/v1/slos")
    with pytest.raises(AssertionError, match="required property"):
        contract.check("getSpecStatus", slos)


def test_reads_answer_what_the_document_says(contract: Contract, app: Any, runtime: Runtime):
    client = TestClient(app, headers={"Authorization": f"Bearer {READER}"})
    slos = contract.check("listSlos", client.get("/api/v1/slos"))["slos"]
    statuses = {s["status"] for s in slos}
    assert {"page", "ticket", "ok", "no_data"} <= statuses
    for slo in slos:
        contract.check("getSlo", client.get(f"/api/v1/slos/{slo['id']}"))
    for service in sorted({s["service"] for s in slos}):
        contract.check("getReleaseGate", client.get(f"/api/v1/gates/{service}"))
    contract.check("getSpecStatus", client.get("/api/v1/specs"))
    listed = contract.check("listIncidents", client.get("/api/v1/incidents"))["incidents"]
    assert listed, "the sample cycle opens incidents"
    for incident in listed:
        contract.check("getIncident", client.get(f"/api/v1/incidents/{incident['id']}"))
        contract.check(
            "listIncidentUpdates", client.get(f"/api/v1/incidents/{incident['id']}/updates")
        )
        contract.check(
            "getIncidentReview", client.get(f"/api/v1/incidents/{incident['id']}/review")
        )
        markdown = client.get(f"/api/v1/incidents/{incident['id']}/review?format=md")
        assert contract.check("getIncidentReview", markdown).startswith("#")
    contract.check("listSilences", client.get("/api/v1/silences"))
    contract.check("getLiveness", client.get("/healthz"))
    contract.check("getReadiness", client.get("/readyz"))
    assert "slo_engine" in contract.check("getMetrics", client.get("/metrics"))
    assert "<html" in contract.check("getStatusPage", client.get("/status"))
    # Errors: not found, invalid parameters, no token, a read-only token changing something.
    contract.check("getSlo", client.get("/api/v1/slos/nope/nope"))
    contract.check("getIncident", client.get("/api/v1/incidents/INC-2024-9999"))
    contract.check("listIncidents", client.get("/api/v1/incidents?limit=0"))
    contract.check("listSlos", TestClient(app).get("/api/v1/slos"))
    contract.check("addSilence", client.post("/api/v1/silences", json={}))
    contract.check("listAuditEntries", client.get("/api/v1/audit"))
    assert {code for _, code in contract.checked} >= {"200", "401", "403", "404", "422"}


def test_incident_response_answers_what_the_document_says(contract: Contract, app: Any):
    client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"})
    declared = contract.check(
        "declareIncident",
        client.post(
            "/api/v1/incidents",
            json={
                "service": "api",
                "severity": "SEV2",
                "title": "Leaked deploy key",
                "category": "data",
                "customer_facing": True,
                "tier": "critical",
            },
        ),
    )
    base = f"/api/v1/incidents/{declared['id']}"
    contract.check("acknowledgeIncident", client.post(f"{base}/ack"))
    contract.check("commentOnIncident", client.post(f"{base}/comment", json={"text": "on it"}))
    contract.check(
        "assignIncidentRole",
        client.post(f"{base}/roles", json={"role": "communications_lead", "person": "bob"}),
    )
    contract.check(
        "setIncidentSeverity",
        client.post(f"{base}/severity", json={"severity": "SEV1", "reason": "customers see it"}),
    )
    contract.check(
        "postIncidentUpdate",
        client.post(
            f"{base}/updates",
            json={
                "impact": "Deploys paused",
                "current_actions": "Rotating the key",
                "expected_resolution": "within the hour",
                "customer_message": "Deploys are paused while we rotate a key.",
            },
        ),
    )
    updates = contract.check("listIncidentUpdates", client.get(f"{base}/updates"))
    assert len(updates["updates"]) == 1
    item = contract.check(
        "addActionItem",
        client.post(f"{base}/actions", json={"text": "Scan for other keys", "owner": "bob"}),
    )["action_items"][0]
    contract.check(
        "changeActionItem", client.patch(f"{base}/actions/{item['id']}", json={"status": "done"})
    )
    contract.check(
        "setIncidentStatus",
        client.post(f"{base}/status", json={"status": "mitigating", "note": "key revoked"}),
    )
    resolved = contract.check("resolveIncident", client.post(f"{base}/resolve", json={}))
    review = contract.check("getIncidentReview", client.get(f"{base}/review"))
    assert review["incident"]["id"] == declared["id"]
    if resolved["status"] == "review":
        contract.check("closeIncidentReview", client.post(f"{base}/review/close", json={}))
    # Not possible any more: a conflict, in the error body.
    contract.check("acknowledgeIncident", client.post(f"{base}/ack"))
    contract.check("resolveIncident", client.post(f"{base}/resolve", json={}))
    assert ("resolveIncident", "409") in contract.checked


def test_silences_and_the_audit_log_answer_what_the_document_says(contract: Contract, app: Any):
    client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"})
    silence = contract.check(
        "addSilence",
        client.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "service", "value": "api"}],
                "duration": "1h",
                "comment": "maintenance",
            },
        ),
    )
    listed = contract.check("listSilences", client.get("/api/v1/silences"))["silences"]
    assert silence["id"] in {s["id"] for s in listed}
    contract.check("deleteSilence", client.delete(f"/api/v1/silences/{silence['id']}"))
    contract.check("deleteSilence", client.delete("/api/v1/silences/no-such-silence"))
    entries = contract.check("listAuditEntries", client.get("/api/v1/audit"))["entries"]
    assert any(e["action"] == "POST /api/v1/silences" for e in entries)


def test_maintenance_windows_answer_what_the_document_says(contract: Contract, app: Any):
    client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"})
    now = T0 + 600
    window = contract.check(
        "createMaintenance",
        client.post(
            "/api/v1/maintenance",
            json={
                "matchers": {"service": "api"},
                "start": now + 3600,
                "end": now + 7200,
                "reason": "database upgrade",
            },
        ),
    )
    listed = contract.check("listMaintenance", client.get("/api/v1/maintenance?all=true"))
    assert window["id"] in {w["id"] for w in listed["windows"]}
    contract.check("deleteMaintenance", client.delete(f"/api/v1/maintenance/{window['id']}"))
    contract.check("deleteMaintenance", client.delete(f"/api/v1/maintenance/{window['id']}"))
    contract.check("createMaintenance", client.post("/api/v1/maintenance", json={}))
    assert {("deleteMaintenance", "409"), ("createMaintenance", "422")} <= contract.checked


def test_a_not_ready_daemon_answers_the_readiness_body(contract: Contract, tmp_path: Path):
    # A daemon that has not run a cycle yet is not ready: 503, the same body.
    runtime = scripted_runtime(tmp_path, FakeClock(T0), SampleSource(T0))
    try:
        response = TestClient(create_app(runtime, [])).get("/readyz")
        body = contract.check("getReadiness", response)
    finally:
        runtime.close()
    assert response.status_code == 503 and body["ready"] is False


def test_a_body_that_cannot_be_decoded_is_refused_to_strangers_first(contract: Contract, app: Any):
    # Found by tests/test_api_fuzz.py: a body that is not UTF-8 failed to parse before the
    # token was checked, so a stranger got FastAPI's 400 instead of the 401.
    path = "/api/v1/incidents/INC-2024-0001/comment"
    undecodable = b'{"text": "\xff"}'
    json_type = {"Content-Type": "application/json"}
    stranger = TestClient(app).post(path, content=undecodable, headers=json_type)
    assert contract.check("commentOnIncident", stranger) == {"error": "missing bearer token"}
    assert stranger.status_code == 401
    wrong = {**json_type, "Authorization": "Bearer not-a-token"}
    assert TestClient(app).post(path, content=undecodable, headers=wrong).status_code == 401
    admin = {**json_type, "Authorization": f"Bearer {ADMIN}"}
    answer = TestClient(app).post(path, content=undecodable, headers=admin)
    assert answer.status_code == 400
    assert contract.check("commentOnIncident", answer)["error"].startswith("invalid request: body")
