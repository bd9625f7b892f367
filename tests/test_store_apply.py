"""apply_with_retry against a real SQLite store: the one "decide → apply → reload and retry
on a stale state" rule the daemon and `slo-engine incidents` share."""

from __future__ import annotations

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine, IncidentError
from engine.incidents.state import Decision
from engine.store.apply import StateKeptChanging, apply_with_retry
from engine.store.base import StoreError
from engine.store.sqlite import DB_FILENAME, SQLiteStore

CONFIG = IncidentConfig(receivers=[{"name": "oncall"}], escalation=[])


@pytest.fixture
def stores(tmp_path):
    """Two connections to one database: the daemon's and another writer's (the CLI)."""
    path = tmp_path / DB_FILENAME
    ours, theirs = SQLiteStore(path), SQLiteStore(path)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_stale_write_is_recomputed_from_the_stored_state(stores) -> None:
    ours, theirs = stores
    engine = IncidentEngine(CONFIG, ours.load_state())  # loaded before the other write
    other = IncidentEngine(CONFIG, theirs.load_state())
    theirs.apply(other.observe(T0, [make_alert(service="web")]))
    calls: list[int] = []
    stale: list[bool] = []
    writes: list[Decision] = []

    def decide(e: IncidentEngine, now: float) -> Decision:
        calls.append(e.state.version)
        return e.observe(now, [make_alert(service="web"), make_alert(service="api")])

    def write(decision: Decision) -> None:
        writes.append(decision)
        ours.apply(decision)

    decision = apply_with_retry(
        ours,
        engine,
        decide,
        lambda: T0 + 60,
        apply=write,
        on_stale=lambda: stale.append(True),
    )
    # First from the outdated state (refused), then from the reloaded one.
    assert calls == [0, 1] and stale == [True] and len(writes) == 2
    assert decision.base_version == 1 and engine.state.version == decision.state.version
    # Recomputed, the api alert gets the next id; the web incident is the other writer's.
    assert sorted(i.id for i in ours.list_incidents()) == ["INC-2024-0001", "INC-2024-0002"]
    assert ours.get_incident("INC-2024-0001").service == "web"
    assert ours.load_state().version == decision.state.version


def test_at_fixes_the_decision_instant(stores) -> None:
    ours, _ = stores
    engine = IncidentEngine(CONFIG, ours.load_state())
    seen: list[float] = []

    def decide(e: IncidentEngine, now: float) -> Decision:
        seen.append(now)
        return e.observe(now, [make_alert()])

    apply_with_retry(ours, engine, decide, lambda: T0 + 999, at=T0)
    assert seen == [T0]
    assert ours.get_incident("INC-2024-0001").opened_at == T0


def test_an_incident_error_resyncs_the_engine_and_propagates(stores) -> None:
    ours, theirs = stores
    engine = IncidentEngine(CONFIG, ours.load_state())
    other = IncidentEngine(CONFIG, theirs.load_state())
    theirs.apply(other.observe(T0, [make_alert()]))
    assert engine.state.version == 0  # behind the store

    with pytest.raises(IncidentError):
        apply_with_retry(
            ours,
            engine,
            lambda e, now: e.acknowledge(now, "INC-2024-0099", "alice"),
            lambda: T0 + 30,
        )
    # Nothing written; the engine now sees what the store holds, so the next call works.
    assert ours.load_state().version == 1
    assert engine.state.version == 1 and "INC-2024-0001" in engine.state.incidents
    decision = apply_with_retry(
        ours,
        engine,
        lambda e, now: e.acknowledge(now, "INC-2024-0001", "alice"),
        lambda: T0 + 30,
    )
    assert decision.base_version == 1
    assert ours.get_incident("INC-2024-0001").acknowledged_by == "alice"


def test_gives_up_when_the_state_keeps_changing(stores) -> None:
    ours, theirs = stores
    engine = IncidentEngine(CONFIG, ours.load_state())
    other = IncidentEngine(CONFIG, theirs.load_state())
    calls: list[float] = []

    def decide(e: IncidentEngine, now: float) -> Decision:
        decision = e.observe(now, [make_alert()])
        # Another writer gets in between every time (its own alert: a new version).
        calls.append(now)
        other.reset(theirs.load_state())
        theirs.apply(other.observe(now, [make_alert(service=f"svc{len(calls)}")]))
        return decision

    with pytest.raises(StateKeptChanging, match="kept changing underneath") as info:
        apply_with_retry(ours, engine, decide, lambda: T0, retries=3)
    assert isinstance(info.value, StoreError)
    assert len(calls) == 3
    # None of our decisions landed: only the other writer's three incidents exist.
    assert sorted(i.service for i in ours.list_incidents()) == ["svc1", "svc2", "svc3"]
