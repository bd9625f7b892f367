"""Issue #12, item 2's wording: the "SLO evaluation blind" meta-alert, `/readyz` and the
cycle metric say *what* failed. A cycle whose evaluation raised (an engine bug, a value no
bound caught) must not send the on-call to a healthy Prometheus: "evaluation failed:
<error class>"; an unreachable source says "source unreachable"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from test_daemon_runtime import Clock, ScriptedSource, build, make_config

from engine.alerting.alerts import BLIND_ALERT_NAME, CycleFailure, blind_alert
from engine.demo.webhook_sink import WebhookSink
from engine.evaluation.evaluator import Evaluator


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def test_the_blind_alert_says_what_failed() -> None:
    source = blind_alert(10.0, 3, CycleFailure("source", "connection refused"))
    assert source.summary == "SLO evaluation blind for 3 consecutive cycles: source unreachable"
    description = source.annotations["description"]
    assert description.startswith("The metrics source did not answer")
    assert description.endswith("Last error: source unreachable: connection refused")
    internal = blind_alert(10.0, 4, CycleFailure("evaluation", "division by zero", "KeyError"))
    assert internal.summary == (
        "SLO evaluation blind for 4 consecutive cycles: evaluation failed: KeyError"
    )
    description = internal.annotations["description"]
    assert "metrics source did not answer" not in description
    assert "the metrics source may be fine" in description
    assert description.endswith("Last error: evaluation failed: KeyError: division by zero")
    # The identity (labels, so the incident) is the same whatever failed.
    assert source.fingerprint == internal.fingerprint


def _blind(report: Any) -> list[Any]:
    return [a for a in report.alerts if a.labels["alertname"] == BLIND_ALERT_NAME]


def test_an_evaluation_failure_is_not_called_a_source_failure(
    tmp_path: Path, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Evaluator, at: float) -> Any:
        raise ZeroDivisionError("scripted evaluation bug")

    monkeypatch.setattr(Evaluator, "evaluate", broken)
    clock = Clock()
    source = ScriptedSource()
    runtime = build(make_config(tmp_path, sink, blind_after_cycles=2), clock, source)
    try:
        runtime.run_cycle()
        report = runtime.run_cycle(clock.advance(60))
        assert report.source_error is None  # the source was never the problem
        assert report.failure is not None and report.failure.kind == "evaluation"
        (alert,) = _blind(report)
        assert alert.summary.endswith(": evaluation failed: ZeroDivisionError")
        assert "source unreachable" not in alert.summary
        errors = {r.error for r in report.results}
        assert errors == {"evaluation failed: ZeroDivisionError: 'scripted evaluation bug'"}
        ready, reasons = runtime.readiness()
        assert not ready
        assert reasons == ["evaluation failed: ZeroDivisionError: 'scripted evaluation bug'"]
        (triggered,) = sink.events("triggered", service="slo-engine")
        assert "evaluation failed: ZeroDivisionError" in triggered.incident["summary"]
        metrics = generate_latest(runtime.metrics_registry).decode()
        assert 'slo_engine_cycles_total{outcome="evaluation_failed"} 2.0' in metrics
    finally:
        runtime.close()


def test_a_source_failure_says_source_unreachable(tmp_path: Path, sink: WebhookSink) -> None:
    clock = Clock()
    source = ScriptedSource()
    runtime = build(make_config(tmp_path, sink, blind_after_cycles=2), clock, source)
    try:
        runtime.run_cycle()
        source.down = True
        runtime.run_cycle(clock.advance(60))
        report = runtime.run_cycle(clock.advance(60))
        assert report.failure is not None and report.failure.kind == "source"
        assert report.source_error == report.failure.error
        (alert,) = _blind(report)
        assert alert.summary == "SLO evaluation blind for 2 consecutive cycles: source unreachable"
        assert "evaluation failed" not in alert.annotations["description"]
        ready, reasons = runtime.readiness()
        assert not ready and len(reasons) == 1
        assert reasons[0].startswith("source unreachable: ") and "fake-prometheus" in reasons[0]
        metrics = generate_latest(runtime.metrics_registry).decode()
        assert 'slo_engine_cycles_total{outcome="source_failed"} 2.0' in metrics
    finally:
        runtime.close()
