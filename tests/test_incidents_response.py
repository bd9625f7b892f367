"""Incident response as the runbooks describe it (issue 11), on the engine with a fake clock:
declare by hand, the status workflow, severity both ways, the four roles, escalation from
minute 0 (and at once for a customer-facing SEV1), recovery time objectives, updates on a
clock, runbook routing, action items and the post-incident review."""

from __future__ import annotations

import json

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import Declaration, IncidentEngine, IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.response import IncidentCategory, Role, UpdateContent
from engine.incidents.review import review_context
from engine.incidents.rto import recovery

MIN = 60.0
CHAIN = ["team-lead", "engineering-manager", "vp-engineering", "cto"]


def _config(**overrides) -> IncidentConfig:
    receivers = [{"name": "oncall"}] + [{"name": n, "severities": []} for n in CHAIN]
    overrides.setdefault("repeat_interval", "24h")
    return IncidentConfig(receivers=receivers, **overrides)


def _engine(**overrides) -> IncidentEngine:
    return IncidentEngine(_config(**overrides))


def _declare(engine: IncidentEngine, at: float = T0, **kw) -> Incident:
    fields = {
        "service": "api",
        "severity": Severity.SEV1,
        "title": "API keys leaked in a public repository",
        "category": IncidentCategory.security,
        **kw,
    }
    decision = engine.declare(at, Declaration(**fields), by="alice")
    return decision.incidents[0]


def _escalations(engine: IncidentEngine, minutes, alert=None) -> list[tuple[int, str]]:
    seen = []
    for m in minutes:
        decision = (
            engine.tick(T0 + m * MIN) if alert is None else engine.observe(T0 + m * MIN, [alert])
        )
        seen += [(m, n.receiver) for n in decision.notifications if n.event == "escalated"]
    return seen


# ------------------------------------------------------------------ escalation from minute 0


def test_runbook_chain_pages_the_team_lead_at_open_then_30_60_120_minutes():
    engine = _engine()
    outage = make_alert(short_error_ratio=1.0)  # SEV1
    opened = engine.observe(T0, [outage])
    assert [(n.event, n.receiver) for n in opened.notifications] == [
        ("triggered", "oncall"),
        ("escalated", "team-lead"),
    ]
    seen = _escalations(engine, range(1, 200), outage)
    assert seen == [(30, "engineering-manager"), (60, "vp-engineering"), (120, "cto")]
    # Not one second early.
    engine = _engine()
    engine.observe(T0, [outage])
    assert engine.tick(T0 + 30 * MIN - 1).notifications == []
    assert [n.receiver for n in engine.tick(T0 + 30 * MIN).notifications] == ["engineering-manager"]


def test_sev2_pages_the_team_lead_at_open_sev3_after_its_response_target():
    engine = _engine()
    opened = engine.observe(T0, [make_alert(short_error_ratio=0.1)])  # SEV2 on critical
    assert ("escalated", "team-lead") in [(n.event, n.receiver) for n in opened.notifications]
    engine = _engine()
    ticket = make_alert(severity="ticket", tier="standard")  # SEV3: 4 h response target
    assert _escalations(engine, range(0, 300, 10), ticket)[0] == (240, "team-lead")


def test_which_severities_start_at_open_is_configurable():
    engine = _engine(escalate_from_open=["SEV1"])
    assert _escalations(engine, range(0, 70, 5), make_alert(short_error_ratio=0.1)) == [
        (60, "team-lead")  # SEV2 now waits for its 1 h response target
    ]


def test_customer_facing_sev1_calls_the_cto_at_once_and_the_chain_skips_it_later():
    engine = _engine()
    outage = make_alert(short_error_ratio=1.0)
    outage = type(outage)(**{**outage.__dict__, "customer_facing": True})
    opened = engine.observe(T0, [outage])
    assert [(n.event, n.receiver) for n in opened.notifications] == [
        ("triggered", "oncall"),
        ("escalated", "team-lead"),
        ("escalated", "cto"),
    ]
    assert engine.state.incidents["INC-2024-0001"].escalated_early == ["cto"]
    seen = _escalations(engine, range(1, 200), outage)
    assert seen == [(30, "engineering-manager"), (60, "vp-engineering")]  # CTO not twice
    assert engine.state.incidents["INC-2024-0001"].escalation_level == 4


def test_a_customer_facing_sev2_waits_for_the_chain():
    engine = _engine()
    alert = make_alert(short_error_ratio=0.1)
    alert = type(alert)(**{**alert.__dict__, "customer_facing": True})
    assert "cto" not in [n.receiver for n in engine.observe(T0, [alert]).notifications]


def test_acknowledgement_or_mitigation_stops_the_chain_as_configured():
    engine = _engine(recovery_time_objectives={})
    outage = make_alert(short_error_ratio=1.0)
    engine.observe(T0, [outage])
    engine.set_status(T0 + 5 * MIN, "INC-2024-0001", "mitigating", by="alice", note="rolled back")
    assert _escalations(engine, range(6, 200), outage) == []
    # Configured to stop on acknowledgement only: mitigating goes on escalating.
    engine = _engine(recovery_time_objectives={}, escalation_stops_on=["acknowledged"])
    engine.observe(T0, [outage])
    engine.set_status(T0 + 5 * MIN, "INC-2024-0001", "mitigating", by="alice", note="rolled back")
    assert _escalations(engine, range(6, 40), outage) == [(30, "engineering-manager")]
    engine.acknowledge(T0 + 40 * MIN, "INC-2024-0001", by="alice")
    assert _escalations(engine, range(41, 200), outage) == []


# ------------------------------------------------------------------ declared incidents


def test_declare_a_sev1_security_incident():
    engine = _engine()
    incident = _declare(engine, note="found by a scanner")
    assert incident.id == "INC-2024-0001"
    assert incident.category is IncidentCategory.security
    assert incident.declared_by == "alice" and incident.commander == "alice"
    assert incident.acknowledged_at is None  # declaring is not acknowledging
    assert incident.tier == "critical" and incident.rto_seconds == 3600
    assert incident.fingerprints == [] and incident.slo_ids == []
    opened = incident.timeline[0]
    assert opened.kind == "opened" and opened.actor == "alice"
    assert opened.message == "declared as SEV1 by alice: security incident — found by a scanner"
    assert opened.data["declared"] is True
    # Paged like any SEV1, the team lead at once.
    state = engine.state.incidents[incident.id]
    assert state.notified_receivers == ["oncall", "team-lead"]


def test_declared_incident_never_resolves_by_itself_and_takes_in_alerts():
    engine = _engine()
    incident = _declare(engine, category=IncidentCategory.availability)
    for m in range(1, 50, 10):
        engine.observe(T0 + m * MIN, [])
    assert incident.id in engine.state.incidents
    # An alert of its service joins it (same-service grouping), it pages nobody again.
    joined = engine.observe(T0 + 55 * MIN, [make_alert(short_error_ratio=1.0)])
    assert [n.event for n in joined.notifications if n.event == "triggered"] == []
    assert engine.state.incidents[incident.id].fingerprints == [make_alert().fingerprint]
    assert [e.kind for e in engine.state.incidents[incident.id].timeline].count("alert_joined")


def test_declare_needs_a_title():
    with pytest.raises(IncidentError, match="title"):
        _declare(_engine(), title="  ")


# ------------------------------------------------------------------ status and severity


def test_status_workflow_with_notes_and_the_review_state():
    engine = _engine(review_severities=["SEV1"])
    incident = _declare(engine)
    for minute, status in enumerate(("mitigating", "monitoring", "investigating"), start=1):
        decision = engine.set_status(
            T0 + minute * MIN, incident.id, status, by="bob", note=f"note {minute}"
        )
        assert [n.event for n in decision.notifications][:1] == ["updated"]
    changes = [
        e for e in engine.state.incidents[incident.id].timeline if e.kind == "status_changed"
    ]
    assert [(e.data["from"], e.data["to"], e.actor) for e in changes] == [
        ("investigating", "mitigating", "bob"),
        ("mitigating", "monitoring", "bob"),
        ("monitoring", "investigating", "bob"),
    ]
    assert changes[0].message == "status investigating → mitigating: note 1"
    with pytest.raises(IncidentError, match="not set by hand"):
        engine.set_status(T0 + 5 * MIN, incident.id, "review", by="bob")
    resolved = engine.set_status(T0 + 6 * MIN, incident.id, "resolved", by="bob", note="rotated")
    done = resolved.incidents[0]
    assert done.status is IncidentStatus.review and not done.is_open
    assert done.resolved_at == T0 + 6 * MIN
    assert incident.id not in engine.state.incidents
    assert "in review until its post-incident review is closed" in done.timeline[-2].message
    closed = engine.close_review(T0 + 60 * MIN, incident.id, by="carol", note="done", stored=done)
    assert closed.incidents[0].status is IncidentStatus.resolved
    assert closed.incidents[0].timeline[-1].kind == "review_closed"
    with pytest.raises(IncidentError, match="not in review"):
        engine.close_review(T0 + 61 * MIN, incident.id, "carol", stored=closed.incidents[0])


def test_severity_changes_both_ways_with_a_reason():
    engine = _engine()
    incident = _declare(engine, severity=Severity.SEV2)
    up = engine.set_severity(T0 + MIN, incident.id, "SEV1", by="bob", reason="customers affected")
    down = engine.set_severity(T0 + 2 * MIN, incident.id, "SEV3", by="bob", reason="contained")
    entries = [e for e in down.incidents[0].timeline if e.kind == "severity_changed"]
    assert [(e.data["from"], e.data["to"], e.actor) for e in entries] == [
        ("SEV2", "SEV1", "bob"),
        ("SEV1", "SEV3", "bob"),
    ]
    assert entries[0].message == "severity SEV2 → SEV1: customers affected"
    assert up.notifications and down.notifications


# ------------------------------------------------------------------ roles


def test_four_roles_assigned_and_handed_over():
    engine = _engine()
    incident = _declare(engine)
    for minute, (role, person) in enumerate(
        [
            ("technical_lead", "bob"),
            ("communications-lead", "carol"),
            ("security lead", "dave"),
            ("incident_commander", "erin"),
        ],
        start=1,
    ):
        decision = engine.assign_role(T0 + minute * MIN, incident.id, role, person, by="alice")
    current = engine.state.incidents[incident.id]
    assert current.role_holders() == {
        "incident_commander": "erin",
        "technical_lead": "bob",
        "communications_lead": "carol",
        "security_lead": "dave",
    }
    # Handing the command over is announced; a first assignment is only recorded.
    assert [n.event for n in decision.notifications] == ["updated", "updated"]
    assert "Incident commander handed over from alice to erin" in decision.notifications[0].message
    entries = [e for e in current.timeline if e.kind == "role_assigned"]
    assert [e.data["to"] for e in entries] == ["bob", "carol", "dave", "erin"]
    assert entries[-1].data["from"] == "alice"
    message = decision.notifications[0].message
    for line in ("Technical lead: bob", "Communications lead: carol", "Security lead: dave"):
        assert line in message.splitlines()
    assert current.to_json()["roles"]["incident_commander"] == "erin"
    with pytest.raises(ValueError, match="unknown role"):
        engine.assign_role(T0 + 9 * MIN, incident.id, "scribe", "x", by="alice")


# ------------------------------------------------------------------ recovery time objectives


def test_rto_breach_notifies_and_escalates_one_step_once_the_chain_stopped():
    engine = _engine()
    outage = make_alert(short_error_ratio=1.0)  # critical tier: RTO 1 h
    engine.observe(T0, [outage])
    engine.acknowledge(T0 + 5 * MIN, "INC-2024-0001", by="alice")
    quiet = [engine.observe(T0 + m * MIN, [outage]) for m in range(6, 60)]
    assert all(not d.notifications or d.notifications[0].event == "updated" for d in quiet)
    breach = engine.observe(T0 + 60 * MIN, [outage])
    events = [(n.event, n.receiver) for n in breach.notifications]
    assert ("escalated", "engineering-manager") in events
    updated = [n for n in breach.notifications if n.event == "updated"]
    assert updated and "RECOVERY TIME OBJECTIVE MISSED (60 min)" in updated[0].message
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.rto_breached_at == T0 + 60 * MIN
    assert [e.kind for e in incident.timeline].count("rto_breached") == 1
    assert not [
        n
        for m in range(61, 200)
        for n in engine.observe(T0 + m * MIN, [outage]).notifications
        if n.event == "escalated"
    ]


def test_rto_breach_of_a_running_chain_leaves_the_chain_its_pace():
    engine = _engine()
    outage = make_alert(short_error_ratio=1.0)
    engine.observe(T0, [outage])
    seen = _escalations(engine, range(1, 130), outage)
    assert seen == [(30, "engineering-manager"), (60, "vp-engineering"), (120, "cto")]


def test_recovery_view_time_to_restore_and_remaining():
    engine = _engine()
    incident = _declare(engine, severity=Severity.SEV2)  # important: RTO 4 h
    running = recovery(engine.state.incidents[incident.id], T0 + 3600)
    assert running is not None and running.remaining == 3 * 3600 and running.met is None
    engine.tick(T0 + 4 * 3600)
    done = engine.resolve(T0 + 5 * 3600, incident.id, by="bob").incidents[0]
    restored = recovery(done, T0 + 6 * 3600)
    assert restored.time_to_restore == 5 * 3600 and restored.met is False
    assert restored.to_json()["breached_at"] == "2024-03-01T04:00:00.000Z"


def test_rto_per_tier_is_configurable():
    engine = _engine(recovery_time_objectives={"critical": "30m"})
    incident = _declare(engine)
    assert incident.rto_seconds == 1800
    assert _declare(engine, severity=Severity.SEV3).rto_seconds is None  # standard: none


# ------------------------------------------------------------------ updates on a clock


def test_a_due_update_reminds_the_communications_lead():
    engine = _engine(recovery_time_objectives={})
    incident = _declare(engine)  # SEV1: every 30 min, counted from the declaration
    engine.assign_role(T0 + MIN, incident.id, "communications_lead", "carol", by="alice")
    assert [n for m in range(2, 30) for n in engine.tick(T0 + m * MIN).notifications] == []
    due = engine.tick(T0 + 30 * MIN)
    (reminder,) = [n for n in due.notifications if n.receiver == "oncall"]
    assert reminder.event == "updated"
    assert "UPDATE DUE — carol (communications lead)" in reminder.message
    entry = engine.state.incidents[incident.id].timeline[-2]
    assert entry.kind == "update_due" and entry.data["person"] == "carol"
    # Once per cadence while nothing is posted.
    assert [n for m in range(31, 60) for n in engine.tick(T0 + m * MIN).notifications] == []
    assert engine.tick(T0 + 60 * MIN).notifications


def test_posting_an_update_restarts_the_clock_and_reaches_the_receivers():
    engine = _engine(recovery_time_objectives={})
    incident = _declare(engine, customer_facing=True)
    content = UpdateContent(
        impact="API keys of 3 customers exposed",
        current_actions="rotating every key",
        expected_resolution="12:00 UTC",
        next_update_in=20 * MIN,
        customer_message="We are rotating API keys as a precaution.",
    )
    posted = engine.post_update(T0 + 10 * MIN, incident.id, by="carol", content=content)
    told = {n.receiver for n in posted.notifications}
    assert told == {"oncall", "team-lead", "cto"}  # a customer-facing SEV1: the CTO at once
    message = posted.notifications[0].message.splitlines()
    assert "Impact: API keys of 3 customers exposed" in message
    assert "Current actions: rotating every key" in message
    assert "Expected resolution: 12:00 UTC" in message
    assert "Next update: by 2024-03-01 00:30 UTC" in message
    current = engine.state.incidents[incident.id]
    assert current.latest_update["by"] == "carol" and current.latest_update["public"] is True
    assert "We are rotating API keys as a precaution." in current.customer_notice
    entry = current.timeline[-2]
    assert entry.kind == "update_posted" and entry.actor == "carol"
    assert "rotating API keys" in entry.data["customer"]
    # The promised time, not the cadence: reminded at 30 min, not 40.
    assert [n for m in range(11, 30) for n in engine.tick(T0 + m * MIN).notifications] == []
    assert engine.tick(T0 + 30 * MIN).notifications


def test_an_internal_update_stays_off_the_customer_notice():
    engine = _engine()
    incident = _declare(engine)  # not customer-facing
    content = UpdateContent("none", "looking", "unknown", customer_message="hello")
    engine.post_update(T0 + MIN, incident.id, "carol", content)
    assert "hello" not in (engine.state.incidents[incident.id].customer_notice or "")


def test_no_reminders_before_anybody_has_the_incident():
    engine = _engine(recovery_time_objectives={}, escalation=[])
    engine.observe(T0, [make_alert(short_error_ratio=1.0)])
    assert [n for m in range(1, 120) for n in engine.tick(T0 + m * MIN).notifications] == []


# ------------------------------------------------------------------ runbook routing


def test_runbook_index_routes_by_slo_service_category():
    runbooks = [
        {"url": "https://rb/index"},
        {"category": "security", "url": "https://rb/security-incident"},
        {"service": "api", "url": "https://rb/api"},
        {"service": "api", "category": "security", "url": "https://rb/api-security"},
        {"slo": "api/availability", "url": "https://rb/api-availability"},
    ]
    engine = _engine(runbooks=runbooks)
    assert _declare(engine).runbook_url == "https://rb/api-security"
    assert _declare(engine, service="web").runbook_url == "https://rb/security-incident"
    assert (
        _declare(engine, service="web", category=IncidentCategory.data).runbook_url
        == "https://rb/index"
    )
    opened = engine.observe(T0, [make_alert(service="db", slo="up", runbook_url="https://spec")])
    assert opened.incidents[0].runbook_url == "https://spec"  # the spec's beats service/category
    engine = _engine(runbooks=runbooks)
    opened = engine.observe(T0, [make_alert(runbook_url="https://spec")])
    incident = opened.incidents[0]
    assert incident.runbook_url == "https://rb/api-availability"
    assert "Runbook: https://rb/api-availability" in opened.notifications[0].message
    assert opened.notifications[0].incident["runbook_url"] == "https://rb/api-availability"


# ------------------------------------------------------------------ review and action items


def test_review_draft_holds_the_real_timeline_and_impact():
    engine = _engine(review_severities=["SEV1"])
    outage = make_alert(short_error_ratio=1.0, error_budget_remaining=0.9)
    engine.observe(T0, [outage])
    later = make_alert(short_error_ratio=1.0, error_budget_remaining=0.75)
    engine.observe(T0 + 10 * MIN, [later])
    engine.acknowledge(T0 + 12 * MIN, "INC-2024-0001", by="alice")
    engine.assign_role(T0 + 13 * MIN, "INC-2024-0001", "technical_lead", "bob", by="alice")
    engine.set_status(T0 + 20 * MIN, "INC-2024-0001", "mitigating", by="bob", note="rollback")
    engine.post_update(T0 + 25 * MIN, "INC-2024-0001", "alice", UpdateContent("5xx", "rb", "soon"))
    done = engine.resolve(T0 + 50 * MIN, "INC-2024-0001", by="alice", note="fixed").incidents[0]
    assert done.status is IncidentStatus.review
    draft = review_context(done, T0 + 60 * MIN)
    kinds = [e["kind"] for e in draft["timeline"]]
    for kind in ("detection", "escalation", "acknowledgement", "role", "status", "update"):
        assert kind in kinds
    assert kinds[-1] == "resolution"
    impact = draft["impact"]
    assert impact["duration_seconds"] == 50 * MIN and impact["rto_met"] is True
    assert impact["budget"] == [
        {
            "slo": "api/availability",
            "at_start": 0.9,
            "at_end": 0.75,
            "consumed": pytest.approx(0.15),
        }
    ]
    names = {r["name"] for r in draft["responders"]}
    assert {"alice", "bob"} <= names
    markdown = engine.renderer.review(draft)
    assert markdown.startswith("# Post-incident review: INC-2024-0001")
    assert "| Recovery time objective |" not in markdown
    assert "- Recovery time objective: 1 hour — met (restored in 50 minutes)" in markdown
    assert "api/availability: 15.0 % of the period's budget" in markdown


def test_action_items_open_done_owner_on_a_closed_incident():
    engine = _engine(review_severities=["SEV1"])
    incident = _declare(engine)
    done = engine.resolve(T0 + MIN, incident.id, by="alice").incidents[0]
    added = engine.add_action_item(T0 + 2 * MIN, incident.id, "rotate keys", "bob", "alice", done)
    stored = added.incidents[0]
    assert [(a.id, a.status, a.owner) for a in stored.action_items] == [("AI-1", "open", "bob")]
    second = engine.add_action_item(T0 + 3 * MIN, incident.id, "scan repos", None, "al", stored)
    stored = second.incidents[0]
    marked = engine.change_action_item(
        T0 + 4 * MIN, incident.id, "AI-1", "bob", status="done", stored=stored
    )
    stored = marked.incidents[0]
    assert [(a.id, a.status, a.done_by) for a in stored.action_items] == [
        ("AI-1", "done", "bob"),
        ("AI-2", "open", None),
    ]
    owned = engine.change_action_item(
        T0 + 5 * MIN, incident.id, "AI-2", "alice", owner="carol", stored=stored
    )
    assert owned.incidents[0].action_items[1].owner == "carol"
    with pytest.raises(IncidentError, match="no action item AI-9"):
        engine.change_action_item(T0, incident.id, "AI-9", "x", status="done", stored=stored)
    # Every change is on the timeline; the stored JSON keeps the items.
    back = Incident.from_json(json.loads(json.dumps(owned.incidents[0].to_json())))
    assert back == owned.incidents[0]
    assert [e.kind for e in back.timeline].count("action_item") == 4


def test_role_title_and_parse():
    assert Role.parse("IC") is Role.incident_commander
    assert Role.communications_lead.label == "Communications lead"
