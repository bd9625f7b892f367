"""Several replicas on one real PostgreSQL, in one process (the multi-process story is in
test_replicas_e2e.py): the incident lease and its fencing token, published states and
their staleness, sharding across runtimes, one leader deciding for all, failover, a paused
leader fenced out, and an idempotent POST retried on another replica."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, SampleSource, daemon_config, sample_runtime, shapes_for
from harness.incidents import T0, make_alert

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.fleet import Fleet, alerts_json, evaluation_json
from engine.daemon.replicas import ReplicaSet
from engine.daemon.runtime import Runtime
from engine.daemon.shards import ShardEvaluator
from engine.evaluation.result import SLOEvaluation
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.spec.durations import Duration
from engine.spec.loader import load_specs
from engine.store.leases import Fence, FencedOut, check_fence

psycopg = pytest.importorskip("psycopg")

from engine.store.coordination import PostgreSQLCoordination, StateRow  # noqa: E402
from engine.store.postgresql import PostgreSQLStore  # noqa: E402

pytestmark = pytest.mark.postgresql

ROOT = Path(__file__).resolve().parent.parent
SLOS = load_specs([ROOT / "slo_specs"]).slos
ADMIN = "admin-token-Zq8w3n5v9k2m"


@pytest.fixture
def stores(postgresql_database) -> Iterator[Callable[[], PostgreSQLStore]]:
    opened: list[PostgreSQLStore] = []

    def open_store() -> PostgreSQLStore:
        store = PostgreSQLStore(postgresql_database.dsn, postgresql_database.password_file)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def replicas(tmp_path: Path, postgresql_database) -> Iterator[Callable[..., Runtime]]:
    """`replicas(name, clock, source, **settings)`: a Runtime on the test's database."""
    started: list[Runtime] = []

    def start(name: str, clock: Any, source: Any, **settings: Any) -> Runtime:
        config = daemon_config(
            tmp_path / name,
            store=postgresql_database.dsn,
            store_password_file=str(postgresql_database.password_file),
            replica_id=name,
            **{"interval": "1s", **settings},
        )
        runtime = Runtime(config, clock=clock, source=source, notifiers={})
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.close()


# ---------------------------------------------------------------------- the lease


def test_lease_acquire_renew_expire_take_over_and_the_token_only_grows(stores) -> None:
    a, b = PostgreSQLCoordination(stores()), PostgreSQLCoordination(stores())
    ttl = 0.6
    tokens = []
    first = a.beat("a", 5.0, ttl, None)
    assert first.token == 1 and first.members == ("a",) and first.lease.holder == "a"
    tokens.append(first.token)
    follower = b.beat("b", 5.0, ttl, None)
    assert follower.token is None and follower.members == ("a", "b")
    assert follower.lease.holder == "a" and 0 < follower.lease.expires_in <= ttl
    # Renewing keeps the token (and the lease) while it is held.
    for _ in range(3):
        assert a.beat("a", 5.0, ttl, 1).token == 1
        assert b.beat("b", 5.0, ttl, None).token is None
        time.sleep(ttl / 3)
    # Expired: the next acquisition is another token, and the old holder cannot renew.
    time.sleep(ttl + 0.1)
    taken = b.beat("b", 5.0, ttl, None)
    assert taken.token == 2 and taken.lease.holder == "b"
    tokens.append(taken.token)
    stale = a.beat("a", 5.0, ttl, 1)
    assert stale.token is None and stale.lease.holder == "b"
    # A clean hand-over: released now, acquired by the other at once, with a new token.
    assert b.release("b", 2) is True
    handed = a.beat("a", 5.0, ttl, None)
    assert handed.token == 3
    tokens.append(handed.token)
    # A restart under the same replica_id takes its own lease at once — with a new token,
    # so the previous process (if it still ran) is fenced out too.
    restarted = a.beat("a", 5.0, ttl, None)
    assert restarted.token == 4
    tokens.append(restarted.token)
    assert a.beat("a", 5.0, ttl, 4).token == 4
    assert tokens == sorted(set(tokens))


def test_a_write_with_an_old_token_is_refused_and_writes_nothing(stores) -> None:
    store = stores()
    a, b = PostgreSQLCoordination(store), PostgreSQLCoordination(stores())
    assert a.beat("a", 5.0, 0.3, None).token == 1
    time.sleep(0.4)
    assert b.beat("b", 5.0, 0.3, None).token == 2  # a paused past its lease; b leads now

    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]), store.load_state())
    decision = engine.observe(T0, [make_alert("api", "availability", "page")])
    assert decision.changed and decision.notifications
    with pytest.raises(FencedOut, match="token 1 is stale"):
        store.apply(decision, fence=Fence(1))
    state = store.load_state()
    assert state.version == 0 and state.incidents == {}
    assert store.counts() == {"pending": 0, "sent": 0, "dead": 0}
    store.apply(decision, fence=Fence(2))  # the current leader's write goes through
    assert len(store.load_state().incidents) == 1


def test_a_takeover_waits_for_a_fenced_write_in_flight(stores) -> None:
    """FOR SHARE on the lease row: a new token cannot appear in the middle of a fenced
    write, so every write is wholly before the takeover or refused after it."""
    store = stores()
    a, b = PostgreSQLCoordination(store), PostgreSQLCoordination(stores())
    assert a.beat("a", 5.0, 0.3, None).token == 1
    time.sleep(0.4)  # expired, not yet taken
    taken: list[int | None] = []
    with store.transaction() as cur:
        check_fence(cur, Fence(1))  # the old leader's write, still open
        thread = threading.Thread(target=lambda: taken.append(b.beat("b", 5.0, 1, None).token))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive() and taken == []  # waits for the write to finish
    thread.join(timeout=10)
    assert taken == [2]


# ---------------------------------------------------------------------- published states


def _fleet(store: PostgreSQLStore, interval: float) -> tuple[Fleet, IncidentEngine]:
    coordination = PostgreSQLCoordination(store)
    replicas = ReplicaSet(coordination, "leader", interval)
    assert replicas.beat()
    evaluator = ShardEvaluator(SLOS, SampleSource(T0), scrape_interval=Duration.parse("15s"))
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]), store.load_state())
    return Fleet(coordination, replicas, evaluator, engine), engine


def _publish(store: PostgreSQLStore, slo_id: str, status: str, alerts: list[Any]) -> None:
    slo = next(s for s in SLOS if s.id == slo_id)
    evaluation = SLOEvaluation(slo, T0, status)  # type: ignore[arg-type]
    PostgreSQLCoordination(store).publish(
        "other",
        [StateRow(slo_id, T0, status, evaluation_json(evaluation), alerts_json(alerts))],
        "[]",
    )


def test_stale_published_states_count_as_no_data_and_never_resolve(stores) -> None:
    store = stores()
    fleet, engine = _fleet(store, interval=0.5)  # stale after 1 s
    page = make_alert("api", "availability", "page")
    _publish(store, "api/availability", "page", [page])
    view = fleet.view()
    assert [a.fingerprint for a in view.alerts] == [page.fingerprint]
    # Never published SLOs are unknown too: nothing about them may change.
    assert {e.slo.id for e in view.unknown} == {s.id for s in SLOS} - {"api/availability"}
    opened = engine.observe(T0, view.alerts, view.unknown)
    store.apply(opened, fence=fleet._replicas.fence())
    (incident,) = opened.incidents

    time.sleep(1.1)  # its owner stopped publishing: the state is older than two intervals
    stale = fleet.view()
    assert stale.alerts == []
    (unknown,) = [e for e in stale.unknown if e.slo.id == "api/availability"]
    assert unknown.status == "no_data" and "last published by replica other" in str(unknown.error)
    for minute in range(1, 31):  # half an hour of it: the clear timer never starts
        engine.observe(T0 + 60 * minute, stale.alerts, stale.unknown)
    assert engine.state.incidents[incident.id].status.value == "investigating"
    assert engine.state.alerts[page.fingerprint].cleared_at is None


# ---------------------------------------------------------------------- runtimes


def _incidents(runtime: Runtime) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (i.service, i.severity.value, tuple(sorted(i.slo_ids)))
        for i in runtime.list_incidents("open")
    }


def test_two_replicas_split_the_slos_and_one_leader_decides_for_all(
    replicas, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    source = SampleSource(T0, shapes_for(SLOS))
    a = replicas("a", clock, source)
    b = replicas("b", clock, source)
    for runtime in (a, b, a):
        runtime.heartbeat()
    assert a.replicas.leading() and not b.replicas.leading()
    reports = {r.replicas.replica_id: r.run_cycle(T0) for r in (a, b)}
    mine = {name: {x.slo.id for x in report.results} for name, report in reports.items()}
    assert mine["a"] and mine["b"] and not mine["a"] & mine["b"]
    assert mine["a"] | mine["b"] == {s.id for s in SLOS}
    assert reports["b"].decision is None  # a follower only publishes
    a.heartbeat()  # b published after a's cycle: the leader decides on that news now

    # The same incidents as one SQLite daemon evaluating everything.
    single = sample_runtime(tmp_path / "single", clock, T0, source=source)
    try:
        assert _incidents(a) == _incidents(single) == _incidents(b)
        expected = {r.slo.id: r.to_json() for r in single.slo_results()}
    finally:
        single.close()
    time.sleep(1.05)  # past the API's cache of the others' states (one interval)
    for runtime in (a, b):  # every replica answers for every SLO, with every number
        assert {r.slo.id: r.to_json() for r in runtime.slo_results()} == expected


def test_failover_within_two_intervals_and_a_paused_leader_is_fenced_out(replicas) -> None:
    clock = FakeClock(T0)
    source = SampleSource(T0, shapes_for(SLOS))
    a = replicas("a", clock, source)
    b = replicas("b", clock, source)
    for runtime in (a, b, a):
        runtime.heartbeat()
    for runtime in (a, b):
        runtime.run_cycle(T0)
    a.heartbeat()
    before = b.store.load_state().version

    # a stops (no heartbeat, no sign-off); b heartbeats every interval / 3 as the job does.
    stopped = time.monotonic()
    while not b.replicas.leading():
        assert time.monotonic() - stopped < 2 * a.interval, "no takeover within 2 intervals"
        b.heartbeat()
        time.sleep(b.replicas.timings.heartbeat)
    assert b.replicas.fence() == Fence(2)

    # a wakes up from its pause believing its lease is still good (its clock says so):
    a.replicas._monotonic = lambda: 0.0  # type: ignore[method-assign]
    a.replicas._valid_until = 1.0
    assert a.replicas.leading()
    source.shapes = {s.id: source.shapes[s.id] for s in SLOS if s.id != "api/availability"}
    report = a.run_cycle(T0 + 3600)
    assert report.decision is None and not a.replicas.leading()  # fenced out, stopped
    assert a.tick(T0 + 3600) is None
    assert b.store.load_state().version in (before, before + 1)  # only b's takeover wrote


def test_a_retried_post_on_another_replica_gets_the_same_answer(replicas, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    source = SampleSource(T0, shapes_for(SLOS))
    a = replicas("a", clock, source)
    b = replicas("b", clock, source)
    for runtime in (a, b, a):
        runtime.heartbeat()
    for runtime in (a, b):
        runtime.run_cycle(T0)
    a.heartbeat()
    (incident,) = [i for i in a.list_incidents("open") if i.service == "api"]
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ADMIN} name=alice\n")  # the token's name is the actor
    apps = [
        TestClient(
            create_app(r, load_tokens(tokens), rate_limit_per_s=1000, burst=1000, clock=clock)
        )
        for r in (a, b)
    ]
    url = f"/api/v1/incidents/{incident.id}/ack"
    headers = {"Authorization": f"Bearer {ADMIN}", "Idempotency-Key": "ack-once"}
    first = apps[0].post(url, json={}, headers=headers)
    retry = apps[1].post(url, json={}, headers=headers)  # the follower answers
    assert first.status_code == retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.text == first.text
    comment = f"/api/v1/incidents/{incident.id}/comment"
    reused = apps[1].post(comment, json={"text": "mallory"}, headers=headers)
    assert reused.status_code == 422
    timeline = b.get_incident(incident.id).timeline  # type: ignore[union-attr]
    assert [e.actor for e in timeline if e.kind == "acknowledged"] == ["alice"]
