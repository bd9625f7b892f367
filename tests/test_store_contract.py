"""The incident store contract, run against every backend (SQLite, PostgreSQL): one-transaction
apply, optimistic concurrency, idempotent outbox, restarts, silences, threads.

Backend-specific behaviour lives in test_store_sqlite.py (WAL, the file, its schema) and
test_store_postgresql.py (replicas, SKIP LOCKED claims, leases, migrations, passwords).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import Declaration, IncidentEngine
from engine.incidents.incident import IncidentStatus, Severity
from engine.incidents.response import IncidentCategory, UpdateContent
from engine.incidents.silences import Matcher, Silence
from engine.incidents.state import Decision
from engine.store.base import IncidentStore, Outbox, StaleStateError, StoreError
from engine.store.open import open_store
from engine.store.sqlite import DB_FILENAME, SQLiteStore

CONFIG = IncidentConfig(receivers=[{"name": "oncall"}, {"name": "chat"}], escalation=[])


class Backend:
    """Opens stores on the same data (a state directory, a database): a restart or a second
    process is `open()` again. Closes everything it opened when the test ends."""

    def __init__(self, kind: str, opener: Callable[[], Any], schema_version: int) -> None:
        self.kind = kind
        self.schema_version = schema_version
        self._opener = opener
        self._opened: list[Any] = []

    def open(self) -> Any:
        store = self._opener()
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


def _postgresql_backend(request: pytest.FixtureRequest) -> Backend:
    from engine.store.postgresql import PostgreSQLStore
    from engine.store.postgresql_schema import SCHEMA_VERSION

    database = request.getfixturevalue("postgresql_database")
    return Backend(
        "postgresql",
        lambda: PostgreSQLStore(database.dsn, database.password_file),
        SCHEMA_VERSION,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        from engine.store.sqlite import SCHEMA_VERSION

        chosen = Backend(
            "sqlite", lambda: SQLiteStore.in_state_dir(tmp_path / "state"), SCHEMA_VERSION
        )
    else:
        chosen = _postgresql_backend(request)
    yield chosen
    chosen.close_all()


@pytest.fixture
def store(backend: Backend) -> Any:
    return backend.open()


def test_a_new_store_is_empty_and_reopens_cleanly(backend):
    store = backend.open()
    assert isinstance(store, IncidentStore) and isinstance(store, Outbox)
    assert store.schema_version() == backend.schema_version
    state = store.load_state()
    assert state.version == 0 and state.incidents == {} and state.sequences == {}
    assert store.list_incidents() == [] and store.list_silences(include_expired=True) == []
    assert store.counts() == {"pending": 0, "sent": 0, "dead": 0}
    store.close()
    # Reopening runs nothing twice and finds the same empty state.
    again = backend.open()
    assert again.schema_version() == backend.schema_version
    assert again.load_state().version == 0


def test_state_round_trip_through_the_store(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert(), make_alert(service="web", tier="standard")]))
    store.apply(engine.acknowledge(T0 + 60, "INC-2024-0001", by="alice"))
    store.apply(
        engine.add_silence(T0 + 60, ['service="mail"'], T0, T0 + 3600, "bob", "maintenance")
    )
    store.apply(engine.observe(T0 + 120, [make_alert()]))
    loaded = store.load_state()
    assert json.dumps(loaded.to_json(), sort_keys=True) == json.dumps(
        engine.state.to_json(), sort_keys=True
    )
    incident = store.get_incident("INC-2024-0001")
    assert incident is not None
    assert [e.kind for e in incident.timeline] == [
        e.kind for e in engine.state.incidents["INC-2024-0001"].timeline
    ]
    assert incident.acknowledged_by == "alice"


def test_values_come_back_with_the_same_python_types(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    decision = engine.observe(T0, [make_alert()])
    store.apply(decision)
    store.apply(engine.add_silence(T0, ['service="mail"'], T0, T0 + 600, "bob", "deploy"))
    (incident,) = store.list_incidents()
    assert type(incident.opened_at) is float
    entry = store.timeline(incident.id)[0]
    assert type(entry.at) is float and isinstance(entry.data, dict)
    (silence,) = store.list_silences(include_expired=True)
    assert all(type(v) is float for v in (silence.starts_at, silence.ends_at, silence.created_at))
    item = store.due(T0)[0]
    assert type(item.next_attempt_at) is float and type(item.created_at) is float
    assert type(item.attempts) is int and item.last_error is None
    assert item.notification == decision.notifications[0]


def test_list_and_filter_incidents(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(
        engine.observe(
            T0, [make_alert(short_error_ratio=0.9), make_alert(service="web", tier="standard")]
        )
    )
    store.apply(engine.resolve(T0 + 60, "INC-2024-0002", by="alice"))
    assert [i.id for i in store.list_incidents()] == ["INC-2024-0002", "INC-2024-0001"]
    assert [i.id for i in store.list_incidents(status=IncidentStatus.resolved)] == ["INC-2024-0002"]
    assert [i.id for i in store.list_incidents(severity=Severity.SEV1)] == ["INC-2024-0001"]
    assert [i.id for i in store.list_incidents(status="investigating", severity="SEV3")] == []
    assert [i.id for i in store.list_incidents(limit=1)] == ["INC-2024-0002"]
    assert store.get_incident("INC-1999-0001") is None


def test_incident_response_persists_roles_updates_action_items_and_review(backend):
    """Issue 11: what incident response adds lives in the incident's JSON body and its
    timeline — no new table — and survives a restart; an incident in `review` is closed
    (not loaded as open) yet still takes action items."""
    config = IncidentConfig(
        receivers=[{"name": "oncall"}], escalation=[], review_severities=["SEV1"]
    )
    store = backend.open()
    engine = IncidentEngine(config, store.load_state())
    declared = engine.declare(
        T0,
        Declaration("api", Severity.SEV1, "keys leaked", IncidentCategory.security),
        by="alice",
    )
    store.apply(declared)
    incident_id = declared.incidents[0].id
    store.apply(engine.assign_role(T0 + 1, incident_id, "technical_lead", "bob", by="alice"))
    content = UpdateContent("3 keys", "rotating", "noon", next_update_in=600.0, public=True)
    store.apply(engine.post_update(T0 + 2, incident_id, "carol", content))
    store.apply(engine.resolve(T0 + 3, incident_id, by="alice", note="rotated"))
    store.close()

    store = backend.open()  # a restart
    assert incident_id not in store.load_state().incidents  # in review: not open
    stored = store.get_incident(incident_id)
    assert stored is not None and stored.status is IncidentStatus.review
    assert [i.id for i in store.list_incidents(status=IncidentStatus.review)] == [incident_id]
    assert stored.category is IncidentCategory.security and stored.declared_by == "alice"
    assert stored.role_holders() == {"incident_commander": "alice", "technical_lead": "bob"}
    assert stored.latest_update is not None and stored.latest_update["impact"] == "3 keys"
    engine = IncidentEngine(config, store.load_state())
    store.apply(engine.add_action_item(T0 + 4, incident_id, "scan", "bob", "alice", stored))
    stored = store.get_incident(incident_id)
    store.apply(
        engine.change_action_item(T0 + 5, incident_id, "AI-1", "bob", status="done", stored=stored)
    )
    store.apply(
        engine.close_review(T0 + 6, incident_id, "alice", "done", store.get_incident(incident_id))
    )
    final = store.get_incident(incident_id)
    assert final is not None and final.status is IncidentStatus.resolved
    assert [(a.id, a.status, a.done_by) for a in final.action_items] == [("AI-1", "done", "bob")]
    kinds = [e.kind for e in final.timeline]
    assert kinds[-3:] == ["action_item", "action_item", "review_closed"]
    assert [e.kind for e in store.timeline(incident_id)] == kinds  # every entry numbered once


def test_ids_continue_across_restarts(backend):
    store = backend.open()
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert()]))
    store.apply(engine.resolve(T0 + 60, "INC-2024-0001", by="alice"))
    store.close()

    store = backend.open()
    engine = IncidentEngine(CONFIG, store.load_state())
    assert engine.state.incidents == {}  # resolved ones are not loaded
    store.apply(engine.observe(T0 + 3600, [make_alert(service="web")]))
    assert [i.id for i in store.list_incidents()] == ["INC-2024-0002", "INC-2024-0001"]
    store.close()

    store = backend.open()
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(1_735_689_600.0, [make_alert(service="db")]))  # 2025
    assert store.id_sequence() == {2024: 2, 2025: 1}
    assert store.list_incidents()[0].id == "INC-2025-0001"
    store.close()


def test_outbox_insertion_is_idempotent(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    decision = engine.observe(T0, [make_alert()])
    store.apply(decision)
    assert store.counts() == {"pending": 2, "sent": 0, "dead": 0}
    # The same notifications in a later decision (e.g. recomputed after a crash): nothing new.
    replay = Decision(
        base_version=decision.state.version,
        state=engine.state.clone(),
        notifications=decision.notifications,
        timeline=decision.timeline,
        incidents=decision.incidents,
    )
    replay.state.version += 1
    store.apply(replay)
    assert store.counts() == {"pending": 2, "sent": 0, "dead": 0}
    assert [i.id for i in store.outbox_items()] == [n.id for n in decision.notifications]


def test_apply_is_atomic(store, monkeypatch):
    engine = IncidentEngine(CONFIG, store.load_state())
    decision = engine.observe(T0, [make_alert()])
    calls = {"n": 0}
    backend_class = type(store)
    original = backend_class._enqueue

    def failing_enqueue(db, notification):
        calls["n"] += 1
        if calls["n"] == 2:  # after the incident, the timeline and one outbox row
            raise RuntimeError("disk on fire")
        original(db, notification)

    monkeypatch.setattr(backend_class, "_enqueue", staticmethod(failing_enqueue))
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.apply(decision)
    assert calls["n"] == 2
    assert store.list_incidents() == []
    assert store.timeline("INC-2024-0001") == []
    assert store.counts() == {"pending": 0, "sent": 0, "dead": 0}
    assert store.id_sequence() == {}
    assert store.load_state().version == 0
    # The same decision applies cleanly afterwards.
    monkeypatch.setattr(backend_class, "_enqueue", staticmethod(original))
    store.apply(decision)
    assert store.counts()["pending"] == 2 and store.load_state().version == 1


def test_stale_decision_is_refused_and_writes_nothing(store):
    first = IncidentEngine(CONFIG, store.load_state())
    second = IncidentEngine(CONFIG, store.load_state())
    store.apply(first.observe(T0, [make_alert()]))
    stale = second.observe(T0 + 1, [make_alert(service="web")])
    with pytest.raises(StaleStateError, match="reload the state and retry"):
        store.apply(stale)
    assert [i.id for i in store.list_incidents()] == ["INC-2024-0001"]
    # Reload and recompute: the web alert lands next to the api incident, never reusing its id.
    second.reset(store.load_state())
    store.apply(second.observe(T0 + 1, [make_alert(), make_alert(service="web")]))
    assert sorted(i.id for i in store.list_incidents()) == ["INC-2024-0001", "INC-2024-0002"]


def test_cli_ack_while_daemon_runs_is_not_lost(backend):
    daemon_store, cli_store = backend.open(), backend.open()
    daemon = IncidentEngine(CONFIG, daemon_store.load_state())
    daemon_store.apply(daemon.observe(T0, [make_alert()]))
    cli = IncidentEngine(CONFIG, cli_store.load_state())
    cli_store.apply(cli.acknowledge(T0 + 30, "INC-2024-0001", by="alice"))
    with pytest.raises(StaleStateError):
        daemon_store.apply(daemon.observe(T0 + 60, [make_alert()]))
    daemon.reset(daemon_store.load_state())
    daemon_store.apply(daemon.observe(T0 + 60, [make_alert()]))
    assert daemon_store.get_incident("INC-2024-0001").acknowledged_by == "alice"


def test_outbox_lifecycle(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert()]))
    items = store.due(T0)
    # Oldest first, then in the order the engine produced them.
    assert [(i.receiver, i.attempts, i.next_attempt_at) for i in items] == [
        ("oncall", 0, T0),
        ("chat", 0, T0),
    ]
    assert items[0].notification.dedup_key == "INC-2024-0001"
    assert store.due(T0 - 1) == []
    first, second = items
    store.mark_sent(first.id, T0 + 1)
    store.mark_failed(second.id, T0 + 1, T0 + 30, "HTTP 503")
    assert [i.id for i in store.due(T0 + 10)] == []
    (retry,) = store.due(T0 + 30)
    assert retry.id == second.id and retry.attempts == 1 and retry.last_error == "HTTP 503"
    store.mark_failed(second.id, T0 + 31, None, "HTTP 400 bad routing key")
    assert store.counts() == {"pending": 0, "sent": 1, "dead": 1}
    assert store.due(T0 + 3600) == []
    (dead,) = store.outbox_items("dead")
    assert dead.attempts == 2 and dead.last_error == "HTTP 400 bad routing key"


def test_due_respects_limit_and_order(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert()]))
    store.apply(engine.acknowledge(T0 + 10, "INC-2024-0001", "alice"))
    assert len(store.due(T0 + 10, limit=3)) == 3
    created = [i.created_at for i in store.due(T0 + 10)]
    assert created == sorted(created) and len(created) == 4


def test_due_at_infinity_lists_every_pending_item(store):
    # The deliverer scans with due(inf) to keep per-incident order; a store must accept it.
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert()]))
    (first, second) = store.due(T0)
    store.mark_failed(second.id, T0 + 1, T0 + 3600, "HTTP 503")
    assert [i.id for i in store.due(math.inf)] == [first.id, second.id]


def test_silences_add_list_delete_bump_the_version(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    silence = Silence(
        id="SIL-api",
        matchers=(Matcher.parse('service="api"'),),
        starts_at=T0,
        ends_at=T0 + 3600,
        created_by="alice",
        comment="deploy",
        created_at=T0,
    )
    store.add_silence(silence)
    assert store.list_silences(now=T0) == [silence]
    assert store.list_silences(now=T0 + 3600) == []
    assert store.list_silences(include_expired=True) == [silence]
    with pytest.raises(StaleStateError):
        store.apply(engine.observe(T0 + 1, [make_alert()]))
    engine.reset(store.load_state(now=T0 + 1))
    decision = engine.observe(T0 + 1, [make_alert()])
    assert decision.notifications == [] and [s.reason for s in decision.suppressed] == ["silenced"]
    store.apply(decision)
    assert store.delete_silence("SIL-api") is True
    assert store.delete_silence("SIL-api") is False
    assert store.list_silences(include_expired=True) == []


def test_list_silences_needs_now_to_filter(store):
    with pytest.raises(ValueError, match="give `now`"):
        store.list_silences()


def test_engine_silences_persist(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.add_silence(T0, ["service=~api|web"], T0, T0 + 600, "alice", "deploy"))
    store.apply(engine.expire_silence(T0 + 60, "SIL-000001"))
    (silence,) = store.list_silences(include_expired=True)
    assert silence.ends_at == T0 + 60 and silence.comment == "deploy"
    assert store.load_state(now=T0 + 61).silences == {}


def test_threads_share_one_store_safely(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert(service=f"s{i}") for i in range(20)]))
    items = store.due(T0)
    assert len(items) == 40
    errors = []

    def worker(chunk):
        try:
            for item in chunk:
                store.mark_sent(item.id, T0 + 1)
                store.counts()
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(items[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.counts() == {"pending": 0, "sent": 40, "dead": 0}


def test_sql_is_parameterized_against_hostile_text(store):
    engine = IncidentEngine(CONFIG, store.load_state())
    store.apply(engine.observe(T0, [make_alert()]))
    hostile = "x'); DROP TABLE incidents; --"
    store.apply(engine.comment(T0 + 1, "INC-2024-0001", by=hostile, text=hostile))
    assert store.get_incident("INC-2024-0001").timeline[-1].message == hostile
    assert store.list_incidents(status="investigating")[0].id == "INC-2024-0001"
    percent = "100% of %s and %(name)s"  # psycopg's placeholders, as data
    store.apply(engine.comment(T0 + 2, "INC-2024-0001", by=percent, text=percent))
    assert store.timeline("INC-2024-0001")[-1].message == percent


# ---------------------------------------------------------------------- open_store


def test_open_store_defaults_to_sqlite_in_the_state_dir(tmp_path):
    for setting in (None, "", "sqlite:"):
        store = open_store(setting, tmp_path / "state")
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "state" / DB_FILENAME
        store.close()


def test_open_store_takes_a_sqlite_path(tmp_path):
    store = open_store("sqlite:incidents/main.db", tmp_path / "state")
    assert store.path == tmp_path / "state" / "incidents" / "main.db"
    store.close()
    absolute = tmp_path / "elsewhere" / "x.sqlite3"
    store = open_store(f"sqlite://{absolute}", tmp_path / "state")
    assert store.path == absolute and absolute.exists()
    store.close()


def test_open_store_refuses_what_it_does_not_know(tmp_path):
    with pytest.raises(StoreError, match=r"scheme 'mysql'.*sqlite:PATH or postgresql://") as exc:
        open_store("mysql://slo:hunter2@db/slo", tmp_path)
    assert "hunter2" not in str(exc.value)
    with pytest.raises(StoreError, match="only used with a postgresql:// store"):
        open_store(None, tmp_path, password_file=tmp_path / "pw")


@pytest.mark.postgresql
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_opens_postgresql(scheme, postgresql_database, tmp_path):
    from engine.store.postgresql import PostgreSQLStore

    dsn = postgresql_database.dsn.replace("postgresql://", f"{scheme}://", 1)
    store = open_store(dsn, tmp_path / "unused", postgresql_database.password_file)
    try:
        assert isinstance(store, PostgreSQLStore) and store.load_state().version == 0
    finally:
        store.close()
    assert not (tmp_path / "unused").exists()


def test_compliance_days_are_upserts_that_never_double_count(backend):
    """Issue 14: daily rows keyed by (SLO, day). Re-applying a cycle adds no burning time,
    a gap longer than `max_gap` (a daemon that was down) adds none, and events are replaced
    by the day's recount, so replicas and restarts never double count."""
    from engine.store.history import ComplianceDay

    store = backend.open()
    history = store.compliance_history()
    day = ComplianceDay("api/availability", "2026-11-03", "api", 99.9, budget_remaining=0.8)
    t = 1_762_128_000.0  # 2026-11-03 00:00 UTC
    history.observe(day, t + 60, burning=True, max_gap=120)
    history.observe(day, t + 120, burning=True, max_gap=120)  # +60 s burning
    history.observe(day, t + 120, burning=True, max_gap=120)  # the same cycle again: +0
    history.observe(day, t + 180, burning=False, max_gap=120)  # not firing: +0
    history.observe(
        ComplianceDay("api/availability", "2026-11-03", "api", 99.9, budget_remaining=0.7),
        t + 600,
        burning=True,
        max_gap=120,
    )  # after a 420 s gap: +0, but the newest budget
    history.observe(day, t + 30, burning=True, max_gap=120)  # late and older: changes nothing
    events = ComplianceDay(
        "api/availability",
        "2026-11-03",
        "api",
        99.9,
        good=990.0,
        bad=10.0,
        total=1000.0,
        incidents=("INC-2026-0001",),
    )
    history.put_events(events, t + 900)
    history.put_events(events, t + 1800)  # a recount of the same day: replaced, not added
    history.put_events(
        ComplianceDay("db/up", "2026-11-04", "db", 99.0, good=5.0, bad=0.0, total=5.0), t
    )
    (row,) = history.days("2026-11-01", "2026-11-30", service="api")
    assert row.burning_seconds == 60.0
    assert row.budget_remaining == 0.7
    assert (row.good, row.bad, row.total) == (990.0, 10.0, 1000.0)
    assert row.incidents == ("INC-2026-0001",)
    assert [r.slo_id for r in history.days("2026-11-01", "2026-11-30")] == [
        "api/availability",
        "db/up",
    ]
    assert history.days("2026-12-01", "2026-12-31") == []
