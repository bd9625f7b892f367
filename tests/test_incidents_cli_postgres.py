"""`slo-engine incidents … --store postgresql://…`: the CLI on the database the daemon's
replicas share, against a real PostgreSQL (harness.localpg), flags and SLO_ENGINE_* vars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness.incidents import T0, make_alert
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.commands.exit_codes import ExitCode
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import IncidentStatus
from engine.store.sqlite import SQLiteStore

pytest.importorskip("psycopg")
from engine.store.postgresql import PostgreSQLStore

_register()
runner = CliRunner()
ENV = ("SLO_ENGINE_STORE", "SLO_ENGINE_STORE_PASSWORD_FILE", "SLO_ENGINE_STATE_DIR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def database(postgresql_database):
    """The store as a daemon replica leaves it: two incidents opened by alerts."""
    store = PostgreSQLStore(postgresql_database.dsn, postgresql_database.password_file)
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]), store.load_state())
    store.apply(
        engine.observe(
            T0, [make_alert(short_error_ratio=0.9), make_alert(service="web", tier="standard")]
        )
    )
    store.close()
    return postgresql_database


def _flags(db) -> list[str]:
    return ["--store", db.dsn, "--store-password-file", str(db.password_file)]


def _run(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, ["incidents", *map(str, args)], env=env)


def _stored(db, incident_id: str):
    store = PostgreSQLStore(db.dsn, db.password_file)
    try:
        return store.get_incident(incident_id)
    finally:
        store.close()


def test_list_show_ack_resolve_on_the_shared_store(database) -> None:
    listed = _run("list", *_flags(database), "--format", "json")
    assert listed.exit_code == ExitCode.OK, listed.output
    assert [(r["id"], r["service"]) for r in json.loads(listed.stdout)] == [
        ("INC-2024-0002", "web"),
        ("INC-2024-0001", "api"),
    ]

    acked = _run("ack", "INC-2024-0001", *_flags(database), "--by", "alice", "--format", "json")
    assert acked.exit_code == ExitCode.OK, acked.output
    assert json.loads(acked.stdout)["incident"]["acknowledged_by"] == "alice"
    incident = _stored(database, "INC-2024-0001")
    assert incident is not None and incident.acknowledged_by == "alice"

    resolved = _run(
        *("resolve", "INC-2024-0002", *_flags(database), "--by", "bob"),
        *("--note", "false alarm"),
    )
    assert resolved.exit_code == ExitCode.OK, resolved.output
    assert "INC-2024-0002 resolved by bob" in resolved.stdout
    incident = _stored(database, "INC-2024-0002")
    assert incident is not None and incident.status is IncidentStatus.resolved

    shown = _run("show", "INC-2024-0002", *_flags(database), "--format", "json")
    assert shown.exit_code == ExitCode.OK, shown.output
    detail = json.loads(shown.stdout)
    assert detail["status"] == "resolved"
    assert any(e["message"] == "false alarm" for e in detail["timeline"])

    missing = _run("show", "INC-2024-0099", *_flags(database))
    assert missing.exit_code == ExitCode.FINDINGS
    assert "no incident INC-2024-0099 in the PostgreSQL store" in missing.output
    assert database.password not in missing.output


def test_response_commands_take_the_store_from_the_environment(database) -> None:
    env = {
        "SLO_ENGINE_STORE": database.dsn,
        "SLO_ENGINE_STORE_PASSWORD_FILE": str(database.password_file),
    }
    changed = _run(
        *("status", "INC-2024-0001", "mitigating", "--note", "rolled back", "--by", "carol"),
        env=env,
    )
    assert changed.exit_code == ExitCode.OK, changed.output
    incident = _stored(database, "INC-2024-0001")
    assert incident is not None and incident.status is IncidentStatus.mitigating
    added = _run("action", "add", "INC-2024-0001", "alert on saturation", env=env)
    assert added.exit_code == ExitCode.OK, added.output
    incident = _stored(database, "INC-2024-0001")
    assert incident is not None
    assert [a.text for a in incident.action_items] == ["alert on saturation"]


def test_a_flag_wins_over_its_variable(database, tmp_path: Path) -> None:
    # A daemon container's SLO_ENGINE_STORE names one store; --store on the line another.
    other = tmp_path / "other.sqlite3"
    SQLiteStore(other).close()
    env = {
        "SLO_ENGINE_STORE": database.dsn,
        "SLO_ENGINE_STORE_PASSWORD_FILE": str(database.password_file),
    }
    on_pg = _run("list", "--format", "json", env=env)
    assert [r["id"] for r in json.loads(on_pg.stdout)] == ["INC-2024-0002", "INC-2024-0001"]
    # The password file belongs to the PostgreSQL store the flag replaced: a usage error.
    mixed = _run("list", "--store", f"sqlite:{other}", "--format", "json", env=env)
    assert mixed.exit_code == ExitCode.USAGE
    assert "only used with a postgresql:// --store" in mixed.output
    on_sqlite = _run(
        *("list", "--store", f"sqlite:{other}", "--format", "json"),
        env={"SLO_ENGINE_STORE": database.dsn},
    )
    assert on_sqlite.exit_code == ExitCode.OK, on_sqlite.output
    assert json.loads(on_sqlite.stdout) == []


def test_a_store_that_cannot_be_opened_exits_3_without_the_secret(database, tmp_path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("Wr0ng-secret\n")
    result = _run("list", "--store", database.dsn, "--store-password-file", wrong)
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "password authentication failed" in result.output
    assert "Wr0ng-secret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--store", "mysql://root:hunter2@db/slo"), "use postgresql://user@host:port/dbname"),
        (("--store", "postgresql://slo@127.0.0.1:9/x", "--store-password-file", "/nope"), "/nope"),
        (("--store", "sqlite:missing.sqlite3"), "missing.sqlite3: no incident store here"),
        ((), "no incident store given"),
    ],
)
def test_a_wrong_store_is_a_usage_error(args, message, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run("list", *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.output
    assert "hunter2" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "missing.sqlite3").exists()  # the CLI never creates a store
