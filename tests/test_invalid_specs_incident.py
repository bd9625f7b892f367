"""Issue #12, item 3's last part: a hot reload that leaves the specs invalid (last good set
kept) for longer than `invalid_specs_grace` raises the daemon's own warning incident
("SLO specs invalid", SEV3, naming the file:line:col of the first error) through the normal
incident path; it clears on the first valid reload and the incident resolves.

The timing rule is tested on `InvalidSpecsTimer` with a fake clock; the daemon test runs
the real Runtime (evaluator, incident engine, SQLite store, a webhook receiver on loopback)
on a fake clock and a scripted source, as tests/test_daemon_runtime.py does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon_runtime import Clock, ScriptedSource, build, make_config

from engine.alerting.alerts import SPECS_INVALID_ALERT_NAME, specs_invalid_alert
from engine.daemon.config import ConfigError, load_config
from engine.daemon.specs import InvalidSpecsTimer
from engine.demo.webhook_sink import WebhookSink
from engine.incidents.incident import Severity
from engine.spec.durations import Duration

ERROR = "/specs/api.yaml:6:12: invalid YAML: control character U+0000 is not allowed"


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def test_the_timer_fires_only_after_the_grace_and_forgets_on_a_valid_set() -> None:
    clock = Clock()
    timer = InvalidSpecsTimer(Duration.parse("10m"))
    assert timer.observe(clock(), []) is None and timer.since is None
    broken_at = clock.advance(30)
    assert timer.observe(clock(), [ERROR, "second"]) is None
    assert timer.since == broken_at
    clock.advance(599)  # 9m59s: still within the grace
    assert timer.observe(clock(), [ERROR, "second"]) is None
    clock.advance(1)
    due = timer.observe(clock(), ["another first error"])
    # `since` is when it broke, not when the grace ran out; the error is the current one.
    assert due is not None
    assert (due.since, due.first_error, due.errors, due.grace) == (
        broken_at,
        "another first error",
        1,
        "10m",
    )
    # Valid again: forgotten, and a new breakage starts a new grace.
    assert timer.observe(clock.advance(60), []) is None and timer.since is None
    assert timer.observe(clock.advance(60), [ERROR]) is None
    assert timer.since == clock.now


def test_a_zero_grace_fires_at_once() -> None:
    timer = InvalidSpecsTimer(Duration(0))
    due = timer.observe(100.0, [ERROR])
    assert due is not None and due.since == 100.0


def test_the_alert_names_the_first_error_and_is_a_ticket() -> None:
    alert = specs_invalid_alert(100.0, ERROR, 3, "10m")
    assert alert.severity == "ticket" and alert.service == "slo-engine"
    assert alert.labels["alertname"] == SPECS_INVALID_ALERT_NAME
    assert alert.summary == f"SLO specs invalid for over 10m: {ERROR} (and 2 more)"
    long = specs_invalid_alert(100.0, "/specs/api.yaml:6:12: " + "x" * 5000, 1, "10m")
    assert long.summary.startswith("SLO specs invalid for over 10m: /specs/api.yaml:6:12: xx")
    assert len(long.summary) < 300


def test_the_grace_is_a_config_key_in_its_range(tmp_path: Path) -> None:
    base = {"specs": ["s"], "prometheus_url": "http://127.0.0.1:9", "state_dir": "st"}
    assert load_config(None, base).invalid_specs_grace == Duration.parse("10m")
    assert load_config(None, {**base, "invalid_specs_grace": "0s"}).invalid_specs_grace.ms == 0
    path = tmp_path / "config.yml"
    path.write_text(
        "prometheus_url: http://127.0.0.1:9\nspecs: [s]\nstate_dir: st\ninvalid_specs_grace: 2d\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(
        p.startswith(f"{path}:4:1: invalid_specs_grace 2d is out of range")
        for p in caught.value.problems
    ), caught.value.problems


def test_invalid_specs_past_the_grace_open_a_warning_incident_that_resolves_when_fixed(
    tmp_path: Path, sink: WebhookSink
) -> None:
    clock = Clock()
    config = make_config(tmp_path, sink, invalid_specs_grace="5m")
    runtime = build(config, clock, ScriptedSource())
    api = tmp_path / "specs" / "api.yaml"
    good = api.read_text()
    place = f"{api}:6:12:"

    def specs_alerts() -> list[str]:
        return [
            a.summary for a in report.alerts if a.labels["alertname"] == SPECS_INVALID_ALERT_NAME
        ]

    try:
        runtime.run_cycle()
        api.write_text(good.replace("owner: team-platform", "owner: team\x00platform"))
        broken_at = clock.advance(60)
        report = runtime.run_cycle(broken_at)
        assert not runtime.readiness()[0]  # visible at once, but no incident yet
        assert specs_alerts() == []
        for _ in range(4):  # up to 4 minutes: within the 5m grace
            report = runtime.run_cycle(clock.advance(60))
            assert specs_alerts() == []
        assert sink.events("triggered", service="slo-engine") == []

        report = runtime.run_cycle(clock.advance(60))  # 5 minutes: past the grace
        (summary,) = specs_alerts()
        assert summary.startswith(f"SLO specs invalid for over 5m: {place} invalid YAML")
        (incident,) = runtime.list_incidents("open")
        assert incident.service == "slo-engine" and incident.severity is Severity.SEV3
        assert incident.summary == summary
        (triggered,) = sink.events("triggered", service="slo-engine")
        assert triggered.incident["severity"] == "SEV3" and place in triggered.incident["summary"]
        # The last good set is still evaluated meanwhile, and nothing else fired.
        assert len(report.results) == 5 and {r.status for r in report.results} == {"ok"}

        # A second cycle of the same breakage: the same incident, no second notification.
        report = runtime.run_cycle(clock.advance(60))
        assert len(specs_alerts()) == 1
        assert len(sink.events("triggered", service="slo-engine")) == 1

        api.write_text(good)  # fixed: the alert clears at once, the incident resolve_after later
        report = runtime.run_cycle(clock.advance(60))
        assert specs_alerts() == [] and runtime.readiness() == (True, [])
        for _ in range(6):
            report = runtime.run_cycle(clock.advance(60))
        (resolved,) = sink.events("resolved", service="slo-engine")
        assert resolved.incident["id"] == incident.id
        assert runtime.list_incidents("open") == []
    finally:
        runtime.close()


def test_specs_fixed_within_the_grace_raise_nothing(tmp_path: Path, sink: WebhookSink) -> None:
    clock = Clock()
    runtime = build(make_config(tmp_path, sink, invalid_specs_grace="5m"), clock, ScriptedSource())
    api = tmp_path / "specs" / "api.yaml"
    good = api.read_text()
    try:
        runtime.run_cycle()
        for _ in range(3):  # broken 4 minutes, fixed, broken 4 more: never 5 in a row
            api.write_text(good.replace("objective: 99.9", "objective: 200"))
            for _ in range(4):
                runtime.run_cycle(clock.advance(60))
            api.write_text(good)
            runtime.run_cycle(clock.advance(60))
        assert runtime.list_incidents("open") == []
        assert sink.events("triggered", service="slo-engine") == []
    finally:
        runtime.close()


def test_run_takes_the_grace_as_a_flag(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli import _register, app

    _register()
    flags = ["run", "--specs", str(tmp_path), "--prometheus-url", "http://127.0.0.1:9"]
    flags += ["--state-dir", str(tmp_path / "state"), "--invalid-specs-grace", "2d"]
    result = CliRunner().invoke(app, flags)
    assert result.exit_code == 2, result.output
    assert "invalid_specs_grace 2d is out of range — 0s ≤ invalid_specs_grace ≤ 1d" in result.stderr
