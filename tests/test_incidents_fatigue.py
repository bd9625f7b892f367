"""Every alert-fatigue control, each on its own."""

from __future__ import annotations

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine, percent_state_change
from engine.incidents.incident import Severity
from engine.incidents.silences import Matcher, MatcherError

MIN = 60.0


def _engine(**overrides) -> IncidentEngine:
    overrides.setdefault("escalation", [])
    # The fatigue controls alone: no recovery-time notices, no update reminders (those are
    # tested in test_incidents_response.py).
    overrides.setdefault("recovery_time_objectives", {})
    overrides.setdefault("update_cadence", {})
    return IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}], **overrides))


def _events(decisions):
    return [(n.event, n.dedup_key) for d in decisions for n in d.notifications]


# ------------------------------------------------------------------ one incident per fingerprint


def test_refiring_alert_never_pages_again_while_open():
    engine = _engine()
    alert = make_alert()
    decisions = [engine.observe(T0 + i * MIN, [alert]) for i in range(120)]
    assert _events(decisions) == [("triggered", "INC-2024-0001")]
    assert len(engine.state.incidents) == 1


def test_refire_within_the_clear_timer_rejoins_without_a_page():
    engine = _engine()
    alert = make_alert()
    engine.observe(T0, [alert])
    engine.observe(T0 + MIN, [])
    decision = engine.observe(T0 + 5 * MIN, [alert])
    assert decision.notifications == []
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.timeline[-1].kind == "alert_joined" and incident.timeline[-1].data["refire"]
    assert incident.fingerprints == [alert.fingerprint]


# ------------------------------------------------------------------ grouping


def test_alerts_of_one_service_in_one_cycle_make_one_incident():
    engine = _engine()
    decision = engine.observe(
        T0,
        [
            make_alert(slo="availability"),
            make_alert(slo="latency"),
            make_alert(slo="freshness", severity="ticket"),
        ],
    )
    assert _events([decision]) == [("triggered", "INC-2024-0001")]
    (incident,) = engine.state.incidents.values()
    assert sorted(incident.slo_ids) == ["api/availability", "api/freshness", "api/latency"]
    assert len(incident.fingerprints) == 3


def test_later_alert_joins_within_the_group_window_only():
    engine = _engine(group_window="30m")
    engine.observe(T0, [make_alert(slo="availability")])
    joined = engine.observe(
        T0 + 20 * MIN, [make_alert(slo="availability"), make_alert(slo="latency")]
    )
    assert joined.notifications == []
    assert engine.state.incidents["INC-2024-0001"].slo_ids == ["api/availability", "api/latency"]
    late = engine.observe(
        T0 + 40 * MIN,
        [make_alert(slo="availability"), make_alert(slo="latency"), make_alert(slo="errors")],
    )
    assert _events([late]) == [("triggered", "INC-2024-0002")]
    second = engine.state.incidents["INC-2024-0002"]
    related = [e for e in second.timeline if e.kind == "related"]
    assert related and related[0].data == {"incident": "INC-2024-0001"}


def test_grouping_can_be_disabled():
    engine = _engine(group_window="0s")
    decision = engine.observe(T0, [make_alert(slo="availability")])
    decision2 = engine.observe(T0 + 1, [make_alert(slo="availability"), make_alert(slo="latency")])
    assert len(_events([decision, decision2])) == 2


def test_other_services_are_not_grouped():
    engine = _engine()
    decision = engine.observe(T0, [make_alert(service="api"), make_alert(service="web")])
    assert len(decision.notifications) == 2


# ------------------------------------------------------------------ tier suppression


def test_page_supersedes_ticket_of_the_same_slo():
    engine = _engine()
    page, ticket = make_alert(severity="page"), make_alert(severity="ticket")
    decision = engine.observe(T0, [ticket, page])
    (incident,) = engine.state.incidents.values()
    assert incident.fingerprints == [page.fingerprint]
    assert incident.severity is Severity.SEV2
    assert [(s.reason, s.fingerprint) for s in decision.suppressed] == [
        ("inhibited_by_page", ticket.fingerprint)
    ]
    assert len(decision.notifications) == 1


def test_page_arriving_after_its_ticket_takes_over_the_incident():
    engine = _engine()
    page, ticket = make_alert(severity="page"), make_alert(severity="ticket")
    engine.observe(T0, [ticket])
    assert engine.state.incidents["INC-2024-0001"].severity is Severity.SEV3
    decision = engine.observe(T0 + MIN, [ticket, page])
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.severity is Severity.SEV2
    assert [n.event for n in decision.notifications] == ["updated"]
    cleared = [e for e in incident.timeline if e.kind == "alert_cleared"]
    assert cleared and "superseded by the page" in cleared[0].message


def test_ticket_of_another_slo_is_not_suppressed():
    engine = _engine(group_window="0s")
    decision = engine.observe(
        T0, [make_alert(slo="availability"), make_alert(slo="latency", severity="ticket")]
    )
    assert decision.suppressed == []


# ------------------------------------------------------------------ dependency correlation


def test_victim_joins_root_cause_incident_as_related():
    engine = _engine()
    engine.observe(T0, [make_alert(service="db", tier="critical")])
    decision = engine.observe(
        T0 + MIN,
        [
            make_alert(service="db"),
            make_alert(service="api", depends_on=("db",)),
            make_alert(service="web", depends_on=("db",)),
        ],
    )
    assert decision.notifications == []
    (incident,) = engine.state.incidents.values()
    assert incident.service == "db"
    assert incident.related_services == ["api", "web"]
    assert sorted(incident.slo_ids) == ["api/availability", "db/availability", "web/availability"]
    assert [e.data["service"] for e in incident.timeline if e.kind == "related"] == ["api", "web"]


def test_root_cause_and_victim_in_the_same_cycle_page_once():
    engine = _engine()
    # The victim comes first in the list; the root still owns the incident.
    decision = engine.observe(
        T0, [make_alert(service="api", depends_on=("db",)), make_alert(service="db")]
    )
    assert _events([decision]) == [("triggered", "INC-2024-0001")]
    assert engine.state.incidents["INC-2024-0001"].service == "db"


def test_dependency_chains_and_config_edges():
    engine = _engine(depends_on={"web": ["api"]})
    engine.observe(T0, [make_alert(service="db")])
    engine.observe(
        T0 + MIN, [make_alert(service="db"), make_alert(service="api", depends_on=("db",))]
    )
    decision = engine.observe(
        T0 + 2 * MIN,
        [
            make_alert(service="db"),
            make_alert(service="api", depends_on=("db",)),
            make_alert(service="web"),
        ],
    )
    assert decision.notifications == []
    assert engine.state.incidents["INC-2024-0001"].related_services == ["api", "web"]


def test_unrelated_service_is_not_correlated():
    # Immediate paging isolates correlation here; the dependency hold-down (which would
    # delay mail's page, not merge it) is tested in test_incidents_dependency_wait.py.
    engine = _engine(dependency_wait="0s")
    engine.observe(T0, [make_alert(service="db")])
    decision = engine.observe(
        T0 + MIN, [make_alert(service="db"), make_alert(service="mail", depends_on=("smtp",))]
    )
    assert _events([decision]) == [("triggered", "INC-2024-0002")]


def test_severe_victim_raises_root_incident_severity():
    engine = _engine()
    engine.observe(T0, [make_alert(service="db", tier="standard")])
    assert engine.state.incidents["INC-2024-0001"].severity is Severity.SEV3
    decision = engine.observe(
        T0 + MIN,
        [
            make_alert(service="db", tier="standard"),
            make_alert(service="api", depends_on=("db",), short_error_ratio=0.9),
        ],
    )
    assert engine.state.incidents["INC-2024-0001"].severity is Severity.SEV1
    assert [n.event for n in decision.notifications] == ["updated"]


# ------------------------------------------------------------------ flapping


def test_percent_state_change_follows_nagios_weights():
    assert percent_state_change([True] * 21) == 0.0
    # One change, newest transition: weight 1.25 → 6.25 %.
    assert percent_state_change([False] * 20 + [True]) == pytest.approx(6.25)
    # One change, oldest transition: weight 0.75 → 3.75 %.
    assert percent_state_change([False] + [True] * 20) == pytest.approx(3.75)
    # Alternating every time: all 20 transitions, weights average 1.0 → 100 %.
    assert percent_state_change([i % 2 == 0 for i in range(21)]) == pytest.approx(100.0)
    # A short history counts as padded with its oldest state.
    assert percent_state_change([False, True]) == pytest.approx(6.25)


def _flapping_run(engine, cycles=60):
    """Fire 2 evaluations, clear 3 (30 s apart), repeatedly; resolve_after = 1 min."""
    decisions = []
    for i in range(cycles):
        alerts = [make_alert()] if i % 5 < 2 else []
        decisions.append(engine.observe(T0 + i * 30, alerts))
    return decisions


def test_without_flap_detection_a_flapping_alert_pages_every_cycle():
    engine = _engine(resolve_after="1m", flap={"enabled": False})
    triggered = [e for e in _events(_flapping_run(engine)) if e[0] == "triggered"]
    assert len(triggered) == 12


def test_flap_detection_keeps_the_incident_open_and_stops_repages():
    engine = _engine(resolve_after="1m")
    decisions = _flapping_run(engine)
    triggered = [e for e in _events(decisions) if e[0] == "triggered"]
    # It takes 4 fire/clear cycles to reach 30 % state change; from then on one incident
    # stays open (12 pages without flap detection).
    assert len(triggered) == 4
    (incident,) = engine.state.incidents.values()
    assert incident.flapping
    assert any(e.kind == "flapping_started" for e in incident.timeline)
    # Stable again: flapping stops, then the incident resolves.
    t = T0 + 60 * 30
    resolved_at = None
    for i in range(60):
        decision = engine.observe(t + i * 30, [])
        if any(n.event == "resolved" for n in decision.notifications):
            resolved_at = i
            kinds = [e.kind for e in decision.incidents[0].timeline]
            assert "flapping_stopped" in kinds
            break
    assert resolved_at is not None


def test_flapping_incident_sends_no_repeat_notifications():
    engine = _engine(resolve_after="1m", repeat_interval="5m")
    decisions = _flapping_run(engine, cycles=120)
    incident_ids = {d for _, d in _events(decisions)}
    repeats = [d for d in decisions for s in d.suppressed if s.reason == "flapping"]
    assert repeats  # repeats were due and held back
    last = max(incident_ids)
    triggered_after_flap = [
        n
        for d in decisions[40:]
        for n in d.notifications
        if n.event == "triggered" and n.dedup_key == last
    ]
    assert triggered_after_flap == []


# ------------------------------------------------------------------ resolve after clear


def test_resolves_only_after_resolve_after_of_continuous_clear():
    engine = _engine(resolve_after="15m")
    alert = make_alert()
    engine.observe(T0, [alert])
    engine.observe(T0 + MIN, [])
    assert engine.tick(T0 + 15 * MIN + 59).notifications == []
    # Re-fires at 10 min: the clock restarts.
    engine.observe(T0 + 10 * MIN, [alert])
    engine.observe(T0 + 11 * MIN, [])
    assert engine.tick(T0 + 25 * MIN).notifications == []
    assert [n.event for n in engine.tick(T0 + 26 * MIN).notifications] == ["resolved"]


def test_missing_data_never_resolves():
    from engine.evaluation.result import SLOEvaluation
    from engine.spec.models import ServiceSpec

    slo = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "api",
            "slos": [
                {
                    "name": "availability",
                    "objective": 99.9,
                    "sli": {"availability": {"metric": "up"}},
                }
            ],
        }
    ).slo_records()[0]
    engine = _engine()
    engine.observe(T0, [make_alert()])
    for i in range(1, 120):
        blind = SLOEvaluation(slo=slo, evaluated_at=T0 + i * MIN, status="error", error="timeout")
        decision = engine.observe(T0 + i * MIN, [], evaluations=[blind])
        assert decision.notifications == []
    assert "INC-2024-0001" in engine.state.incidents


# ------------------------------------------------------------------ repeat interval


def test_repeats_every_repeat_interval_while_unacknowledged():
    engine = _engine(repeat_interval="4h")
    alert = make_alert()
    times = []
    for i in range(0, 13 * 60, 5):
        for n in engine.observe(T0 + i * MIN, [alert]).notifications:
            times.append(((n.id.split(":")[1]), (n.created_at - T0) / 3600))
    assert times == [("triggered", 0), ("triggered", 4), ("triggered", 8), ("triggered", 12)]
    repeat_entries = [
        e for e in engine.state.incidents["INC-2024-0001"].timeline if e.data.get("repeat")
    ]
    assert len(repeat_entries) == 3


def test_no_repeats_after_acknowledgement():
    engine = _engine(repeat_interval="1h")
    engine.observe(T0, [make_alert()])
    engine.acknowledge(T0 + MIN, "INC-2024-0001", by="alice")
    for i in range(2, 300, 10):
        assert engine.observe(T0 + i * MIN, [make_alert()]).notifications == []


# ------------------------------------------------------------------ silences


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ('service="api"', {"service": "api"}, True),
        ("service=api", {"service": "web"}, False),
        ("service!=api", {"service": "web"}, True),
        ('slo=~"avail.*"', {"slo": "availability"}, True),
        ('slo=~"avail"', {"slo": "availability"}, False),  # anchored like Alertmanager
        ('slo!~"lat.*"', {"slo": "availability"}, True),
        ("team=", {"service": "api"}, True),  # missing label = empty string
    ],
)
def test_matchers(text, labels, hit):
    assert Matcher.parse(text).matches(labels) is hit


def test_bad_matchers_and_silences_are_rejected():
    with pytest.raises(MatcherError, match="is not a matcher"):
        Matcher.parse("service")
    with pytest.raises(MatcherError, match="bad regex"):
        Matcher.parse("slo=~(")
    engine = _engine()
    with pytest.raises(MatcherError, match="end after it starts"):
        engine.add_silence(T0, ["service=api"], T0 + 10, T0, "alice")
    with pytest.raises(MatcherError, match="at least one matcher"):
        engine.add_silence(T0, [], T0, T0 + 10, "alice")


def test_silenced_alert_opens_nothing_until_the_silence_expires():
    engine = _engine()
    decision = engine.add_silence(
        T0, ['service="api"', "severity=~page|ticket"], T0, T0 + 3600, "alice", "deploy"
    )
    (silence,) = decision.silences_upserted
    assert silence.id == "SIL-000001"
    for i in range(0, 60, 5):
        decision = engine.observe(T0 + i * MIN, [make_alert()])
        assert decision.incidents == [] and decision.notifications == []
        assert [s.reason for s in decision.suppressed] == ["silenced"]
    # Other services are not silenced.
    assert engine.observe(T0 + 59 * MIN, [make_alert(), make_alert(service="web")]).notifications
    # Expired: still broken → page.
    decision = engine.observe(T0 + 61 * MIN, [make_alert(), make_alert(service="web")])
    assert [n.incident["service"] for n in decision.notifications] == ["api"]
    assert silence.id not in engine.state.silences


def test_silence_on_an_open_incident_holds_repeats_and_escalation():
    config = IncidentConfig(
        receivers=[{"name": "oncall"}, {"name": "team-lead", "severities": []}],
        repeat_interval="30m",
    )
    engine = IncidentEngine(config)
    engine.observe(T0, [make_alert(short_error_ratio=0.9)])
    engine.add_silence(T0 + MIN, ["service=api"], T0 + MIN, T0 + 5 * 3600, "alice")
    for i in range(2, 240, 5):
        assert engine.observe(T0 + i * MIN, [make_alert(short_error_ratio=0.9)]).notifications == []
    assert "INC-2024-0001" in engine.state.incidents


def test_expire_silence():
    engine = _engine()
    engine.add_silence(T0, ["service=api"], T0, T0 + 3600, "alice")
    decision = engine.expire_silence(T0 + 60, "SIL-000001")
    assert decision.silences_upserted[0].ends_at == T0 + 60
    assert engine.observe(T0 + 61, [make_alert()]).notifications


# ------------------------------------------------------------------ rate limit


def test_rate_limit_sends_one_summary_then_resumes():
    engine = _engine(rate_limit={"max_notifications": 2, "window": "1h"}, group_window="0s")
    services = ["a", "b", "c", "d", "e"]
    decision = engine.observe(T0, [make_alert(service=s) for s in services])
    kinds = [(n.kind, n.event, n.dedup_key) for n in decision.notifications]
    assert kinds == [
        ("incident", "triggered", "INC-2024-0001"),
        ("incident", "triggered", "INC-2024-0002"),
        ("summary", "triggered", "rate-limit:oncall"),
    ]
    summary = decision.notifications[-1]
    assert "rate limit reached for oncall" in summary.message
    assert summary.incident["suppressed"] == ["INC-2024-0003"]
    assert len([s for s in decision.suppressed if s.reason == "rate_limited"]) == 3
    assert len(engine.state.incidents) == 5  # incidents still open; only the paging was held
    # More incidents within the hour: no second summary.
    more = engine.observe(T0 + 10 * MIN, [make_alert(service=s) for s in [*services, "f"]])
    assert more.notifications == []
    # Acknowledgements and resolutions are never rate limited.
    assert [
        n.event for n in engine.resolve(T0 + 11 * MIN, "INC-2024-0001", "alice").notifications
    ] == ["resolved"]
    # After the window, notifications flow again.
    later = engine.observe(T0 + 61 * MIN, [make_alert(service=s) for s in [*services, "f", "g"]])
    assert [n.dedup_key for n in later.notifications] == ["INC-2024-0007"]


def test_rate_limit_per_receiver_override():
    config = IncidentConfig(
        receivers=[
            {"name": "oncall", "rate_limit": {"max_notifications": 1, "window": "1h"}},
            {"name": "chat"},
        ],
        escalation=[],
        group_window="0s",
    )
    engine = IncidentEngine(config)
    decision = engine.observe(T0, [make_alert(service="a"), make_alert(service="b")])
    by_receiver = [(n.receiver, n.kind) for n in decision.notifications]
    assert by_receiver.count(("chat", "incident")) == 2
    assert by_receiver.count(("oncall", "incident")) == 1
    assert by_receiver.count(("oncall", "summary")) == 1
