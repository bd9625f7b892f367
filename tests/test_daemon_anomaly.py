"""Anomaly detection in the running daemon: the REAL Runtime (evaluator, incident engine,
SQLite store, webhook receiver on loopback) on a fake clock over a scripted seasonal source.

Three weeks of daily- and weekly-seasonal traffic, then traffic falls to 10 % with no
errors: burn rates see nothing, the anomaly opens a SEV4 incident 10 minutes in, and the
critical service's incident becomes SEV3 once the anomaly is sustained (30 minutes later).
A broken anomaly fetch never stops burn-rate evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from test_anomaly_live import DROP, HOUR, MIN, RES, SeasonalSource
from test_daemon_runtime import Clock, DeliveredRuntime, make_config

from engine.daemon.runtime import CycleReport, Runtime
from engine.demo.webhook_sink import WebhookSink
from engine.evaluation.source import SourceUnavailable
from engine.incidents.incident import Severity
from engine.telemetry import setup_telemetry

SERVICE = """\
apiVersion: slo-engine/v1
service: {service}
tier: {tier}
{anomaly}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{{job="{service}",code=~"5.."}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))
"""
ANOMALY_ON = "anomaly: {enabled: true}"


def write_service(specs: Path, service: str, tier: str, anomaly: bool) -> Path:
    path = specs / f"{service}.yaml"
    path.write_text(
        SERVICE.format(service=service, tier=tier, anomaly=ANOMALY_ON if anomaly else "")
    )
    return path


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def start(tmp_path: Path, sink: WebhookSink, source: SeasonalSource, **extra: Any) -> Runtime:
    """checkout (critical) and web (standard) watch anomalies; search does not."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_service(specs, "checkout", "critical", anomaly=True)
    write_service(specs, "web", "standard", anomaly=True)
    write_service(specs, "search", "standard", anomaly=False)
    config = make_config(tmp_path, sink, **extra)
    return DeliveredRuntime(config, clock=Clock(DROP - 2 * HOUR), source=source)


def cycles(runtime: Runtime, until: float, every: float = MIN) -> Iterator[CycleReport]:
    clock = runtime.clock
    assert isinstance(clock, Clock)
    while clock.now <= until:
        yield runtime.run_cycle(clock.now)
        clock.advance(every)


def open_by_service(runtime: Runtime) -> dict[str, Severity]:
    return {i.service: i.severity for i in runtime.list_incidents("open")}


def metric_lines(runtime: Runtime) -> dict[str, float]:
    text = generate_latest(runtime.metrics_registry).decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("slo_engine_anomal"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def anomaly_alerts(report: CycleReport) -> dict[str, bool]:
    return {a.service: a.sustained for a in report.alerts if a.severity == "anomaly"}


def test_traffic_drop_opens_sev4_then_sev3_for_the_critical_service(
    tmp_path: Path, sink: WebhookSink
) -> None:
    source = SeasonalSource()
    source.drop_from, source.drop_until = DROP, DROP + 2 * HOUR
    source.drop_services = {"checkout", "web"}
    runtime = start(tmp_path, sink, source)
    try:
        # Cold start two hours before: the evaluation cache and the anomaly windows fill;
        # then an hour of ordinary traffic. Nothing opens.
        for report in cycles(runtime, DROP + 10 * MIN - 1):
            assert anomaly_alerts(report) == {}
            assert {r.status for r in report.results} == {"ok"}
        assert runtime.list_incidents("open") == []
        assert runtime.anomalies.states() and all(s.ready for s in runtime.anomalies.states())
        lines = metric_lines(runtime)
        assert lines["slo_engine_anomaly_series_warming"] == 0
        assert lines["slo_engine_anomaly_history_bytes"] == 2 * 161_584
        assert lines['slo_engine_anomalies_firing{service="checkout",signal="traffic"}'] == 0

        # min_duration (10 min) of the drop completed: one SEV4 incident per service.
        report = runtime.run_cycle(runtime.clock.now)
        assert report.at == DROP + 10 * MIN
        assert anomaly_alerts(report) == {"checkout": False, "web": False}
        assert {r.status for r in report.results} == {"ok"}  # burn rates are blind to it
        assert open_by_service(runtime) == {"checkout": Severity.SEV4, "web": Severity.SEV4}
        opened = {i.service: i.id for i in runtime.list_incidents("open")}
        lines = metric_lines(runtime)
        # Positive = harmful: far below the seasonal norm.
        score = 'slo_engine_anomaly_score{service="checkout",signal="traffic",slo="checkout/availability"}'
        assert lines[score] > 20
        assert lines['slo_engine_anomalies_firing{service="checkout",signal="traffic"}'] == 1

        # Sustained for 30 minutes: the critical service's incident rises to SEV3 in place;
        # the standard service stays SEV4.
        runtime.clock.advance(MIN)
        for report in cycles(runtime, DROP + 40 * MIN - 1):
            assert anomaly_alerts(report) == {"checkout": False, "web": False}
            assert open_by_service(runtime)["checkout"] is Severity.SEV4
        report = runtime.run_cycle(runtime.clock.now)
        assert report.at == DROP + 40 * MIN
        assert anomaly_alerts(report) == {"checkout": True, "web": True}
        assert open_by_service(runtime) == {"checkout": Severity.SEV3, "web": Severity.SEV4}
        # The same incidents, raised in place: no second incident, no second trigger.
        assert {i.service: i.id for i in runtime.list_incidents()} == opened
        incident = runtime.get_incident(opened["checkout"])
        assert incident is not None and incident.opened_at == DROP + 10 * MIN
        triggered = sink.events("triggered", service="checkout")
        assert [r.incident["severity"] for r in triggered] == ["SEV4"]
    finally:
        runtime.close()


def test_anomaly_detection_has_its_own_span_in_the_cycle_trace(
    tmp_path: Path, sink: WebhookSink
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    telemetry = setup_telemetry(span_exporters=[exporter])
    source = SeasonalSource()
    specs = tmp_path / "specs"
    specs.mkdir()
    write_service(specs, "checkout", "critical", anomaly=True)
    config = make_config(tmp_path, sink)
    runtime = Runtime(config, clock=Clock(DROP), source=source, telemetry=telemetry)
    try:
        runtime.run_cycle()
        telemetry.tracer_provider.force_flush()
        spans = exporter.get_finished_spans()
        by_id = {s.context.span_id: s for s in spans}
        (anomalies,) = [s for s in spans if s.name == "anomalies"]
        assert by_id[anomalies.parent.span_id].name == "slo_engine.cycle"  # type: ignore[union-attr]
        fetches = [s for s in spans if s.name == "anomalies.fetch"]
        assert len(fetches) == 3  # the first three chunks of the cold fill
        assert all(by_id[f.parent.span_id] is anomalies for f in fetches)  # type: ignore[union-attr]
        # At the finest step two scrapes fill (15 s scrapes: 1m), averaged into 5m slots, so a
        # scrape gap never reads as a traffic drop (engine.anomaly.live.fetch_step).
        assert {f.attributes["slo_engine.step"] for f in fetches} == {"1m"}
        assert anomalies.attributes["slo_engine.anomaly_warming"] == 2
        assert anomalies.attributes["slo_engine.anomaly_requests"] == 3
    finally:
        runtime.close()


def _anomaly_fetch(slos: Any, step: Any, start: float, end: float) -> bool:
    # The evaluation cache asks for all three SLOs together; the anomaly tracker only for
    # the two services that enable it, at its own 1m step (5m slots).
    return step.seconds == RES // 5 and "search/availability" not in {s.id for s in slos}


@pytest.mark.parametrize("error", [RuntimeError("boom (scripted)"), SourceUnavailable("timeout")])
def test_a_broken_anomaly_fetch_does_not_stop_burn_rate_evaluation(
    tmp_path: Path, sink: WebhookSink, error: Exception
) -> None:
    source = SeasonalSource()
    source.broken = lambda *call: error if _anomaly_fetch(*call) else None
    # A breaker that opens on one failure: anomaly failures must not count towards it.
    runtime = start(tmp_path, sink, source, source_breaker={"failures": 1, "cooldown": "10m"})
    try:
        for _ in cycles(runtime, DROP - HOUR):
            pass
        source.outage, source.outage_from = {"search/availability"}, runtime.clock.now
        for report in cycles(runtime, DROP - HOUR + 5 * MIN):
            assert report.source_error is None
        assert (
            report.results
            and {r.slo.id: r.status for r in report.results}["search/availability"] == "page"
        )
        assert open_by_service(runtime) == {"search": Severity.SEV3}
        assert len(sink.events("triggered", service="search")) == 1
        assert runtime.readiness() == (True, [])
        assert not runtime.source.circuit_open
        # One failure counted per cycle; nothing scored, nothing raised.
        assert metric_lines(runtime)["slo_engine_anomaly_failures_total"] >= 60
        assert runtime.anomalies.last_error is not None
        assert runtime.anomalies.states() == ()
    finally:
        runtime.close()


def test_while_anomaly_detection_fails_its_last_state_is_kept(
    tmp_path: Path, sink: WebhookSink
) -> None:
    """Missing anomaly data must not resolve an anomaly incident: the last known alerts are
    passed on while the anomaly fetch fails, well past `resolve_after` (5m here)."""
    source = SeasonalSource()
    source.drop_from, source.drop_until = DROP, DROP + 3 * HOUR
    source.drop_services = {"checkout"}
    runtime = start(tmp_path, sink, source)
    try:
        for _ in cycles(runtime, DROP + 15 * MIN):
            pass
        assert open_by_service(runtime) == {"checkout": Severity.SEV4}
        source.broken = lambda *call: (
            RuntimeError("boom (scripted)") if _anomaly_fetch(*call) else None
        )
        for report in cycles(runtime, DROP + 45 * MIN):
            assert anomaly_alerts(report) == {"checkout": False}
        assert open_by_service(runtime) == {"checkout": Severity.SEV4}
        assert sink.events("resolved", service="checkout") == []
        # Back: it catches up (fetching the missed steps) and goes on from the real state.
        source.broken = None
        report = runtime.run_cycle(runtime.clock.now)
        assert anomaly_alerts(report) == {"checkout": True}
        assert open_by_service(runtime) == {"checkout": Severity.SEV3}
    finally:
        runtime.close()


def test_hot_reload_turning_anomaly_detection_off_drops_its_series(
    tmp_path: Path, sink: WebhookSink
) -> None:
    source = SeasonalSource()
    runtime = start(tmp_path, sink, source)
    try:
        for _ in cycles(runtime, DROP - 2 * HOUR + 5 * MIN):
            pass
        assert {s.series.slo.service for s in runtime.anomalies.states()} == {"checkout", "web"}
        write_service(tmp_path / "specs", "web", "standard", anomaly=False)
        report = runtime.run_cycle(runtime.clock.advance(MIN))
        assert report.notes == []
        assert {s.series.slo.service for s in runtime.anomalies.states()} == {"checkout"}
        lines = metric_lines(runtime)
        assert not any('service="web"' in name for name in lines)
        assert lines["slo_engine_anomaly_history_bytes"] == 161_584
    finally:
        runtime.close()
