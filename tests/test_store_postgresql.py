"""What only the PostgreSQL store has: several replicas on one database (two stores = two
pools), SKIP LOCKED outbox claims and their lease, migrations racing at start-up, the
password file. The shared contract is in test_store_contract.py; these run on the real
server of `harness.localpg`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.incidents import T0, make_alert

from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.store.base import StaleStateError, StoreError

psycopg = pytest.importorskip("psycopg")

from engine.store.postgresql import PostgreSQLStore  # noqa: E402
from engine.store.postgresql_schema import MIGRATIONS, SCHEMA_VERSION  # noqa: E402

pytestmark = pytest.mark.postgresql

CONFIG = IncidentConfig(receivers=[{"name": "oncall"}, {"name": "chat"}], escalation=[])
TABLES = {"schema_version", "incidents", "timeline", "silences", "id_sequence", "engine_state"}


@pytest.fixture
def replicas(postgresql_database) -> Iterator[Callable[..., PostgreSQLStore]]:
    """`replicas(**kwargs)` opens another store (its own pool) on the test's database."""
    opened: list[PostgreSQLStore] = []

    def open_replica(**kwargs: Any) -> PostgreSQLStore:
        store = PostgreSQLStore(
            postgresql_database.dsn, postgresql_database.password_file, **kwargs
        )
        opened.append(store)
        return store

    yield open_replica
    for store in opened:
        store.close()


@pytest.fixture
def admin(postgresql_server, postgresql_database) -> Iterator[Any]:
    """A superuser connection to the test's database, beside the stores."""
    with postgresql_server.admin(postgresql_database.name) as conn:
        yield conn


def _wait_for_lock_waiters(admin, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]
        if waiting >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} sessions never waited on a lock")


# ---------------------------------------------------------------------- schema


def test_migrates_an_empty_database(replicas, admin):
    store = replicas()
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    tables = {
        r[0]
        for r in admin.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert TABLES | {"outbox"} <= tables
    replicas()  # a second start runs nothing twice
    assert admin.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_refuses_a_newer_schema(replicas, admin):
    replicas().close()
    admin.execute(
        "INSERT INTO schema_version (version, description) VALUES (%s, 'from the future')",
        (SCHEMA_VERSION + 1,),
    )
    with pytest.raises(StoreError, match="newer than this slo-engine knows"):
        replicas()


def test_migrations_are_idempotent_across_two_processes_starting_at_once(
    postgresql_database, admin
):
    # Both processes import first, then open the store at the same wall-clock instant.
    script = textwrap.dedent(
        """
        import sys, time
        from engine.store.postgresql import PostgreSQLStore
        start = float(sys.argv[3])
        time.sleep(max(0.0, start - time.time()))
        PostgreSQLStore(sys.argv[1], sys.argv[2]).close()
        """
    )
    start = time.time() + 3.0
    args = [postgresql_database.dsn, str(postgresql_database.password_file), str(start)]
    processes = [
        subprocess.Popen([sys.executable, "-c", script, *args], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=60)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    versions = [r[0] for r in admin.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [m[0] for m in MIGRATIONS]
    assert admin.execute("SELECT count(*) FROM engine_state").fetchone()[0] == 1


# ---------------------------------------------------------------------- replicas


def test_two_replicas_apply_from_the_same_base_exactly_one_wins(replicas, admin):
    first, second = replicas(), replicas()
    engines = [IncidentEngine(CONFIG, s.load_state()) for s in (first, second)]
    decisions = [
        engines[0].observe(T0, [make_alert()]),
        engines[1].observe(T0, [make_alert(service="web")]),
    ]
    assert decisions[0].base_version == decisions[1].base_version == 0
    outcomes: dict[int, str] = {}

    def apply(index: int, store: PostgreSQLStore) -> None:
        try:
            store.apply(decisions[index])
            outcomes[index] = "applied"
        except StaleStateError:
            outcomes[index] = "stale"

    # Hold the version row so both applies are in flight at once, then let them race.
    admin.execute("BEGIN")
    admin.execute("SELECT version FROM engine_state WHERE id = 1 FOR UPDATE")
    threads = [threading.Thread(target=apply, args=(i, s)) for i, s in enumerate((first, second))]
    for t in threads:
        t.start()
    _wait_for_lock_waiters(admin, 2)
    admin.execute("ROLLBACK")
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes.values()) == ["applied", "stale"]
    winner = next(i for i, outcome in outcomes.items() if outcome == "applied")
    (incident,) = first.list_incidents()
    assert incident.id == "INC-2024-0001"
    assert incident.service == ("api" if winner == 0 else "web")
    assert first.load_state().version == 1
    assert first.counts()["pending"] == 2  # only the winner's pages


def test_the_stale_replica_reloads_and_never_reuses_an_id(replicas):
    first, second = replicas(), replicas()
    a = IncidentEngine(CONFIG, first.load_state())
    b = IncidentEngine(CONFIG, second.load_state())
    first.apply(a.observe(T0, [make_alert()]))
    with pytest.raises(StaleStateError):
        second.apply(b.observe(T0, [make_alert(service="web")]))
    b.reset(second.load_state())
    second.apply(b.observe(T0, [make_alert(), make_alert(service="web")]))
    assert sorted((i.id, i.service) for i in first.list_incidents()) == [
        ("INC-2024-0001", "api"),
        ("INC-2024-0002", "web"),
    ]


def _forty_pending(store: PostgreSQLStore) -> list[str]:
    engine = IncidentEngine(CONFIG, store.load_state())
    decision = engine.observe(T0, [make_alert(service=f"s{i}") for i in range(20)])
    store.apply(decision)
    return [n.id for n in decision.notifications]


def test_due_from_two_replicas_never_hands_out_the_same_item(replicas):
    first, second = replicas(), replicas()
    every = _forty_pending(first)
    for _ in range(3):  # rescans by each owner renew its claims; nothing moves across
        barrier = threading.Barrier(2)
        got: dict[int, list[str]] = {}

        def scan(index: int, store: PostgreSQLStore, got=got, barrier=barrier) -> None:
            barrier.wait()
            got[index] = [item.id for item in store.due(T0)]

        threads = [
            threading.Thread(target=scan, args=(i, s)) for i, s in enumerate((first, second))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not set(got[0]) & set(got[1])
        assert sorted(got[0] + got[1]) == sorted(every)


def test_due_skips_rows_another_claimer_has_locked(replicas, admin):
    store = replicas()
    every = _forty_pending(store)
    admin.execute("BEGIN")
    locked = [r[0] for r in admin.execute("SELECT id FROM outbox ORDER BY seq LIMIT 5 FOR UPDATE")]
    result: list[list[str]] = []
    scan = threading.Thread(target=lambda: result.append([i.id for i in store.due(T0)]))
    scan.start()
    scan.join(timeout=10)
    try:
        assert not scan.is_alive(), "due() waited for a locked row instead of skipping it"
        assert sorted(result[0]) == sorted(set(every) - set(locked))
    finally:
        admin.execute("ROLLBACK")


def test_a_dead_claimers_items_are_handed_out_again_after_the_lease(replicas):
    doomed, survivor = replicas(claim_lease=1.0), replicas()
    engine = IncidentEngine(CONFIG, doomed.load_state())
    store_items = engine.observe(T0, [make_alert()])
    doomed.apply(store_items)
    claimed = [i.id for i in doomed.due(T0)]
    assert len(claimed) == 2
    assert [i.id for i in doomed.due(T0)] == claimed  # its own claims: seen again
    assert survivor.due(T0) == []  # claimed by a live replica
    doomed.close()  # dies without mark_sent / mark_failed
    deadline = time.monotonic() + 10
    while not (taken := survivor.due(T0)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [i.id for i in taken] == claimed
    for item in taken:
        survivor.mark_sent(item.id, T0 + 5)
    assert survivor.counts() == {"pending": 0, "sent": 2, "dead": 0}


def test_a_failed_attempt_releases_the_claim(replicas):
    first, second = replicas(), replicas()
    engine = IncidentEngine(CONFIG, first.load_state())
    first.apply(engine.observe(T0, [make_alert()]))
    page, chat = first.due(T0)
    first.mark_failed(page.id, T0 + 1, T0 + 30, "HTTP 503")
    assert second.due(T0 + 29) == []
    (retry,) = second.due(T0 + 30)
    assert retry.id == page.id and retry.attempts == 1
    assert chat.id not in {i.id for i in second.due(T0 + 30)}  # still first's


# ---------------------------------------------------------------------- passwords


def _secret_free(exc: BaseException, secret: str) -> None:
    shown = "".join(traceback.format_exception(exc))
    assert secret not in shown and secret not in repr(exc)


def test_the_password_file_is_used(postgresql_database, tmp_path):
    with pytest.raises(StoreError, match="no password supplied") as missing:
        PostgreSQLStore(postgresql_database.dsn)
    _secret_free(missing.value, postgresql_database.password)
    store = PostgreSQLStore(postgresql_database.dsn, postgresql_database.password_file)
    try:
        assert store.load_state().version == 0
    finally:
        store.close()
    with_crlf = tmp_path / "pw-crlf"
    with_crlf.write_bytes(postgresql_database.password.encode() + b"\r\n")
    PostgreSQLStore(postgresql_database.dsn, with_crlf).close()


def test_a_wrong_password_never_appears_in_the_error(postgresql_database, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-p@ss/word%" + postgresql_database.password
    wrong_file = tmp_path / "wrong"
    wrong_file.write_text(wrong + "\n")
    with pytest.raises(StoreError, match="password authentication failed") as from_file:
        PostgreSQLStore(postgresql_database.dsn, wrong_file)
    _secret_free(from_file.value, wrong)
    in_dsn = postgresql_database.dsn.replace("slo@", "slo:Wr0ng-secret@", 1)
    with pytest.raises(StoreError, match="password authentication failed") as from_dsn:
        PostgreSQLStore(in_dsn)
    _secret_free(from_dsn.value, "Wr0ng-secret")
    unparsable = postgresql_database.dsn.replace("slo@", "slo:Wr0ng-secret@", 1) + "?bogus=1"
    with pytest.raises(StoreError, match="cannot be parsed") as bad:
        PostgreSQLStore(unparsable)
    _secret_free(bad.value, "Wr0ng-secret")
    assert "Wr0ng" not in caplog.text


def test_a_password_in_the_dsn_is_accepted_but_never_shown(postgresql_database, tmp_path):
    store = PostgreSQLStore(postgresql_database.dsn_with_password)
    try:
        assert store.load_state().version == 0
        for shown in (repr(store), store.dsn, str(vars(store))):
            assert postgresql_database.password not in shown
        assert "dbname=" + postgresql_database.name in store.dsn
    finally:
        store.close()
    with pytest.raises(StoreError, match="cannot read the PostgreSQL password file"):
        PostgreSQLStore(postgresql_database.dsn, tmp_path / "missing")
    (tmp_path / "empty").write_text("")
    with pytest.raises(StoreError, match="password file is empty"):
        PostgreSQLStore(postgresql_database.dsn, tmp_path / "empty")
