"""Escalation: unacknowledged past the response target, the chain is notified level by level
(runbook default: team lead, +30 min engineering manager, +1 h VP engineering, +2 h CTO);
an acknowledgement stops it."""

from __future__ import annotations

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine

MIN = 60.0
CHAIN = ["team-lead", "engineering-manager", "vp-engineering", "cto"]


def _engine(**overrides) -> IncidentEngine:
    receivers = [{"name": "oncall"}] + [{"name": n, "severities": []} for n in CHAIN]
    # These pin the chain counted from the missed response target (`escalate_from_open: []`)
    # and without recovery-time escalation; the runbook's minute-0 chain and the RTO are
    # tested in test_incidents_response.py.
    overrides.setdefault("escalate_from_open", [])
    overrides.setdefault("recovery_time_objectives", {})
    return IncidentEngine(IncidentConfig(receivers=receivers, repeat_interval="24h", **overrides))


def _escalations(engine, alert, minutes):
    seen = []
    for m in minutes:
        for n in engine.observe(T0 + m * MIN, [alert]).notifications:
            if n.event == "escalated":
                seen.append((m, n.receiver))
    return seen


def test_sev1_default_chain_timings():
    engine = _engine()
    outage = make_alert(short_error_ratio=1.0)
    seen = _escalations(engine, outage, range(0, 200))
    # Response target 15 min; then +30 min, +1 h, +2 h after the target.
    assert seen == [
        (15, "team-lead"),
        (45, "engineering-manager"),
        (75, "vp-engineering"),
        (135, "cto"),
    ]
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.escalation_level == 4
    entries = [e for e in incident.timeline if e.kind == "escalated"]
    assert [e.data["name"] for e in entries] == CHAIN
    # Escalated people get the follow-ups too.
    decision = engine.acknowledge(T0 + 200 * MIN, incident.id, by="cto")
    assert sorted(n.receiver for n in decision.notifications) == sorted(["oncall", *CHAIN])


def test_not_one_second_early():
    engine = _engine()
    engine.observe(T0, [make_alert(short_error_ratio=1.0)])
    assert engine.tick(T0 + 15 * MIN - 1).notifications == []
    assert [n.receiver for n in engine.tick(T0 + 15 * MIN).notifications] == ["team-lead"]


@pytest.mark.parametrize(
    ("ratio", "tier", "first"), [(0.1, "critical", 60), (0.1, "standard", 240)]
)
def test_response_target_depends_on_severity(ratio, tier, first):
    engine = _engine()
    seen = _escalations(engine, make_alert(short_error_ratio=ratio, tier=tier), range(0, 300, 5))
    assert seen[0] == (first, "team-lead")


def test_acknowledgement_stops_escalation():
    engine = _engine()
    outage = make_alert(short_error_ratio=1.0)
    seen = _escalations(engine, outage, range(0, 20))
    assert seen == [(15, "team-lead")]
    engine.acknowledge(T0 + 20 * MIN, "INC-2024-0001", by="alice")
    assert _escalations(engine, outage, range(21, 400)) == []
    assert engine.state.incidents["INC-2024-0001"].escalation_level == 1


def test_tick_alone_escalates_between_evaluations():
    engine = _engine()
    engine.observe(T0, [make_alert(short_error_ratio=1.0)])
    decision = engine.tick(T0 + 2 * 3600)
    # A late tick catches up all levels that are due, in order.
    assert [n.receiver for n in decision.notifications] == [
        "team-lead",
        "engineering-manager",
        "vp-engineering",
    ]


def test_rising_severity_restarts_the_response_target():
    engine = _engine()
    engine.observe(T0, [make_alert(short_error_ratio=0.1)])  # SEV2: 1 h target
    engine.observe(T0 + 50 * MIN, [make_alert(short_error_ratio=0.9)])  # SEV1 from 50 min
    seen = _escalations(engine, make_alert(short_error_ratio=0.9), range(51, 70))
    # 50 + 15, not 0 + 15 (which would escalate at once) nor 0 + 60.
    assert seen == [(65, "team-lead")]


def test_custom_chain():
    config = IncidentConfig(
        receivers=[
            {"name": "oncall"},
            {"name": "secondary", "severities": []},
            {"name": "boss", "severities": []},
        ],
        escalation=[
            {"name": "secondary on-call", "after": "0s", "receivers": ["secondary"]},
            {"name": "boss", "after": "10m", "receivers": ["boss", "secondary"]},
        ],
    )
    engine = IncidentEngine(config)
    seen = _escalations(engine, make_alert(short_error_ratio=1.0), range(0, 120))
    assert seen == [(15, "secondary"), (25, "boss"), (25, "secondary")]


def test_unknown_escalation_receiver_is_a_config_error():
    with pytest.raises(ValueError, match="unknown receivers nobody"):
        IncidentConfig(escalation=[{"name": "x", "after": "0s", "receivers": ["nobody"]}])


def test_default_chain_without_receivers_still_records_escalation():
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]))
    engine.observe(T0, [make_alert(short_error_ratio=1.0)])
    decision = engine.tick(T0 + 16 * MIN)
    assert decision.notifications == []
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.escalation_level == 1
    assert "nobody configured" in incident.timeline[-1].message


def test_response_targets_are_configurable():
    engine = _engine(
        response_targets={"SEV1": "5m", "SEV2": "10m", "SEV3": "1h", "SEV4": "1d"},
    )
    seen = _escalations(engine, make_alert(short_error_ratio=1.0), range(0, 10))
    assert seen == [(5, "team-lead")]
