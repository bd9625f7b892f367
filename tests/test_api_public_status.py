"""The customer-facing status page (`public_status_page: true`) against the internal view,
field by field: anonymous visitors see what the customer template shows — never a
responder's name, an internal note, the alert's summary, a role, a recovery objective or a
runbook; readers see all of it. Without the setting, anonymous visitors get a 401."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, daemon_config, sample_runtime
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.deps import Access
from engine.api.routers.status_page import notice
from engine.api.security import load_tokens
from engine.api.status_page import IncidentCard, build_view
from engine.daemon.runtime import Runtime
from engine.incidents.response import UpdateContent

READER = "reader-token-Hp4t7y1u6r0e"
NOTE = "internal: failing over db-primary-2 in eu-west-3"
IMPACT = "4 % of checkout requests fail for EU tenants"
ACTIONS = "draining eu-west-3, paging the database team"
CUSTOMER = "Some payments in Europe fail; we are moving traffic to another region."
COMMENT = "Traffic moved; error rate falling."
# Fields the public card leaves empty, and those it shares with the internal one.
INTERNAL_ONLY = {"summary", "roles", "recovery", "runbook"}
SHARED = {"id", "service", "severity", "status", "opened", "notice"}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    clock = FakeClock(T0 + 600)
    runtime = sample_runtime(tmp_path, clock, T0)
    (incident,) = runtime.list_incidents("investigating", None)
    runtime.assign_role(incident.id, "incident_commander", "erin.commander", "alice")
    runtime.assign_role(incident.id, "communications_lead", "carol.comms", "alice")
    runtime.set_status(incident.id, "mitigating", "alice", NOTE)
    runtime.post_update(
        incident.id,
        "alice",
        UpdateContent(IMPACT, ACTIONS, "12:00 UTC", customer_message=CUSTOMER, public=True),
    )
    runtime.comment(incident.id, "dave.sre", COMMENT)
    yield runtime
    runtime.close()


def cards(runtime: Runtime, internal: bool) -> list[IncidentCard]:
    incidents = [runtime.get_incident(i.id) for i in runtime.list_incidents("mitigating", None)]
    view = build_view(
        runtime.slo_results(),
        incidents,
        lambda incident: notice(runtime, incident),
        runtime.clock(),
        True,
        (lambda incident: True) if internal else None,
    )
    return view.incidents


def test_the_public_card_against_the_internal_one_field_by_field(runtime):
    (public,) = cards(runtime, internal=False)
    (internal,) = cards(runtime, internal=True)
    fields = {f.name for f in dataclasses.fields(IncidentCard)}
    assert fields == INTERNAL_ONLY | SHARED | {"updates"}  # a new field must be classified
    for name in SHARED:
        assert getattr(public, name) == getattr(internal, name), name
    for name in INTERNAL_ONLY:
        assert getattr(internal, name), name  # the internal view has it...
        assert not getattr(public, name), name  # ...the public one does not
    # Updates: customers read the customer message and the comments, never the internal
    # update (impact, current actions) or the notes of status changes.
    public_texts = [text for _, text in public.updates]
    internal_texts = [text for _, text in internal.updates]
    assert public_texts == [COMMENT, CUSTOMER]
    assert any(IMPACT in text and ACTIONS in text for text in internal_texts)
    for text in public_texts:
        assert IMPACT not in text and ACTIONS not in text and NOTE not in text


def test_over_http_anonymous_visitors_get_the_customer_view(runtime, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{READER} read\n")
    app = create_app(
        runtime, load_tokens(tokens), clock=runtime.clock, access=Access(public_status_page=True)
    )
    client = TestClient(app)
    public = html.unescape(client.get("/status").text)
    internal = html.unescape(
        client.get("/status", headers={"Authorization": f"Bearer {READER}"}).text
    )
    incident = runtime.list_incidents("mitigating", None)[0]
    for shown_to_all in (incident.id, CUSTOMER, COMMENT, "Identified"):
        assert shown_to_all in public and shown_to_all in internal, shown_to_all
    for internal_only in (
        "erin.commander",
        "carol.comms",
        incident.summary,
        IMPACT,
        ACTIONS,
        "recovery time objective",
        "Runbook",
    ):
        assert internal_only in internal, internal_only
        assert internal_only not in public, internal_only
    # No responder's name, whatever they did: assigned, noted, updated or commented.
    for person in ("alice", "dave.sre", "erin.commander", "carol.comms"):
        assert person not in public, person
    assert NOTE not in public and NOTE not in internal  # a status note is for the timeline


def test_without_the_setting_anonymous_visitors_get_401(runtime):
    client = TestClient(create_app(runtime, [], clock=runtime.clock))
    refused = client.get("/status")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/").status_code == 401  # the redirect leads there


def test_the_daemon_config_keys(tmp_path):
    config = daemon_config(tmp_path, public_status_page=True, metrics_auth=True)
    assert (config.public_status_page, config.metrics_auth, config.anonymous_reads) == (
        True,
        True,
        False,
    )
    defaults = daemon_config(tmp_path)
    assert (defaults.public_status_page, defaults.metrics_auth, defaults.api_docs) == (
        False,
        False,
        False,
    )
    assert defaults.audit_retention.seconds == 90 * 86400
    assert defaults.idempotency_ttl.seconds == 86400


def test_metrics_auth_and_anonymous_reads(runtime, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{READER} read\n")
    reader = {"Authorization": f"Bearer {READER}"}
    default = TestClient(create_app(runtime, load_tokens(tokens), clock=runtime.clock))
    assert default.get("/metrics").status_code == 200  # Prometheus scrapes without a token
    guarded = TestClient(
        create_app(
            runtime, load_tokens(tokens), clock=runtime.clock, access=Access(metrics_auth=True)
        )
    )
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers=reader).status_code == 200
    assert guarded.get("/healthz").status_code == 200  # probes stay anonymous
    open_reads = TestClient(
        create_app(runtime, [], clock=runtime.clock, access=Access(anonymous_reads=True))
    )
    assert open_reads.get("/api/v1/slos").status_code == 200
    assert open_reads.get("/api/v1/audit").status_code == 401  # changes and audit: never
    assert open_reads.post("/api/v1/silences", json={}).status_code == 401
