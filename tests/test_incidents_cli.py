"""`slo-engine incidents list|show|ack|resolve --state-dir DIR`."""

from __future__ import annotations

import json

import pytest
from harness.incidents import T0, make_alert
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.store.sqlite import SQLiteStore

_register()
runner = CliRunner()


@pytest.fixture
def state_dir(tmp_path):
    directory = tmp_path / "state"
    store = SQLiteStore.in_state_dir(directory)
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]), store.load_state())
    store.apply(
        engine.observe(
            T0, [make_alert(short_error_ratio=0.9), make_alert(service="web", tier="standard")]
        )
    )
    store.apply(engine.resolve(T0 + 60, "INC-2024-0002", by="alice", note="false alarm"))
    store.close()
    return directory


def _run(*args):
    return runner.invoke(app, ["incidents", *map(str, args)])


def test_list_open_as_table(state_dir):
    result = _run("list", "--state-dir", state_dir)
    assert result.exit_code == 0, result.output
    assert "INC-2024-0001" in result.output and "SEV1" in result.output
    assert "INC-2024-0002" not in result.output  # resolved


def test_list_json_with_filters(state_dir):
    result = _run("list", "--state-dir", state_dir, "--status", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["id"], r["status"], r["severity"]) for r in rows] == [
        ("INC-2024-0002", "resolved", "SEV3"),
        ("INC-2024-0001", "investigating", "SEV1"),
    ]
    rows = json.loads(
        _run("list", "--state-dir", state_dir, "--status", "resolved", "--format", "json").output
    )
    assert [r["id"] for r in rows] == ["INC-2024-0002"]
    rows = json.loads(
        _run(
            "list",
            "--state-dir",
            state_dir,
            "--status",
            "all",
            "--severity",
            "sev1",
            "--format",
            "json",
        ).output
    )
    assert [r["id"] for r in rows] == ["INC-2024-0001"]


def test_show_with_timeline(state_dir):
    result = _run("show", "INC-2024-0002", "--state-dir", state_dir)
    assert result.exit_code == 0, result.output
    assert "false alarm" in result.output and "opened" in result.output
    data = json.loads(
        _run("show", "INC-2024-0002", "--state-dir", state_dir, "--format", "json").output
    )
    assert [e["kind"] for e in data["timeline"]] == ["opened", "notified", "resolved", "notified"]
    assert data["timeline"][2]["actor"] == "alice"


def test_ack_then_resolve_queue_notifications(state_dir):
    result = _run("ack", "INC-2024-0001", "--state-dir", state_dir, "--by", "bob")
    assert result.exit_code == 0, result.output
    assert "acknowledged by bob" in result.output and "oncall" in result.output
    result = _run(
        "resolve",
        "INC-2024-0001",
        "--state-dir",
        state_dir,
        "--by",
        "bob",
        "--note",
        "rolled back",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["incident"]["status"] == "resolved"
    assert [n.split(":")[1] for n in out["notifications"]] == ["resolved"]
    with SQLiteStore.in_state_dir(state_dir) as store:
        incident = store.get_incident("INC-2024-0001")
        events = [
            i.notification.event
            for i in store.outbox_items()
            if i.notification.dedup_key == "INC-2024-0001"
        ]
    assert incident.acknowledged_by == "bob" and incident.status.value == "resolved"
    assert events == ["triggered", "acknowledged", "resolved"]


def test_errors_have_exit_codes(tmp_path, state_dir):
    result = _run("list", "--state-dir", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no incident store here" in result.output
    assert not (tmp_path / "nowhere").exists()
    result = _run("ack", "INC-2024-0002", "--state-dir", state_dir, "--by", "bob")
    assert result.exit_code == 1 and "not an open incident" in result.output
    result = _run("show", "INC-2024-0042", "--state-dir", state_dir)
    assert result.exit_code == 1
    result = _run("list", "--state-dir", state_dir, "--status", "bogus")
    assert result.exit_code == 2


def test_hostile_text_is_printed_literally(state_dir):
    with SQLiteStore.in_state_dir(state_dir) as store:
        engine = IncidentEngine(IncidentConfig(), store.load_state())
        store.apply(
            engine.comment(T0 + 5, "INC-2024-0001", by="[bold]eve[/bold]", text="[red]x[/red]")
        )
    result = _run("show", "INC-2024-0001", "--state-dir", state_dir)
    assert "[red]x[/red]" in result.output and "[bold]eve[/bold]" in result.output
