"""Dependency hold-down (`dependency_wait`): a victim whose alert fires before its root cause's
still yields one page, for the root cause's incident."""

from __future__ import annotations

import json

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import IncidentStatus, Severity
from engine.incidents.state import EngineState
from engine.store.sqlite import SQLiteStore

MIN = 60.0


def _config(**overrides) -> IncidentConfig:
    overrides.setdefault("escalation", [])
    return IncidentConfig(receivers=[{"name": "oncall"}], **overrides)


def _engine(**overrides) -> IncidentEngine:
    return IncidentEngine(_config(**overrides))


def db(**kw):
    return make_alert(service="db", slo="up", **kw)


def api(**kw):
    return make_alert(service="api", depends_on=("db",), **kw)


def web(**kw):
    return make_alert(service="web", depends_on=("api",), **kw)


def _triggered(decisions):
    return [n for d in decisions for n in d.notifications if n.event == "triggered"]


def _kinds(incident):
    return [e.kind for e in incident.timeline]


# ------------------------------------------------------------------ victim before root cause


@pytest.mark.parametrize("cycle", [15.0, 30.0, MIN])
def test_victim_one_cycle_before_root_cause_pages_once_for_the_root(cycle):
    engine = _engine()
    decisions = [engine.observe(T0, [api()])]
    assert decisions[0].notifications == []
    assert [s.reason for s in decisions[0].suppressed] == ["dependency_wait"]
    held = engine.state.incidents["INC-2024-0001"]
    assert held.held_until == T0 + MIN and held.depends_on == ["db"]

    # One cycle later (at most exactly dependency_wait) the database pages too.
    decisions.append(engine.observe(T0 + cycle, [api(), db()]))
    for i in range(2, 40):
        decisions.append(engine.observe(T0 + i * cycle, [api(), db()]))
        decisions.append(engine.tick(T0 + i * cycle + 1))

    (page,) = _triggered(decisions)
    assert page.dedup_key == "INC-2024-0002" and page.receiver == "oncall"
    assert page.incident["service"] == "db"
    assert sorted(page.incident["slos"]) == ["api/availability", "db/up"]
    assert page.incident["related_services"] == ["api"]
    assert "also affected: api" in page.message
    assert all(n.dedup_key == "INC-2024-0002" for d in decisions for n in d.notifications)

    assert list(engine.state.incidents) == ["INC-2024-0002"]
    root = engine.state.incidents["INC-2024-0002"]
    assert root.related_services == ["api"]
    assert sorted(root.slo_ids) == ["api/availability", "db/up"]
    assert sorted(root.fingerprints) == sorted([api().fingerprint, db().fingerprint])
    assert root.held_until is None
    (merged_entry,) = [e for e in root.timeline if e.kind == "related"]
    assert merged_entry.data["incident"] == "INC-2024-0001" and merged_entry.data["merged"]
    # Every api alert now belongs to the root cause's incident.
    assert engine.state.alerts[api().fingerprint].incident_id == "INC-2024-0002"

    # Each decision carries its own copy; the last one to mention the victim is current.
    (victim,) = [i for i in decisions[1].incidents if i.id == "INC-2024-0001"]
    assert not any(i.id == "INC-2024-0001" for d in decisions[2:] for i in d.incidents)
    assert victim.status is IncidentStatus.resolved
    assert victim.merged_into == "INC-2024-0002"
    assert victim.resolved_at == T0 + cycle
    assert victim.notified_receivers == [] and victim.last_notified_at is None
    assert victim.customer_notice is None
    assert _kinds(victim) == ["opened", "held", "merged", "resolved"]
    assert victim.timeline[-1].message == "merged into INC-2024-0002"


def test_merged_victim_raises_the_root_causes_first_page():
    """A complete api outage (SEV1) merged into a db incident that alone is SEV3: the one
    page goes out at SEV1, with no separate `updated`."""
    engine = _engine()
    engine.observe(T0, [api(short_error_ratio=1.0)])
    assert engine.state.incidents["INC-2024-0001"].severity is Severity.SEV1
    decision = engine.observe(T0 + 30, [api(short_error_ratio=1.0), db(tier="standard")])
    assert [(n.event, n.incident["severity"]) for n in decision.notifications] == [
        ("triggered", "SEV1")
    ]
    root = engine.state.incidents["INC-2024-0002"]
    assert root.severity is Severity.SEV1
    assert root.severity_changed_at == T0 + 30


def test_held_root_cause_keeps_the_victims_deadline():
    """web → api → db, one cycle apart: one page, for db, covering all three; and it is not
    delayed beyond dependency_wait after web's first alert."""
    engine = _engine(depends_on={"web": ["api"]})
    decisions = [engine.observe(T0, [web()])]
    decisions.append(engine.observe(T0 + 20, [web(), api()]))
    # api's incident absorbed web's and inherited its deadline.
    (held,) = engine.state.incidents.values()
    assert held.service == "api" and held.related_services == ["web"]
    assert held.held_until == T0 + MIN
    decisions.append(engine.observe(T0 + 40, [web(), api(), db()]))
    for t in range(60, 600, 20):
        decisions.append(engine.observe(T0 + t, [web(), api(), db()]))
    (page,) = _triggered(decisions)
    assert page.dedup_key == "INC-2024-0003" and page.created_at == T0 + 40
    root = engine.state.incidents["INC-2024-0003"]
    assert root.service == "db" and root.related_services == ["api", "web"]
    assert sorted(root.slo_ids) == ["api/availability", "db/up", "web/availability"]


def test_chain_without_a_root_cause_pages_at_the_first_alerts_deadline():
    engine = _engine()
    engine.observe(T0, [web()])
    engine.observe(T0 + 20, [web(), api()])
    assert engine.observe(T0 + 59, [web(), api()]).notifications == []
    (page,) = _triggered([engine.tick(T0 + MIN)])
    assert page.incident["service"] == "api" and page.incident["related_services"] == ["web"]


def test_victim_folds_when_its_dependency_joins_another_incident():
    """The dependency's alert need not open an incident: db joining storage's incident as
    related is enough to make storage's incident the root cause of the held api one."""
    engine = _engine()
    engine.observe(T0 - 10 * MIN, [make_alert(service="storage")])
    engine.acknowledge(T0 - 9 * MIN, "INC-2024-0001", by="alice")
    # api's alert fires while db is still fine: api depends on db, not on storage.
    engine.observe(T0, [make_alert(service="storage"), api()])
    assert engine.state.incidents["INC-2024-0002"].held_until is not None
    decision = engine.observe(
        T0 + 30,
        [make_alert(service="storage"), api(), db(depends_on=("storage",))],
    )
    assert decision.notifications == []
    assert list(engine.state.incidents) == ["INC-2024-0001"]
    assert engine.state.incidents["INC-2024-0001"].related_services == ["db", "api"]


# ------------------------------------------------------------------ victim alone


def test_victim_alone_pages_after_exactly_dependency_wait():
    engine = _engine()
    decisions = [engine.observe(T0 + t, [api()]) for t in (0, 15, 30, 45)]
    decisions.append(engine.tick(T0 + 59.999))
    assert _triggered(decisions) == []
    released = engine.tick(T0 + MIN)
    (page,) = released.notifications
    assert (page.event, page.dedup_key, page.created_at) == ("triggered", "INC-2024-0001", T0 + MIN)
    incident = engine.state.incidents["INC-2024-0001"]
    assert incident.held_until is None and incident.merged_into is None
    assert incident.opened_at == T0 and incident.last_notified_at == T0 + MIN
    assert _kinds(incident)[-2:] == ["hold_ended", "notified"]
    # Nothing more while it keeps firing.
    later = [engine.observe(T0 + MIN + t, [api()]) for t in (0, 15, 30, 300)]
    assert _triggered(later) == []


def test_the_response_target_counts_from_opening_not_from_the_page():
    engine = IncidentEngine(
        IncidentConfig(
            receivers=[{"name": "oncall"}, {"name": "team-lead", "severities": []}],
            dependency_wait="5m",
            escalate_from_open=[],  # the chain from the missed response target
        )
    )
    engine.observe(T0, [api(short_error_ratio=1.0)])  # SEV1: 15 min response target
    escalations = []
    for t in range(30, 20 * 60, 30):
        d = engine.observe(T0 + t, [api(short_error_ratio=1.0)])
        escalations += [n.created_at - T0 for n in d.notifications if n.event == "escalated"]
    assert escalations == [15 * MIN]


def test_held_incident_that_clears_before_the_wait_still_pages_once():
    """A held page is a delayed page, not a dropped one (resolve_after is longer)."""
    engine = _engine()
    engine.observe(T0, [api()])
    engine.observe(T0 + 30, [])
    assert [n.event for n in engine.tick(T0 + MIN).notifications] == ["triggered"]


def test_resolved_while_held_never_pages():
    engine = _engine(resolve_after="30s", dependency_wait="5m")
    decisions = [engine.observe(T0, [api()]), engine.observe(T0 + 10, [])]
    decisions += [engine.tick(T0 + t) for t in range(20, 600, 20)]
    assert [n for d in decisions for n in d.notifications] == []
    (resolved,) = [i for d in decisions for i in d.incidents if i.status == "resolved"]
    assert resolved.held_until is None and resolved.merged_into is None


def test_acknowledged_while_held_is_not_paged_and_not_merged():
    engine = _engine()
    engine.observe(T0, [api()])
    ack = engine.acknowledge(T0 + 10, "INC-2024-0001", by="alice")
    assert ack.notifications == []
    assert engine.state.incidents["INC-2024-0001"].held_until is None
    decisions = [engine.tick(T0 + MIN), engine.observe(T0 + 70, [api(), db()])]
    assert [(n.event, n.dedup_key) for n in _triggered(decisions)] == [
        ("triggered", "INC-2024-0002")
    ]
    assert sorted(engine.state.incidents) == ["INC-2024-0001", "INC-2024-0002"]


def test_silenced_held_incident_waits_for_the_silence():
    engine = _engine()
    engine.observe(T0, [api()])
    engine.add_silence(T0 + 10, ["service=api"], T0 + 10, T0 + 10 * MIN, "alice", "deploy")
    decisions = [engine.observe(T0 + t, [api()]) for t in range(30, 10 * 60, 30)]
    assert _triggered(decisions) == []
    (page,) = engine.observe(T0 + 10 * MIN + 1, [api()]).notifications
    assert page.dedup_key == "INC-2024-0001"


# ------------------------------------------------------------------ restart mid-hold


def test_state_json_round_trip_keeps_the_hold():
    engine = _engine()
    engine.observe(T0, [api()])
    text = json.dumps(engine.state.to_json())
    restored = IncidentEngine(_config(), EngineState.from_json(json.loads(text)))
    assert restored.state.incidents["INC-2024-0001"].held_until == T0 + MIN
    assert restored.tick(T0 + 59).notifications == []
    assert [n.id for n in restored.tick(T0 + MIN).notifications] == [
        "INC-2024-0001:triggered:oncall:1"
    ]


def _run(store, steps):
    """Apply each step's decision to the store with a fresh engine per step, as a daemon
    restarted before every call would."""
    for now, alerts in steps:
        engine = IncidentEngine(_config(), store.load_state(now))
        decision = engine.tick(now) if alerts is None else engine.observe(now, alerts)
        store.apply(decision)


@pytest.mark.parametrize("root_cause", [False, True])
def test_restart_mid_hold_neither_loses_nor_duplicates_the_page(tmp_path, root_cause):
    store = SQLiteStore.in_state_dir(tmp_path / "state")
    try:
        engine = IncidentEngine(_config(), store.load_state(T0))
        store.apply(engine.observe(T0, [api()]))
        engine.tick(T0 + MIN)  # computed, then the process dies before applying it
        later = [api(), db()] if root_cause else [api()]
        _run(
            store,
            [
                (T0 + 30, later),
                (T0 + 45, None),
                (T0 + MIN, None),
                (T0 + MIN, None),  # the same tick again after another restart
                (T0 + 90, later),
                (T0 + 5 * MIN, None),
            ],
        )
        pages = [i for i in store.outbox_items() if i.notification.event == "triggered"]
        expected = "INC-2024-0002" if root_cause else "INC-2024-0001"
        assert [i.notification.dedup_key for i in pages] == [expected]
        if root_cause:
            victim = store.get_incident("INC-2024-0001")
            assert victim is not None and victim.merged_into == "INC-2024-0002"
            assert victim.status is IncidentStatus.resolved
            assert [e.kind for e in victim.timeline] == ["opened", "held", "merged", "resolved"]
            assert store.get_incident("INC-2024-0002").related_services == ["api"]
        else:
            (held,) = store.list_incidents(status="investigating")
            assert held.held_until is None and held.last_notified_at == T0 + MIN
    finally:
        store.close()


# ------------------------------------------------------------------ victim already paged


def test_root_cause_after_the_victim_paged_links_both_without_a_second_page():
    # With the correlation window off; within it the root cause takes the victim's
    # incident over instead (tests/test_dependency_correlation_window.py).
    engine = _engine(dependency_correlation_window="0s")
    decisions = [engine.observe(T0 + t, [api()]) for t in (0, 30)]
    decisions.append(engine.tick(T0 + MIN))
    assert [n.dedup_key for n in _triggered(decisions)] == ["INC-2024-0001"]

    later = [engine.observe(T0 + MIN + t, [api(), db()]) for t in range(30, 600, 30)]
    assert [(n.event, n.dedup_key) for d in later for n in d.notifications] == [
        ("triggered", "INC-2024-0002")
    ]
    victim = engine.state.incidents["INC-2024-0001"]
    root = engine.state.incidents["INC-2024-0002"]
    assert victim.merged_into is None and victim.status is IncidentStatus.investigating
    assert victim.fingerprints == [api().fingerprint]
    assert root.fingerprints == [db().fingerprint]
    assert root.related_services == ["api"]
    (on_root,) = [e for e in root.timeline if e.kind == "related"]
    assert on_root.data == {"incident": "INC-2024-0001", "service": "api", "merged": False}
    (on_victim,) = [e for e in victim.timeline if e.kind == "related"]
    assert on_victim.data == {"incident": "INC-2024-0002", "service": "db", "root_cause": True}
    page = _triggered(later)[0]
    assert "also affected: api" in page.message


def test_dependency_first_still_joins_with_no_hold():
    engine = _engine()
    engine.observe(T0, [db()])
    decisions = [engine.observe(T0 + t, [db(), api()]) for t in (30, 60, 90)]
    decisions.append(engine.tick(T0 + 5 * MIN))
    assert [n for d in decisions for n in d.notifications] == []
    (incident,) = engine.state.incidents.values()
    assert incident.service == "db" and incident.related_services == ["api"]
    assert incident.held_until is None


# ------------------------------------------------------------------ configuration


def test_dependency_wait_zero_is_the_old_behaviour():
    engine = _engine(dependency_wait="0s", dependency_correlation_window="0s")
    first = engine.observe(T0, [api()])
    assert [(n.event, n.dedup_key) for n in first.notifications] == [("triggered", "INC-2024-0001")]
    assert engine.state.incidents["INC-2024-0001"].held_until is None
    second = engine.observe(T0 + 30, [api(), db()])
    assert [(n.event, n.dedup_key) for n in second.notifications] == [
        ("triggered", "INC-2024-0002")
    ]
    assert sorted(engine.state.incidents) == ["INC-2024-0001", "INC-2024-0002"]
    assert [s for s in first.suppressed if s.reason == "dependency_wait"] == []


def test_services_without_dependencies_are_never_held():
    engine = _engine()
    assert [n.event for n in engine.observe(T0, [db()]).notifications] == ["triggered"]


def test_sev1_is_held_by_default_and_can_be_excluded():
    outage = api(short_error_ratio=1.0)
    assert _engine().observe(T0, [outage]).notifications == []
    engine = _engine(dependency_wait_severities=["SEV2", "SEV3", "SEV4"])
    assert [n.incident["severity"] for n in engine.observe(T0, [outage]).notifications] == ["SEV1"]


def test_severity_rising_to_an_unheld_severity_pages_at_once():
    engine = _engine(dependency_wait_severities=["SEV2", "SEV3", "SEV4"], dependency_wait="5m")
    assert engine.observe(T0, [api()]).notifications == []
    decision = engine.observe(T0 + 30, [api(short_error_ratio=0.9)])
    assert [(n.event, n.incident["severity"]) for n in decision.notifications] == [
        ("triggered", "SEV1")
    ]
    assert engine.state.incidents["INC-2024-0001"].held_until is None


def test_severity_rising_while_held_is_not_announced_separately():
    engine = _engine()
    engine.observe(T0, [api(tier="standard")])
    assert engine.observe(T0 + 30, [api(tier="critical")]).notifications == []
    (page,) = engine.tick(T0 + MIN).notifications
    assert (page.event, page.incident["severity"]) == ("triggered", "SEV2")


def test_config_key_validation_and_defaults():
    config = IncidentConfig()
    assert str(config.dependency_wait) == "1m"
    assert config.dependency_wait_severities == [
        Severity.SEV1,
        Severity.SEV2,
        Severity.SEV3,
        Severity.SEV4,
    ]
    with pytest.raises(ValueError):
        IncidentConfig(dependency_wait="soon")
    with pytest.raises(ValueError):
        IncidentConfig(dependency_wait_severities=["SEV5"])
