"""Order-independent dependency correlation (`dependency_correlation_window`, issue 15 item 1):
a dependency failing after its dependent's incident paged takes that incident over — one
incident rooted at the dependency, one `triggered`, an `updated` on the same dedup key —
in either order and down a chain, with the engine on an injected clock."""

from __future__ import annotations

import itertools
import json

import pytest
from harness.incidents import T0, make_alert

from engine.evaluation.result import SLOEvaluation
from engine.incidents.config import IncidentConfig
from engine.incidents.dependencies import spec_edges
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import IncidentStatus, Severity
from engine.incidents.state import Decision, EngineState
from engine.notify.base import PagerDutyConfig
from engine.notify.pagerduty import event_body
from engine.spec.models import ServiceSpec
from engine.store.sqlite import SQLiteStore

MIN = 60.0
CHAIN = {"web": ("api",), "api": ("db",), "db": ()}


def _config(**overrides) -> IncidentConfig:
    overrides.setdefault("escalation", [])
    overrides.setdefault("receivers", [{"name": "oncall"}])
    return IncidentConfig(**overrides)


def _engine(**overrides) -> IncidentEngine:
    return IncidentEngine(_config(**overrides))


def alert(service: str, **kw):
    return make_alert(service=service, depends_on=CHAIN.get(service, ()), **kw)


def _sent(decisions: list[Decision]) -> list[tuple[str, str, str]]:
    return [(n.event, n.dedup_key, n.receiver) for d in decisions for n in d.notifications]


def _run(engine: IncidentEngine, starts: dict[str, float], until: float, **kw) -> list[Decision]:
    """Every 30 s until `until`: the alerts of the services whose failure began, then a tick
    a second later (the daemon's cycle and its timers)."""
    decisions = []
    t = 0.0
    while t <= until:
        firing = [alert(s) for s, at in sorted(starts.items()) if at <= t]
        decisions.append(engine.observe(T0 + t, firing, **kw))
        decisions.append(engine.tick(T0 + t + 1))
        t += 30
    return decisions


# ------------------------------------------------------------------ the two orders


def test_dependent_first_beyond_the_wait_is_rerooted_with_an_update_not_a_second_page():
    engine = _engine()
    decisions = _run(engine, {"api": 0.0, "db": 3 * MIN}, until=15 * MIN)
    assert _sent(decisions) == [
        ("triggered", "INC-2024-0001", "oncall"),
        ("updated", "INC-2024-0001", "oncall"),
    ]
    page, update = [n for d in decisions for n in d.notifications]
    assert page.created_at == T0 + MIN  # the held page, when the wait ended
    assert update.created_at == T0 + 3 * MIN
    assert "now part of root-cause incident INC-2024-0001 on db" in update.message
    assert update.incident["service"] == "db" and update.incident["related_services"] == ["api"]

    (incident,) = engine.state.incidents.values()
    assert incident.id == "INC-2024-0001" and incident.opened_at == T0
    assert incident.service == "db" and incident.related_services == ["api"]
    assert incident.depends_on == [] and incident.summary == "db/availability: page burn"
    assert incident.slo_ids == ["api/availability", "db/availability"]
    assert incident.fingerprints == [alert("api").fingerprint, alert("db").fingerprint]
    assert engine.state.alerts[alert("db").fingerprint].incident_id == "INC-2024-0001"
    assert engine.state.sequences == {2024: 1}  # db never used a number of its own
    (rooted,) = [e for e in incident.timeline if e.data.get("rerooted_from")]
    assert rooted.kind == "related" and rooted.at == T0 + 3 * MIN
    assert rooted.data["service"] == "db" and rooted.data["rerooted_from"] == "api"

    # PagerDuty Events v2 has no "update": the update is a trigger on the page's own dedup
    # key, which PagerDuty folds into the open alert (no new page), carrying the reason.
    pagerduty = PagerDutyConfig(type="pagerduty", routing_key_file="/dev/null")
    body = event_body(update, pagerduty, "routing-key")
    assert (body["event_action"], body["dedup_key"]) == ("trigger", "INC-2024-0001")
    assert body["payload"]["component"] == "db"
    assert body["payload"]["custom_details"]["event"] == "updated"
    assert "now part of root-cause incident" in body["payload"]["custom_details"]["message"]


def test_dependency_first_joins_as_related_with_one_page():
    engine = _engine()
    decisions = _run(engine, {"db": 0.0, "api": 3 * MIN}, until=15 * MIN)
    assert _sent(decisions) == [("triggered", "INC-2024-0001", "oncall")]
    (incident,) = engine.state.incidents.values()
    assert incident.service == "db" and incident.related_services == ["api"]


def test_dependency_within_the_wait_still_merges_before_any_page():
    engine = _engine()
    decisions = _run(engine, {"api": 0.0, "db": 30.0}, until=10 * MIN)
    assert _sent(decisions) == [("triggered", "INC-2024-0002", "oncall")]
    assert list(engine.state.incidents) == ["INC-2024-0002"]


def test_outside_the_window_two_incidents_linked_as_related():
    engine = _engine()
    decisions = _run(engine, {"api": 0.0, "db": 11 * MIN}, until=20 * MIN)
    assert _sent(decisions) == [
        ("triggered", "INC-2024-0001", "oncall"),
        ("triggered", "INC-2024-0002", "oncall"),
    ]
    victim = engine.state.incidents["INC-2024-0001"]
    root = engine.state.incidents["INC-2024-0002"]
    assert (victim.service, root.service, root.related_services) == ("api", "db", ["api"])
    (on_root,) = [e for e in root.timeline if e.kind == "related"]
    assert on_root.data == {"incident": "INC-2024-0001", "service": "api", "merged": False}
    (on_victim,) = [e for e in victim.timeline if e.kind == "related"]
    assert on_victim.data == {"incident": "INC-2024-0002", "service": "db", "root_cause": True}


def test_window_is_measured_from_the_dependents_opening():
    """9.5 minutes after api's incident opened (8.5 after its page) is still inside."""
    engine = _engine()
    decisions = _run(engine, {"api": 0.0, "db": 9.5 * MIN}, until=12 * MIN)
    assert [e for e, _, _ in _sent(decisions)] == ["triggered", "updated"]


def test_without_a_hold_the_dependent_pages_at_once_and_is_rerooted():
    engine = _engine(dependency_wait="0s")
    decisions = _run(engine, {"api": 0.0, "db": 30.0}, until=5 * MIN)
    assert _sent(decisions) == [
        ("triggered", "INC-2024-0001", "oncall"),
        ("updated", "INC-2024-0001", "oncall"),
    ]


def test_window_zero_disables():
    engine = _engine(dependency_correlation_window="0s")
    decisions = _run(engine, {"api": 0.0, "db": 3 * MIN}, until=5 * MIN)
    assert [k for _, k, _ in _sent(decisions)] == ["INC-2024-0001", "INC-2024-0002"]
    assert str(IncidentConfig().dependency_correlation_window) == "10m"
    with pytest.raises(ValueError):
        IncidentConfig(dependency_correlation_window="a while")


# ------------------------------------------------------------------ page state carried over


def test_a_rising_severity_updates_the_told_and_triggers_only_the_untold():
    engine = _engine(
        receivers=[{"name": "oncall"}, {"name": "cto", "severities": ["SEV1"]}],
    )
    engine.observe(T0, [alert("api")])
    first = engine.tick(T0 + MIN)
    assert [(n.event, n.receiver, n.incident["severity"]) for n in first.notifications] == [
        ("triggered", "oncall", "SEV2")
    ]
    outage = alert("db", short_error_ratio=1.0)  # a complete outage: SEV1
    decision = engine.observe(T0 + 3 * MIN, [alert("api"), outage])
    assert [
        (n.event, n.dedup_key, n.receiver, n.incident["severity"]) for n in decision.notifications
    ] == [
        ("updated", "INC-2024-0001", "oncall", "SEV1"),
        ("triggered", "INC-2024-0001", "cto", "SEV1"),
    ]
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.severity is Severity.SEV1 and incident.notified_receivers == ["oncall", "cto"]
    # Nothing more while it goes on (the repeat interval is hours away).
    later = [engine.observe(T0 + t * MIN, [alert("api"), outage]) for t in range(4, 12)]
    assert _sent(later) == []


def test_an_acknowledged_incident_stays_acknowledged_when_rerooted():
    engine = _engine()
    engine.observe(T0, [alert("api")])
    engine.tick(T0 + MIN)
    engine.acknowledge(T0 + 2 * MIN, "INC-2024-0001", by="alice")
    decision = engine.observe(T0 + 3 * MIN, [alert("api"), alert("db")])
    assert _sent([decision]) == [("updated", "INC-2024-0001", "oncall")]
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.service == "db" and incident.commander == "alice"
    assert incident.acknowledged_by == "alice"


def test_two_paged_dependents_become_one_incident_and_the_second_is_closed():
    """web and mobile both depend on db and both paged before db failed: web's incident is
    re-rooted to db, mobile's merged into it — `updated` then `resolved` on mobile's own
    dedup key, so no page stays open at the receiver."""
    engine = _engine()
    deps = {"web": ("db",), "mobile": ("db",)}

    def firing(t: float):
        starts = {"web": 0.0, "mobile": 2 * MIN, "db": 5 * MIN}
        return [
            make_alert(service=s, depends_on=deps.get(s, ()))
            for s, at in sorted(starts.items())
            if at <= t
        ]

    decisions = []
    for t in range(0, 12 * 60, 30):
        decisions.append(engine.observe(T0 + t, firing(t)))
        decisions.append(engine.tick(T0 + t + 1))
    assert _sent(decisions) == [
        ("triggered", "INC-2024-0001", "oncall"),
        ("triggered", "INC-2024-0002", "oncall"),
        ("updated", "INC-2024-0001", "oncall"),
        ("updated", "INC-2024-0002", "oncall"),
        ("resolved", "INC-2024-0002", "oncall"),
    ]
    (incident,) = engine.state.incidents.values()
    assert incident.id == "INC-2024-0001" and incident.service == "db"
    assert incident.related_services == ["web", "mobile"]
    merged = [i for d in decisions for i in d.incidents if i.id == "INC-2024-0002"][-1]
    assert merged.merged_into == "INC-2024-0001" and merged.status is IncidentStatus.resolved
    notes = [n for d in decisions for n in d.notifications if n.dedup_key == "INC-2024-0002"]
    assert "part of root-cause incident INC-2024-0001 on db" in notes[-1].message


# ------------------------------------------------------------------ chains


@pytest.mark.parametrize("order", list(itertools.permutations(["web", "api", "db"])))
def test_a_three_service_chain_is_one_incident_rooted_at_db_in_every_order(order):
    """web → api → database failing 3 minutes apart (each past the wait) in any order: one
    incident, rooted at db, web and api impacted, one `triggered`; the edges come from the
    config here (a spec's depends_on in the daemon and backtest, see the next test)."""
    engine = _engine(depends_on={s: list(d) for s, d in CHAIN.items() if d})
    starts = {service: k * 3 * MIN for k, service in enumerate(order)}
    decisions = _run(engine, starts, until=15 * MIN)
    sent = _sent(decisions)
    (incident,) = engine.state.incidents.values()
    assert incident.service == "db"
    assert sorted(incident.related_services) == ["api", "web"]
    assert sorted(incident.slo_ids) == ["api/availability", "db/availability", "web/availability"]
    assert [e for e, _, _ in sent if e == "triggered"] == ["triggered"]
    assert {k for _, k, _ in sent} == {incident.id}
    # One update per time the incident changed root: never when db was first or arrived
    # where the chain already pointed.
    reroots = [e for e in incident.timeline if e.data.get("rerooted_from")]
    assert [e for e, _, _ in sent] == ["triggered"] + ["updated"] * len(reroots)
    expected_reroots = {
        ("db", "api", "web"): 0,
        ("db", "web", "api"): 0,
        ("api", "db", "web"): 1,
        ("api", "web", "db"): 1,
        ("web", "db", "api"): 1,
        ("web", "api", "db"): 2,
    }
    assert len(reroots) == expected_reroots[order]
    assert not any(i.merged_into for d in decisions for i in d.incidents if i.id != incident.id)


def _evaluations(now: float) -> list[SLOEvaluation]:
    out = []
    for service, deps in CHAIN.items():
        spec = ServiceSpec.model_validate(
            {
                "apiVersion": "slo-engine/v1",
                "service": service,
                "tier": "critical",
                "depends_on": list(deps),
                "slos": [
                    {
                        "name": "availability",
                        "objective": 99.9,
                        "sli": {"events": {"bad": "b[{{window}}]", "total": "t[{{window}}]"}},
                    }
                ],
            }
        )
        out.append(SLOEvaluation(slo=spec.slo_records()[0], evaluated_at=now, status="ok"))
    return out


def test_the_chain_is_known_from_the_specs_evaluated_even_before_the_middle_fires():
    """db fails, then web (depends on api, not on db): api's spec, evaluated every cycle,
    says api depends on db, so web joins db's incident although api never fired."""
    engine = _engine()
    engine.observe(T0, [alert("db")], _evaluations(T0))
    decision = engine.observe(T0 + 3 * MIN, [alert("db"), alert("web")], _evaluations(T0))
    assert decision.notifications == []
    (incident,) = engine.state.incidents.values()
    assert incident.service == "db" and incident.related_services == ["web"]
    # Or from the specs given up front (backtest hands each step only the SLOs that fired).
    told = IncidentEngine(_config(), dependencies=spec_edges(ev.slo for ev in _evaluations(T0)))
    told.observe(T0, [alert("db")])
    told.observe(T0 + 3 * MIN, [alert("db"), alert("web")])
    assert [i.related_services for i in told.state.incidents.values()] == [["web"]]
    # Without either the engine cannot know it: web opens its own incident.
    blind = _engine()
    blind.observe(T0, [alert("db")])
    blind.observe(T0 + 3 * MIN, [alert("db"), alert("web")])
    assert len(blind.state.incidents) == 2


# ------------------------------------------------------------------ restarts


def test_restarted_before_every_cycle_the_store_sees_one_page_and_one_update(tmp_path):
    store = SQLiteStore.in_state_dir(tmp_path / "state")
    try:
        for t in range(0, 8 * 60, 30):
            for now, call in ((T0 + t, "observe"), (T0 + t + 1, "tick")):
                engine = IncidentEngine(_config(), store.load_state(now))
                if call == "tick":
                    store.apply(engine.tick(now))
                    continue
                firing = [alert("api")] + ([alert("db")] if t >= 3 * MIN else [])
                store.apply(engine.observe(now, firing))
        sent = [(i.notification.event, i.notification.dedup_key) for i in store.outbox_items()]
        assert sent == [("triggered", "INC-2024-0001"), ("updated", "INC-2024-0001")]
        stored = store.get_incident("INC-2024-0001")
        assert stored is not None and stored.service == "db"
        assert stored.related_services == ["api"]
        state = json.loads(json.dumps(store.load_state(T0 + 9 * MIN).to_json()))
        assert list(EngineState.from_json(state).incidents) == ["INC-2024-0001"]
    finally:
        store.close()


@pytest.mark.parametrize("severity", ["ticket", "anomaly"])
def test_only_a_page_on_the_dependency_takes_an_incident_over(severity):
    """A traffic-drop anomaly on db right after api failed is as likely api's doing (it
    stopped calling db): db's own incident opens, linked to api's, nothing is re-rooted."""
    engine = _engine()
    engine.observe(T0, [alert("api")])
    engine.tick(T0 + MIN)
    decision = engine.observe(T0 + 3 * MIN, [alert("api"), alert("db", severity=severity)])
    assert [(n.event, n.dedup_key) for n in decision.notifications] == [
        ("triggered", "INC-2024-0002")
    ]
    assert engine.state.incidents["INC-2024-0001"].service == "api"
