"""Severity rules (runbook): SEV1 outage / exhausted budget on critical, SEV2 page on
critical or important, SEV3 ticket or page on standard, SEV4 anomaly; never a silent fall."""

from __future__ import annotations

from decimal import Decimal

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.classify import classify, classify_alert
from engine.incidents.config import IncidentConfig, SeverityRules
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import Severity

RULES = SeverityRules()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # Complete outage of a critical service: short-window error ratio ≥ 50 %.
        ({"tier": "critical", "short_error_ratio": 0.5}, Severity.SEV1),
        ({"tier": "critical", "short_error_ratio": 1.0}, Severity.SEV1),
        # Availability SLI at 0.
        ({"tier": "critical", "short_error_ratio": None, "availability": 0.0}, Severity.SEV1),
        # Error budget exhausted on a critical service.
        ({"tier": "critical", "error_budget_remaining": 0.0}, Severity.SEV1),
        ({"tier": "critical", "error_budget_remaining": -0.3, "severity": "ticket"}, Severity.SEV1),
        # Page-level burn on critical / important.
        ({"tier": "critical", "short_error_ratio": 0.49}, Severity.SEV2),
        ({"tier": "important", "short_error_ratio": 1.0}, Severity.SEV2),
        ({"tier": "important", "error_budget_remaining": -1.0}, Severity.SEV2),
        # Page on a standard service, or any ticket.
        ({"tier": "standard", "short_error_ratio": 1.0}, Severity.SEV3),
        ({"tier": "critical", "severity": "ticket"}, Severity.SEV3),
        ({"tier": "important", "severity": "ticket"}, Severity.SEV3),
        # Anomaly only.
        ({"tier": "critical", "severity": "anomaly", "short_error_ratio": 1.0}, Severity.SEV4),
        # No data is not an outage.
        (
            {"tier": "critical", "short_error_ratio": None, "error_budget_remaining": None},
            Severity.SEV2,
        ),
        # The newest minute: a page 52 s into a complete outage (5m window at 1/5 bad).
        (
            {"short_error_ratio": 0.2, "recent_error_ratio": 0.9, "recent_events": 1080},
            Severity.SEV1,
        ),
        ({"short_error_ratio": 0.2, "recent_error_ratio": 0.5, "recent_events": 10}, Severity.SEV1),
        # ... but only as a page: a ticket is not refined by it.
        (
            {"severity": "ticket", "recent_error_ratio": 1.0, "recent_events": 1000},
            Severity.SEV3,
        ),
        # ... only at or above the outage threshold (a partial burn stays SEV2).
        ({"recent_error_ratio": 0.3, "recent_events": 1200}, Severity.SEV2),
        # ... only over enough events: one failed request in a quiet minute is not an outage.
        ({"recent_error_ratio": 1.0, "recent_events": 1}, Severity.SEV2),
        ({"recent_error_ratio": 1.0, "recent_events": 9.4}, Severity.SEV2),
        ({"recent_error_ratio": 1.0, "recent_events": 9.6}, Severity.SEV1),  # 10 rounded
        # ... and on a critical service only.
        (
            {"tier": "important", "recent_error_ratio": 1.0, "recent_events": 1000},
            Severity.SEV2,
        ),
        # ... no data in the newest minute is no evidence.
        ({"recent_error_ratio": None, "recent_events": None}, Severity.SEV2),
        # Availability SLIs: every sample of the newest minute down (at least 2 samples).
        (
            {"recent_error_ratio": 1.0, "recent_events": 4, "recent_availability": 0.0},
            Severity.SEV1,
        ),
        (  # float noise of running sums is still "at 0"
            {"recent_error_ratio": 1.0, "recent_events": 4, "recent_availability": 1e-12},
            Severity.SEV1,
        ),
        (
            {"recent_error_ratio": 1.0, "recent_events": 1, "recent_availability": 0.0},
            Severity.SEV2,
        ),
        (
            {"recent_error_ratio": 0.75, "recent_events": 4, "recent_availability": 0.25},
            Severity.SEV2,
        ),
    ],
)
def test_runbook_rules(kwargs, expected):
    result = classify_alert(make_alert(**kwargs), RULES)
    assert result.severity is expected
    assert result.reason


def test_rules_are_configurable():
    rules = SeverityRules(
        outage_error_ratio=Decimal("0.9"),
        sev1_tiers=["critical", "important"],
        budget_exhausted_is_sev1=False,
        sev2_page_tiers=["critical"],
    )
    assert classify_alert(make_alert(short_error_ratio=0.6), rules).severity is Severity.SEV2
    assert classify_alert(make_alert(short_error_ratio=0.95), rules).severity is Severity.SEV1
    assert (
        classify_alert(make_alert(tier="important", short_error_ratio=0.95), rules).severity
        is Severity.SEV1
    )
    assert classify_alert(make_alert(error_budget_remaining=-1.0), rules).severity is Severity.SEV2
    assert classify_alert(make_alert(tier="important"), rules).severity is Severity.SEV3


def test_outage_threshold_is_validated():
    with pytest.raises(ValueError, match="outage_error_ratio"):
        SeverityRules(outage_error_ratio=Decimal("1.5"))
    with pytest.raises(ValueError, match="outage_min_events"):
        SeverityRules(outage_min_events=0)
    with pytest.raises(ValueError, match="outage_min_samples"):
        SeverityRules(outage_min_samples=0)


def test_recent_evidence_knobs_and_reason():
    alert = make_alert(short_error_ratio=0.2, recent_error_ratio=0.8, recent_events=40)
    result = classify_alert(alert, RULES)
    assert result.severity is Severity.SEV1
    assert result.reason == (
        "complete outage of a critical service: error ratio 80.0% over 1m (40 events) ≥ 50%"
    )
    assert classify_alert(alert, SeverityRules(outage_min_events=50)).severity is Severity.SEV2
    assert (
        classify_alert(alert, SeverityRules(outage_error_ratio=Decimal("0.9"))).severity
        is Severity.SEV2
    )
    down = make_alert(recent_error_ratio=1.0, recent_events=2, recent_availability=0.0)
    assert classify_alert(down, RULES).reason.endswith("availability at 0 over 1m (2 samples)")
    assert classify_alert(down, SeverityRules(outage_min_samples=3)).severity is Severity.SEV2


def test_most_severe_alert_wins():
    alerts = [make_alert(severity="ticket"), make_alert(slo="latency", short_error_ratio=0.8)]
    assert classify(alerts, RULES).severity is Severity.SEV1
    with pytest.raises(ValueError):
        classify([], RULES)


def test_severity_order_and_response_targets():
    assert Severity.SEV1.is_more_severe_than(Severity.SEV2)
    assert not Severity.SEV4.is_more_severe_than(Severity.SEV3)
    assert Severity.most_severe(Severity.SEV3, Severity.SEV1, Severity.SEV2) is Severity.SEV1
    assert [s.response_target for s in Severity] == [900, 3600, 4 * 3600, 24 * 3600]


def _engine():
    return IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]))


def test_severity_rises_while_open_and_notifies_an_update():
    engine = _engine()
    engine.observe(T0, [make_alert(short_error_ratio=0.1)])
    (incident,) = engine.state.incidents.values()
    assert incident.severity is Severity.SEV2
    decision = engine.observe(T0 + 60, [make_alert(short_error_ratio=0.9)])
    incident = engine.state.incidents[incident.id]
    assert incident.severity is Severity.SEV1
    assert [(n.event, n.incident["severity"]) for n in decision.notifications] == [
        ("updated", "SEV1")
    ]
    assert any(
        e.kind == "severity_changed" and e.data == {"from": "SEV2", "to": "SEV1", "applied": True}
        for e in incident.timeline
    )


def test_severity_never_falls_silently():
    engine = _engine()
    engine.observe(T0, [make_alert(short_error_ratio=0.9)])
    (incident_id,) = engine.state.incidents
    decision = engine.observe(T0 + 60, [make_alert(short_error_ratio=0.05)])
    incident = engine.state.incidents[incident_id]
    assert incident.severity is Severity.SEV1  # not lowered
    assert incident.suggested_severity is Severity.SEV2
    fall = [e for e in incident.timeline if e.kind == "severity_changed"]
    assert len(fall) == 1 and fall[0].data == {"from": "SEV1", "to": "SEV2", "applied": False}
    assert decision.notifications == []
    # Recorded once, not on every evaluation.
    engine.observe(T0 + 120, [make_alert(short_error_ratio=0.05)])
    assert (
        len(
            [
                e
                for e in engine.state.incidents[incident_id].timeline
                if e.kind == "severity_changed"
            ]
        )
        == 1
    )
    # A person may lower it.
    decision = engine.set_severity(T0 + 180, incident_id, "SEV2", by="alice", reason="partial")
    assert engine.state.incidents[incident_id].severity is Severity.SEV2
    assert [n.event for n in decision.notifications] == ["updated"]
