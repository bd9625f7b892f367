"""Incident response (issue 11) through the HTTP API and the CLI against the daemon's REAL
Runtime (harness.api_runtime: spec files, SQLite state in tmp_path, a scripted source) with a
fake clock, and real webhook receivers on loopback (engine.demo.webhook_sink):

declare a SEV1 security incident (visible to admins only), walk it through every status
with notes, change its severity both ways, assign all four roles; the escalation chain at
0/30/60/120 minutes and the CTO at once for a customer-facing SEV1; an RTO breach notifies
(and counts in /metrics); a due update reminds; a posted update reaches a webhook and the
public status page; the review draft holds the real timeline; action items and the review
state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, SampleSource, daemon_config, spec_documents, write_specs
from harness.incidents import T0
from typer.testing import CliRunner

from engine.api.app import create_app
from engine.api.deps import Access
from engine.api.security import load_tokens
from engine.cli import _register, app
from engine.daemon.runtime import Runtime
from engine.demo.webhook_sink import WebhookSink

ADMIN = "admin-token-Zq8w3n5v9k2m"
READER = "reader-token-Hp4t7y1u6r0e"
MIN = 60.0
CHAIN = ["team-lead", "engineering-manager", "vp-engineering", "cto"]

_register()


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def make_runtime(
    tmp_path: Path, sink: WebhookSink, clock: FakeClock, specs: Path | None = None
) -> Runtime:
    """The daemon's Runtime: every escalation level a webhook of its own (/team-lead…), the
    catch-all webhook for the severities' pages (/hook), reviews for SEV1/SEV2, a runbook
    index; one all-ok cycle at the clock's time so the specs' services are known."""
    base = f"http://127.0.0.1:{sink.port}"
    settings: dict[str, Any] = {
        "webhooks": [sink.url],
        "notifiers": {name: {"type": "webhook", "url": f"{base}/{name}"} for name in CHAIN},
        "incidents": {
            "dependency_wait": "0s",
            "receivers": [{"name": name, "severities": []} for name in CHAIN],
            "review_severities": ["SEV1", "SEV2"],
            "runbooks": [
                {"url": "https://runbooks.example/index"},
                {"category": "security", "url": "https://runbooks.example/security-incident"},
            ],
        },
    }
    config = daemon_config(tmp_path, **settings, **({} if specs is None else {"specs": specs}))
    runtime = Runtime(config, clock=clock, source=SampleSource(clock.now))
    runtime.run_cycle(clock.now)
    return runtime


def client_for(runtime: Runtime, tmp_path: Path, clock: FakeClock) -> TestClient:
    tokens = tmp_path / "api-tokens"
    tokens.write_text(f"{ADMIN}\n{READER} read-only\n")
    app_ = create_app(
        runtime,
        load_tokens(tokens),
        rate_limit_per_s=1000,
        burst=1000,
        clock=clock,
        access=Access(public_status_page=True),
    )
    return TestClient(app_, raise_server_exceptions=False)


def delivered(runtime: Runtime, sink: WebhookSink, path: str, event: str) -> list[dict[str, Any]]:
    assert runtime.wait_for_delivery(10)
    return [r.incident for r in sink.received if r.path == path and r.event == event]


def declare(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {
        "service": "api",
        "severity": "SEV1",
        "title": "API keys leaked in a public repository",
        "category": "security",
        **fields,
    }
    answer = client.post("/api/v1/incidents", json=body, headers=auth())
    assert answer.status_code == 201, answer.text
    return answer.json()


# ------------------------------------------------------------------ escalation


def test_escalation_chain_fires_at_0_30_60_120_minutes(tmp_path, sink):
    clock = FakeClock(T0)
    runtime = make_runtime(tmp_path, sink, clock)
    try:
        client = client_for(runtime, tmp_path, clock)
        incident = declare(client, customer_facing=False)
        fired = {0: [r for r in CHAIN if delivered(runtime, sink, f"/{r}", "escalated")]}
        for minute in range(1, 131):
            clock.now = T0 + minute * MIN
            decision = runtime.tick()
            assert decision is not None
            told = [n.receiver for n in decision.notifications if n.event == "escalated"]
            if told:
                fired[minute] = told
        assert fired == {
            0: ["team-lead"],
            30: ["engineering-manager"],
            60: ["vp-engineering"],
            120: ["cto"],
        }
        for name in CHAIN:
            (page,) = delivered(runtime, sink, f"/{name}", "escalated")
            assert page["id"] == incident["id"] and page["escalation_level"] >= 1
    finally:
        runtime.close()


def test_customer_facing_sev1_calls_the_cto_at_once(tmp_path, sink):
    documents = spec_documents()
    documents["api.yaml"]["customer_facing"] = True  # the service flag in the spec
    specs = write_specs(tmp_path / "specs", documents)
    clock = FakeClock(T0)
    runtime = make_runtime(tmp_path, sink, clock, specs)
    try:
        client = client_for(runtime, tmp_path, clock)
        incident = declare(client, category="availability", title="checkout down")
        assert incident["customer_facing"] is True and incident["escalated_early"] == ["cto"]
        assert delivered(runtime, sink, "/cto", "escalated")
        assert delivered(runtime, sink, "/team-lead", "escalated")
        assert not delivered(runtime, sink, "/engineering-manager", "escalated")
    finally:
        runtime.close()


# ------------------------------------------------------------------ the whole walk


def test_a_sev1_security_incident_walked_through_the_runbook(tmp_path, sink):
    clock = FakeClock(T0)
    runtime = make_runtime(tmp_path, sink, clock)
    try:
        client = client_for(runtime, tmp_path, clock)
        _declared_and_hidden(client, runtime, sink)
        incident_id = "INC-2024-0001"
        _roles_and_severity(client, incident_id, clock)
        _reminder_update_and_status_page(client, runtime, sink, incident_id, clock)
        _rto_breach(client, runtime, sink, incident_id, clock)
        _resolved_review_and_action_items(client, incident_id, clock)
    finally:
        runtime.close()


def _declared_and_hidden(client: TestClient, runtime: Runtime, sink: WebhookSink) -> None:
    refused = client.post(
        "/api/v1/incidents",
        json={"service": "api", "severity": "SEV1", "title": "x", "category": "security"},
    )
    assert refused.status_code == 401
    # The actor comes from the identity, never from the body.
    with_by = client.post(
        "/api/v1/incidents",
        json={
            "service": "api",
            "severity": "SEV1",
            "title": "x",
            "category": "security",
            "by": "m",
        },
        headers=auth(),
    )
    assert with_by.status_code == 422
    incident = declare(client, note="reported by a scanner")
    assert incident["id"] == "INC-2024-0001" and incident["category"] == "security"
    opened = incident["timeline"][0]
    assert opened["kind"] == "opened" and opened["actor"].startswith("token:")
    assert incident["runbook_url"] == "https://runbooks.example/security-incident"
    assert incident["tier"] == "critical" and incident["recovery"]["objective_seconds"] == 3600
    # Security incidents: the security role only (a bare token has every role); anonymous
    # reads are refused before anything is looked up.
    path = f"/api/v1/incidents/{incident['id']}"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(READER)).status_code == 404
    assert client.get(path, headers=auth()).status_code == 200
    listed = client.get("/api/v1/incidents", headers=auth(READER)).json()["incidents"]
    assert incident["id"] not in [i["id"] for i in listed]
    assert client.get(path + "/review", headers=auth(READER)).status_code == 404
    assert incident["id"] not in client.get("/status").text
    (page,) = delivered(runtime, sink, "/hook", "triggered")
    assert page["id"] == incident["id"] and page["category"] == "security"


def _roles_and_severity(client: TestClient, incident_id: str, clock: FakeClock) -> None:
    base = f"/api/v1/incidents/{incident_id}"
    clock.now = T0 + MIN
    for role, person in [
        ("incident_commander", "erin"),
        ("technical_lead", "bob"),
        ("communications_lead", "carol"),
        ("security_lead", "dave"),
    ]:
        answer = client.post(f"{base}/roles", json={"role": role, "person": person}, headers=auth())
        assert answer.status_code == 200, answer.text
    assert answer.json()["roles"] == {
        "incident_commander": "erin",
        "technical_lead": "bob",
        "communications_lead": "carol",
        "security_lead": "dave",
    }
    clock.now = T0 + 2 * MIN
    down = client.post(
        f"{base}/severity", json={"severity": "SEV2", "reason": "one key only"}, headers=auth()
    )
    clock.now = T0 + 3 * MIN
    up = client.post(
        f"{base}/severity", json={"severity": "SEV1", "reason": "key was used"}, headers=auth()
    )
    assert (down.json()["severity"], up.json()["severity"]) == ("SEV2", "SEV1")
    changes = [e for e in up.json()["timeline"] if e["kind"] == "severity_changed"]
    assert [(e["data"]["to"], e["message"]) for e in changes] == [
        ("SEV2", "severity SEV1 → SEV2: one key only"),
        ("SEV1", "severity SEV2 → SEV1: key was used"),
    ]
    clock.now = T0 + 5 * MIN
    status = client.post(
        f"{base}/status", json={"status": "mitigating", "note": "keys revoked"}, headers=auth()
    )
    assert status.json()["status"] == "mitigating"
    assert (
        client.post(f"{base}/status", json={"status": "monitoring"}, headers=auth()).status_code
        == 422
    )


def _reminder_update_and_status_page(
    client: TestClient, runtime: Runtime, sink: WebhookSink, incident_id: str, clock: FakeClock
) -> None:
    base = f"/api/v1/incidents/{incident_id}"
    # SEV1: an update every 30 min, counted from the last status change (5 min).
    clock.now = T0 + 34 * MIN
    assert not [e for e in runtime.tick().timeline if e.entry.kind == "update_due"]
    clock.now = T0 + 35 * MIN
    due = runtime.tick()
    (entry,) = [r.entry for r in due.timeline if r.entry.kind == "update_due"]
    assert entry.data["person"] == "carol"
    reminders = [n for n in due.notifications if n.event == "updated"]
    assert reminders and all(
        "UPDATE DUE — carol (communications lead)" in n.message for n in reminders
    )
    assert delivered(runtime, sink, "/hook", "updated")
    clock.now = T0 + 40 * MIN
    update = {
        "impact": "3 API keys exposed for 20 minutes",
        "current_actions": "rotating every key, scanning the logs",
        "expected_resolution": "01:30 UTC",
        "next_update": "20m",
        "customer_message": "We are rotating API keys as a precaution.",
        "public": True,
    }
    posted = client.post(f"{base}/updates", json=update, headers=auth())
    assert posted.status_code == 200, posted.text
    latest = posted.json()["latest_update"]
    assert latest["impact"] == update["impact"] and latest["by"].startswith("token:")
    sent = [u["latest_update"] for u in delivered(runtime, sink, "/hook", "updated")]
    assert sent[-1]["expected_resolution"] == "01:30 UTC"
    outbox = [i.notification for i in runtime.store.outbox_items() if i.receiver == "webhook-1"]
    message = outbox[-1].message.splitlines()
    for line in (
        "Impact: 3 API keys exposed for 20 minutes",
        "Current actions: rotating every key, scanning the logs",
        "Expected resolution: 01:30 UTC",
        "Next update: by 2024-03-01 01:00 UTC",
        "Incident commander: erin",
        "Communications lead: carol",
    ):
        assert line in message
    page = client.get("/status").text
    assert "We are rotating API keys as a precaution." in page
    assert "API keys leaked" not in page  # a security incident's summary stays internal
    internal = client.get("/status", headers=auth()).text
    assert "carol" in internal and "recovery time objective" in internal
    updates = client.get(f"{base}/updates", headers=auth()).json()["updates"]
    assert [u["impact"] for u in updates] == [update["impact"]]
    clock.now = T0 + 45 * MIN
    client.post(
        f"{base}/status", json={"status": "monitoring", "note": "no new use"}, headers=auth()
    )


def _rto_breach(
    client: TestClient, runtime: Runtime, sink: WebhookSink, incident_id: str, clock: FakeClock
) -> None:
    clock.now = T0 + 60 * MIN
    breach = runtime.tick()
    kinds = [r.entry.kind for r in breach.timeline]
    assert "rto_breached" in kinds
    # The chain had stopped (mitigating): the missed RTO brings in its next level.
    assert [n.receiver for n in breach.notifications if n.event == "escalated"] == [
        "engineering-manager"
    ]
    assert any("RECOVERY TIME OBJECTIVE MISSED" in n.message for n in breach.notifications)
    assert delivered(runtime, sink, "/engineering-manager", "escalated")
    shown = client.get(f"/api/v1/incidents/{incident_id}", headers=auth()).json()
    assert shown["recovery"]["remaining_seconds"] == 0 and shown["rto_breached_at"] == clock.now
    metrics = client.get("/metrics").text
    assert 'slo_engine_incident_rto_breaches_total{severity="SEV1",tier="critical"} 1.0' in metrics
    assert 'slo_engine_incidents_past_rto{severity="SEV1"} 1.0' in metrics


def _resolved_review_and_action_items(
    client: TestClient, incident_id: str, clock: FakeClock
) -> None:
    base = f"/api/v1/incidents/{incident_id}"
    clock.now = T0 + 70 * MIN
    resolved = client.post(
        f"{base}/status", json={"status": "resolved", "note": "all keys rotated"}, headers=auth()
    ).json()
    assert resolved["status"] == "review" and resolved["recovery"]["met"] is False
    assert resolved["recovery"]["time_to_restore_seconds"] == 70 * MIN
    added = client.post(
        f"{base}/actions", json={"text": "scan repos for secrets", "owner": "bob"}, headers=auth()
    )
    assert added.status_code == 201
    done = client.patch(f"{base}/actions/AI-1", json={"status": "done"}, headers=auth()).json()
    assert [(a["id"], a["status"], a["owner"]) for a in done["action_items"]] == [
        ("AI-1", "done", "bob")
    ]
    assert (
        client.patch(f"{base}/actions/AI-7", json={"status": "done"}, headers=auth()).status_code
        == 404
    )
    draft = client.get(f"{base}/review", headers=auth()).json()
    kinds = [e["kind"] for e in draft["timeline"]]
    for kind in (
        "detection",
        "escalation",
        "role",
        "severity",
        "status",
        "update due",
        "update",
        "recovery time objective",
        "resolution",
    ):
        assert kind in kinds, kind
    statuses = [e["message"] for e in draft["timeline"] if e["kind"] == "status"]
    assert statuses == [
        "status investigating → mitigating: keys revoked",
        "status mitigating → monitoring: no new use",
    ]
    assert draft["impact"]["rto_met"] is False and draft["impact"]["rto_breached"] is True
    assert {r["name"] for r in draft["responders"]} >= {"erin", "bob", "carol", "dave"}
    markdown = client.get(f"{base}/review?format=md", headers=auth())
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "- [x] AI-1 scan repos for secrets — bob" in markdown.text
    assert "keys revoked" in markdown.text
    closed = client.post(f"{base}/review/close", json={"note": "doc linked"}, headers=auth())
    assert closed.json()["status"] == "resolved"
    assert client.post(f"{base}/review/close", json={}, headers=auth()).status_code == 409


# ------------------------------------------------------------------ the CLI


def _cli(*args: Any) -> Any:
    result = CliRunner().invoke(app, ["incidents", *map(str, args)])
    return result


def test_the_cli_against_a_running_daemon(tmp_path, sink):
    # The CLI decides at the wall clock: so does this daemon.
    clock = FakeClock(time.time())
    runtime = make_runtime(tmp_path, sink, clock)
    try:
        state = tmp_path / "state"
        config = tmp_path / "incidents.yaml"
        config.write_text(yaml.safe_dump(runtime.config.incident_config().model_dump(mode="json")))
        common = ["--state-dir", state, "--config", config, "--by", "alice"]
        declared = _cli(
            "declare",
            "--service",
            "api",
            "--severity",
            "SEV1",
            "--title",
            "DDoS on the edge",
            "--category",
            "availability",
            "--customer-facing",
            *common,
            "--format",
            "json",
        )
        assert declared.exit_code == 0, declared.output
        incident_id = json.loads(declared.output)["incident"]["id"]
        steps = [
            ("assign", incident_id, "technical-lead", "bob"),
            ("assign", incident_id, "communications-lead", "carol"),
            ("assign", incident_id, "security-lead", "dave"),
            ("assign", incident_id, "ic", "erin"),
            ("severity", incident_id, "SEV2", "--reason", "edge absorbs it"),
            ("severity", incident_id, "SEV1", "--reason", "origin saturated"),
            ("status", incident_id, "mitigating", "--note", "rate limits on"),
            (
                "update",
                incident_id,
                "--impact",
                "20 % of requests fail",
                "--actions",
                "scrubbing traffic",
                "--expected-resolution",
                "within the hour",
                "--public",
                "--customer-message",
                "Some requests fail; we are mitigating.",
            ),
            ("status", incident_id, "monitoring", "--note", "traffic normal"),
            ("status", incident_id, "resolved", "--note", "attack over"),
        ]
        for step in steps:
            result = _cli(*step, *common)
            assert result.exit_code == 0, (step, result.output)
        assert _cli("status", incident_id, "mitigating", *common).exit_code != 0  # no note
        assert _cli("status", "INC-1999-0001", "mitigating", "--note", "x", *common).exit_code == 1
        added = _cli(
            "action",
            "add",
            incident_id,
            "add edge rate limits",
            "--owner",
            "bob",
            "--state-dir",
            state,
        )
        assert added.exit_code == 0 and "AI-1" in added.output
        assert _cli("action", "done", incident_id, "AI-1", "--state-dir", state).exit_code == 0
        review = _cli("review", incident_id, "--state-dir", state, "--format", "md")
        assert review.exit_code == 0
        assert review.output.startswith(f"# Post-incident review: {incident_id} — DDoS")
        for text in (
            "rate limits on",
            "edge absorbs it",
            "origin saturated",
            "Technical lead: bob",
            "- [x] AI-1 add edge rate limits — bob",
        ):
            assert text in review.output, text
        shown = _cli("show", incident_id, "--state-dir", state)
        assert "technical lead" in shown.output and "bob" in shown.output
        assert _cli("close-review", incident_id, *common).exit_code == 0
        # The daemon picks up what the CLI did (stale state reloaded) and delivers it.
        clock.now = time.time()
        assert runtime.tick() is not None
        incident = runtime.get_incident(incident_id)
        assert incident is not None and incident.status.value == "resolved"
        assert incident.customer_facing and incident.escalated_early == ["cto"]
        updates = delivered(runtime, sink, "/hook", "updated")
        assert any(
            (u.get("latest_update") or {}).get("impact") == "20 % of requests fail" for u in updates
        )
        assert delivered(runtime, sink, "/cto", "escalated")
    finally:
        runtime.close()
