"""Issue #12, items 2-3 in the daemon: one SLO failing is contained, failed cycles of any
kind raise the blind meta-incident, a reload of anything invalid is visible (readiness,
`slo_engine_specs_valid`, `last_error` with file:line) and never forgotten."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from test_daemon_runtime import T0, Clock, ScriptedSource, build, make_config, statuses

from engine.alerting.alerts import BLIND_ALERT_NAME
from engine.daemon import specs as daemon_specs
from engine.demo.webhook_sink import WebhookSink
from engine.evaluation import evaluator as evaluator_module
from engine.evaluation import isolation
from engine.evaluation.evaluator import Evaluator


@pytest.fixture
def sink() -> Any:
    with WebhookSink() as receiver:
        yield receiver


def test_one_failing_slo_is_an_error_and_the_rest_evaluate(
    tmp_path: Path, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = isolation.evaluate_window_events

    def fails_for_latency(slos: Sequence[Any], events: Any, plan: Any = None) -> Any:
        if any(s.id == "api/latency-p95" for s in slos):
            raise ArithmeticError("scripted failure in one SLO")
        return real(slos, events)

    monkeypatch.setattr(evaluator_module, "evaluate_window_events", fails_for_latency)
    monkeypatch.setattr(isolation, "evaluate_window_events", fails_for_latency)
    clock = Clock()
    runtime = build(make_config(tmp_path, sink), clock, ScriptedSource())
    try:
        report = runtime.run_cycle()
        by_id = {r.slo.id: r for r in report.results}
        assert by_id["api/latency-p95"].status == "error"
        assert "scripted failure in one SLO" in (by_id["api/latency-p95"].error or "")
        others = {k: v for k, v in statuses(runtime).items() if k != "api/latency-p95"}
        assert len(others) == 4 and "error" not in others.values(), others
    finally:
        runtime.close()


def test_failed_cycles_of_any_kind_go_blind(
    tmp_path: Path, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Evaluator, at: float) -> Any:
        raise RuntimeError("scripted evaluation bug")

    monkeypatch.setattr(Evaluator, "evaluate", broken)
    clock = Clock()
    runtime = build(make_config(tmp_path, sink, blind_after_cycles=3), clock, ScriptedSource())
    try:
        for cycle in range(1, 5):
            report = runtime.run_cycle(clock.advance(60) if cycle > 1 else None)
            assert all(r.status == "error" for r in report.results) and report.results
            assert report.blind is (cycle >= 3)
            blind = [a for a in report.alerts if a.labels["alertname"] == BLIND_ALERT_NAME]
            assert len(blind) == (1 if cycle >= 3 else 0)
        assert "scripted evaluation bug" in blind[0].annotations["description"]
        ready, reasons = runtime.readiness()
        assert not ready and any("evaluation failed" in r for r in reasons)
    finally:
        runtime.close()


def _exposition(runtime: Any) -> str:
    return generate_latest(runtime.metrics_registry).decode()


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda t: t.replace("owner: team-platform", "owner: team\x00platform"), "api.yaml:6:12:"),
        (lambda t: t + "x: " + "[" * 3000 + "]" * 3000 + "\n", "api.yaml:47:68:"),
        (
            lambda t: t.replace("threshold: 500ms", "threshold: " + "9" * 400 + "ms"),
            "api.yaml:39:20:",
        ),
    ],
    ids=["nul", "deep", "threshold-400-nines"],
)
def test_invalid_reload_is_visible_and_cleared_when_fixed(
    tmp_path: Path, sink: WebhookSink, edit: Any, where: str
) -> None:
    clock = Clock()
    runtime = build(make_config(tmp_path, sink), clock, ScriptedSource())
    api = tmp_path / "specs" / "api.yaml"
    good = api.read_text()
    try:
        runtime.run_cycle()
        api.write_text(edit(good))
        report = runtime.run_cycle(clock.advance(60))
        assert len(report.results) == 5  # the last good set is still evaluated
        status = runtime.spec_status()
        assert status["loaded_at"] == T0 and where in (status["last_error"] or "")
        ready, reasons = runtime.readiness()
        assert not ready and any(r.startswith("specs invalid") and where in r for r in reasons)
        assert "slo_engine_specs_valid 0.0" in _exposition(runtime)
        api.write_text(good)
        runtime.run_cycle(clock.advance(60))
        assert runtime.spec_status()["last_error"] is None
        assert runtime.readiness() == (True, [])
        assert "slo_engine_specs_valid 1.0" in _exposition(runtime)
    finally:
        runtime.close()


def test_a_reload_that_raises_is_reported_and_retried(
    tmp_path: Path, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    runtime = build(make_config(tmp_path, sink), clock, ScriptedSource())
    api = tmp_path / "specs" / "api.yaml"
    real = daemon_specs.load_specs
    try:
        runtime.run_cycle()
        api.write_text(api.read_text().split("  - name: latency-p95")[0])

        def crash(paths: Any) -> Any:
            raise RecursionError("scripted loader crash")

        monkeypatch.setattr(daemon_specs, "load_specs", crash)
        runtime.run_cycle(clock.advance(60))
        assert "spec reload failed" in (runtime.spec_status()["last_error"] or "")
        assert not runtime.readiness()[0]
        assert "slo_engine_specs_valid 0.0" in _exposition(runtime)
        # The files did not change again: they were never marked seen, so the next
        # cycle loads them.
        monkeypatch.setattr(daemon_specs, "load_specs", real)
        runtime.run_cycle(clock.advance(60))
        assert runtime.spec_status()["last_error"] is None
        assert runtime.spec_status()["slos"] == 4
    finally:
        runtime.close()
