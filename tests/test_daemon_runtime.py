"""Runtime: one cycle end to end on a fake clock and a scripted source, with the REAL
evaluator, incident engine, SQLite store, deliverer and a real webhook receiver on loopback.

The source is scripted (exact per-step rates, switchable outage and downtime) because these
tests are about the daemon's decisions, not PromQL; the end-to-end tests use Prometheus.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest

from engine.alerting.alerts import BLIND_ALERT_NAME
from engine.daemon.config import DaemonConfig, load_config
from engine.daemon.runtime import CycleReport, Runtime, SpecsInvalid
from engine.demo.webhook_sink import WebhookSink
from engine.evaluation.source import SourceUnavailable, StepRates
from engine.incidents.config import IncidentConfig
from engine.incidents.incident import Severity
from engine.incidents.state import Decision
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.telemetry import setup_telemetry

ROOT = Path(__file__).resolve().parent.parent
# 2024-03-01T00:00:00Z, on every cache grid.
T0 = 1_709_251_200.0


class ScriptedSource:
    """10 events/s per SLO; no bad ones, or 100 % bad for SLOs in `outage` from `outage_from`."""

    def __init__(self) -> None:
        self.outage: set[str] = set()
        self.outage_from = float("inf")
        self.outage_until = float("inf")
        self.down = False
        self.fetches = 0
        self.probes = 0
        self.http_requests = 0

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        self.fetches += 1
        self.http_requests += 1
        if self.down:
            raise SourceUnavailable("cannot connect to fake-prometheus (scripted)")
        n = round((end - start) / step.seconds) + 1 if end >= start else 0
        times = start + step.seconds * np.arange(n, dtype=np.float64)
        total = np.full((len(slos), n), 10.0)
        bad = np.zeros_like(total)
        active = (times > self.outage_from) & (times <= self.outage_until)
        for row, slo in enumerate(slos):
            if slo.id in self.outage:
                bad[row, active] = 10.0
        return StepRates(step=step, times=times, bad=bad, total=total)

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        self.probes += 1
        self.http_requests += 1
        if self.down:
            raise ConnectionError("cannot connect to fake-prometheus (scripted)")
        return [{"metric": {}, "value": [at, "1"]}]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def incident_settings() -> dict[str, Any]:
    settings: dict[str, Any] = {"resolve_after": "5m"}
    if "dependency_wait" in IncidentConfig.model_fields:
        # Tested by the incident engine's own tests; here it would only delay pages.
        settings["dependency_wait"] = "0s"
    return settings


def make_config(tmp_path: Path, sink: WebhookSink, **extra: Any) -> DaemonConfig:
    specs = tmp_path / "specs"
    if not specs.exists():
        shutil.copytree(ROOT / "slo_specs", specs)
    values: dict[str, Any] = {
        "specs": [str(specs)],
        "prometheus_url": "http://127.0.0.1:9",
        "state_dir": str(tmp_path / "state"),
        "interval": "60s",
        "webhooks": [sink.url],
        "incidents": incident_settings(),
        "source_breaker": {"failures": 100, "cooldown": "30s"},
    }
    values.update(extra)
    return load_config(None, values)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source() -> ScriptedSource:
    return ScriptedSource()


class DeliveredRuntime(Runtime):
    """The daemon's Runtime, each cycle and tick followed by the delivery it woke.

    The daemon's cycle only enqueues; the receivers' workers deliver within moments, on
    their own threads (tests/test_daemon_delivery.py tests that part). These tests are about
    decisions on a fake clock: waiting for the delivery pass keeps it at the cycle's time,
    and the receiver's view in step with the cycles.
    """

    def run_cycle(self, now: float | None = None) -> CycleReport:
        report = super().run_cycle(now)
        assert self.wait_for_delivery(), "delivery did not finish"
        return report

    def tick(self, now: float | None = None) -> Decision | None:
        decision = super().tick(now)
        assert self.wait_for_delivery(), "delivery did not finish"
        return decision


def build(config: DaemonConfig, clock: Clock, source: ScriptedSource, **kw: Any) -> Runtime:
    return DeliveredRuntime(config, clock=clock, source=source, **kw)


def statuses(runtime: Runtime) -> dict[str, str]:
    return {r.slo.id: r.status for r in runtime.slo_results()}


def test_outage_pages_once_and_missing_data_never_resolves(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    config = make_config(tmp_path, sink, blind_after_cycles=3)
    runtime = build(config, clock, source)
    try:
        assert runtime.slo_results() == []
        assert runtime.readiness() == (False, ["no evaluation cycle has completed yet"])
        runtime.run_cycle()
        assert set(statuses(runtime).values()) == {"ok"}
        assert runtime.readiness() == (True, [])

        source.outage = {"api/availability"}
        source.outage_from = clock.advance(60)
        for _ in range(5):
            report = runtime.run_cycle(clock.advance(60))
        assert statuses(runtime)["api/availability"] == "page"
        # Paged at the first minute (1h window at 1.7 % ≥ 14.4 × 0.1 %) as SEV1 at once: the
        # 5m window is at 20 %, but the newest minute shows the complete outage. One page.
        triggered = sink.events("triggered", service="api")
        assert [r.incident["severity"] for r in triggered] == ["SEV1"]
        assert sink.events("updated", service="api") == []
        (incident,) = runtime.list_incidents("open")
        assert incident.severity is Severity.SEV1 and incident.service == "api"

        # Prometheus goes away: every SLO is an error, nothing resolves, the engine goes
        # blind after 3 cycles and says so with its own incident.
        source.down = True
        for cycle in range(1, 6):
            report = runtime.run_cycle(clock.advance(60))
            assert report.source_error is not None
            assert set(statuses(runtime).values()) == {"error"}
            assert report.blind is (cycle >= 3)
            blind_alerts = [a for a in report.alerts if a.labels["alertname"] == BLIND_ALERT_NAME]
            assert len(blind_alerts) == (1 if cycle >= 3 else 0)
        ready, reasons = runtime.readiness()
        assert not ready
        assert any(r.startswith("source unreachable: ") for r in reasons)
        assert sink.events("resolved", service="api") == []
        blind = sink.events("triggered", service="slo-engine")
        assert len(blind) == 1 and blind[0].incident["severity"] == "SEV2"
        assert "SLO evaluation blind" in blind[0].incident["summary"]
        assert incident.id in {i.id for i in runtime.list_incidents("open")}

        # Back, outage still on: no second page; the blind alert clears.
        source.down = False
        runtime.run_cycle(clock.advance(60))
        assert statuses(runtime)["api/availability"] == "page"
        assert runtime.readiness() == (True, [])
        assert len(sink.events("triggered", service="api")) == 1

        # Outage over: once every window (up to the 3d/6h ticket rule's 6h) is clear for
        # resolve_after, the incident resolves; "blind" already has.
        source.outage_until = clock.now
        runtime.run_cycle(clock.advance(60))
        runtime.run_cycle(clock.advance(300))
        assert len(sink.events("resolved", service="slo-engine")) == 1
        for _ in range(60):
            runtime.run_cycle(clock.advance(600))
            if sink.events("resolved", service="api"):
                break
        assert clock.now - source.outage_until > 6 * 3600
        assert [r.incident["id"] for r in sink.events("resolved", service="api")] == [incident.id]
        assert len(sink.events("resolved", service="slo-engine")) == 1
        assert runtime.list_incidents("open") == []
        # One api incident throughout (a repeat after repeat_interval=4h is the same one).
        assert {r.incident["id"] for r in sink.events("triggered", service="api")} == {incident.id}
    finally:
        runtime.close()


def test_clear_timer_restarts_while_data_is_missing(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    """An alert that cleared just before the data went away must not resolve in the dark."""
    runtime = build(make_config(tmp_path, sink), clock, source)
    try:
        runtime.run_cycle()
        # One minute of complete outage pages (1h window: 1.7 % ≥ 14.4 × 0.1 %) and stays
        # below every longer rule, so the alert clears once the 5m window has drained.
        source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
        source.outage_until = source.outage_from + 60
        report = runtime.run_cycle(clock.advance(60))
        assert [a.severity for a in report.alerts if a.slo_id == "api/availability"] == ["page"]
        for _ in range(5):
            report = runtime.run_cycle(clock.advance(60))
        assert not [a for a in report.alerts if a.slo_id == "api/availability"]
        source.down = True
        for _ in range(10):  # 10 minutes without data, twice resolve_after
            runtime.run_cycle(clock.advance(60))
            runtime.tick(clock.now)
        assert sink.events("resolved", service="api") == []
        source.down = False
        for _ in range(4):
            runtime.run_cycle(clock.advance(60))
        assert sink.events("resolved", service="api") == []  # 4 observed minutes < 5m
        for _ in range(2):
            runtime.run_cycle(clock.advance(60))
        assert len(sink.events("resolved", service="api")) == 1
    finally:
        runtime.close()


def test_circuit_breaker_stops_calling_a_dead_source_and_probes_after_cooldown(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    config = make_config(tmp_path, sink, source_breaker={"failures": 2, "cooldown": "150s"})
    runtime = build(config, clock, source)
    try:
        runtime.run_cycle()
        source.down = True
        runtime.run_cycle(clock.advance(60))
        runtime.run_cycle(clock.advance(60))
        calls = source.fetches + source.probes
        assert runtime.source.circuit_open
        for _ in range(2):
            report = runtime.run_cycle(clock.advance(60))
            assert report.source_error is not None and "circuit breaker open" in report.source_error
        assert source.fetches + source.probes == calls  # not asked while open
        source.down = False
        report = runtime.run_cycle(clock.advance(60))  # 180s after opening: half-open probe
        assert report.source_error is None
        assert set(statuses(runtime).values()) == {"ok"}
        assert not runtime.source.circuit_open
    finally:
        runtime.close()


def test_probe_detects_a_dead_source_between_cache_steps(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    """Within one cache step the cycle fetches nothing; the probe still notices."""
    runtime = build(make_config(tmp_path, sink), clock, source)
    try:
        runtime.run_cycle()
        fetches = source.fetches
        runtime.run_cycle(clock.advance(10))
        assert source.fetches == fetches and source.probes == 1
        source.down = True
        report = runtime.run_cycle(clock.advance(10))
        assert report.source_error is not None
        assert set(statuses(runtime).values()) == {"error"}
    finally:
        runtime.close()


def test_spec_hot_reload_keeps_the_last_good_set(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    runtime = build(make_config(tmp_path, sink), clock, source)
    specs = tmp_path / "specs"
    try:
        runtime.run_cycle()
        assert runtime.spec_status()["slos"] == 5
        good = (specs / "api.yaml").read_text()
        (specs / "api.yaml").write_text(good.replace("objective: 99.9\n", "objective: 1999\n"))
        runtime.run_cycle(clock.advance(60))
        status = runtime.spec_status()
        assert status["slos"] == 5 and status["loaded_at"] == T0
        assert status["last_error"] is not None and "api.yaml:" in status["last_error"]
        assert len(runtime.slo_results()) == 5  # still evaluating the last good set
        ready, reasons = runtime.readiness()
        assert not ready and reasons[0].startswith("specs invalid")
        exposition = generate_latest(runtime.metrics_registry).decode()
        assert "slo_engine_spec_reload_errors_total 1.0" in exposition
        assert "slo_engine_specs_valid 0.0" in exposition
        runtime.run_cycle(clock.advance(60))  # unchanged files: not reported again
        assert (
            "slo_engine_spec_reload_errors_total 1.0"
            in generate_latest(runtime.metrics_registry).decode()
        )

        # Fixed, and one SLO fewer: the new set takes effect.
        (specs / "api.yaml").write_text(good.split("  - name: latency-p95")[0])
        runtime.run_cycle(clock.advance(60))
        status = runtime.spec_status()
        assert status["last_error"] is None and status["slos"] == 4
        assert "api/latency-p95" not in statuses(runtime)
        assert runtime.readiness() == (True, [])
    finally:
        runtime.close()


def test_invalid_specs_at_start_refuse_to_run(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    config = make_config(tmp_path, sink)
    (tmp_path / "specs" / "api.yaml").write_text("apiVersion: slo-engine/v1\nservice: api\n")
    with pytest.raises(SpecsInvalid) as caught:
        build(config, clock, source)
    assert any("api.yaml:" in e for e in caught.value.errors)


def test_api_mutations_follow_the_contract(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    incidents = {
        **incident_settings(),
        "receivers": [{"name": "lead", "severities": []}],
        "escalation": [
            {"name": "team-lead", "after": "0s", "receivers": ["lead"]},
            {"name": "manager", "after": "10m", "receivers": ["lead"]},
        ],
    }
    config = make_config(
        tmp_path,
        sink,
        incidents=incidents,
        notifiers={"lead": {"type": "webhook", "url": sink.url.replace("/hook", "/lead")}},
    )
    runtime = build(config, clock, source)
    try:
        runtime.run_cycle()
        source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
        for _ in range(3):
            runtime.run_cycle(clock.advance(60))
        (incident,) = runtime.list_incidents("open")
        with pytest.raises(KeyError):
            runtime.acknowledge("INC-1999-0001", "alice")
        # SEV1 response target is 15 minutes: the first escalation level is told.
        for _ in range(16):
            runtime.run_cycle(clock.advance(60))
        escalated = [r for r in sink.events("escalated") if r.path == "/lead"]
        assert len(escalated) == 1
        acked = runtime.acknowledge(incident.id, "alice")
        assert acked.acknowledged_by == "alice"
        assert acked.timeline[-1].kind in ("acknowledged", "notified")
        assert runtime.get_incident(incident.id).acknowledged_by == "alice"  # type: ignore[union-attr]
        for _ in range(15):  # past the manager level: nothing more
            runtime.run_cycle(clock.advance(60))
        assert len([r for r in sink.events("escalated") if r.path == "/lead"]) == 1
        commented = runtime.comment(incident.id, "bob", "rolled back deploy 42")
        assert commented.timeline[-1].message == "rolled back deploy 42"
        with pytest.raises(ValueError):
            runtime.comment(incident.id, "bob", "   ")
        silence = runtime.add_silence(
            [{"name": "service", "value": "api", "isRegex": False}],
            ends_at=clock.now + 3600,
            created_by="alice",
            comment="maintenance",
        )
        assert silence["id"].startswith("SIL-")
        assert [s["id"] for s in runtime.list_silences()] == [silence["id"]]
        assert runtime.delete_silence(silence["id"]) is True
        assert runtime.delete_silence(silence["id"]) is False
        clock.advance(1)  # expiry is "now" (+1 ms, so it ends after it starts)
        assert runtime.list_silences() == []
        resolved = runtime.resolve(incident.id, "alice", "fixed")
        assert resolved.status.value == "resolved"
        with pytest.raises(ValueError):
            runtime.acknowledge(incident.id, "alice")
        assert runtime.list_incidents("resolved")[0].id == incident.id
        with pytest.raises(ValueError):
            runtime.list_incidents("closed")
        assert "api" in runtime.customer_notice(resolved)
    finally:
        runtime.close()


def test_metrics_registry_after_a_cycle(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    runtime = build(make_config(tmp_path, sink), clock, source)
    try:
        runtime.run_cycle()
        source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
        for _ in range(3):
            runtime.run_cycle(clock.advance(60))
        text = generate_latest(runtime.metrics_registry).decode()
        lines = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        key = 'slo_engine_slo_burn_rate{service="api",slo="api/availability",window="5m"}'
        # 3 of 5 minutes at 100 % errors against a 0.1 % budget.
        assert lines[key] == pytest.approx(600.0)
        assert (
            lines['slo_engine_slo_status{service="api",slo="api/availability",status="page"}'] == 1
        )
        assert lines['slo_engine_slo_status{service="api",slo="api/availability",status="ok"}'] == 0
        assert lines['slo_engine_open_incidents{severity="SEV1"}'] == 1
        assert lines["slo_engine_cycle_duration_seconds_count"] == 4
        assert lines['slo_engine_cycles_total{outcome="ok"}'] == 4
        # One SEV1 page (the newest minute shows the outage from the first page).
        assert lines['slo_engine_notifications_total{outcome="sent"}'] == 1
        assert lines['slo_engine_notifications_queued{state="pending"}'] == 0
        assert lines["slo_engine_source_requests_total"] == source.http_requests
        assert lines["slo_engine_evaluation_blind"] == 0
        assert (
            'slo_engine_slo_error_budget_remaining_ratio{service="api",slo="api/availability"}'
            in lines
        )
    finally:
        runtime.close()


def test_store_failure_is_reported_and_nothing_is_lost(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    runtime = build(make_config(tmp_path, sink), clock, source)
    try:
        runtime.run_cycle()
        real_apply = runtime.store.apply

        def broken(decision: Any) -> None:
            raise OSError("disk full (scripted)")

        runtime.store.apply = broken  # type: ignore[method-assign]
        source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
        for _ in range(3):
            runtime.run_cycle(clock.advance(60))
        ready, reasons = runtime.readiness()
        assert not ready and any("store not writable: OSError: disk full" in r for r in reasons)
        assert sink.events("triggered") == []
        runtime.store.apply = real_apply  # type: ignore[method-assign]
        runtime.run_cycle(clock.advance(60))
        assert len(sink.events("triggered", service="api")) == 1
        assert runtime.readiness() == (True, [])
    finally:
        runtime.close()


def test_notifier_names_from_webhooks_and_notifiers_get_routes(
    tmp_path: Path, sink: WebhookSink
) -> None:
    config = make_config(
        tmp_path,
        sink,
        notifiers={"ops": {"type": "webhook", "url": "http://127.0.0.1:9/ops"}},
    )
    assert list(config.all_notifiers()) == ["webhook-1", "ops"]
    routed = {r.name: r.severities for r in config.incident_config().receivers}
    assert set(routed) == {"webhook-1", "ops"} and len(routed["ops"]) == 4


def test_telemetry_in_memory_one_trace_per_cycle(
    tmp_path: Path, sink: WebhookSink, clock: Clock, source: ScriptedSource
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    telemetry = setup_telemetry(span_exporters=[exporter])
    runtime = build(make_config(tmp_path, sink), clock, source, telemetry=telemetry)
    try:
        runtime.run_cycle()
        source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
        runtime.run_cycle(clock.advance(60))
        runtime.run_cycle(clock.advance(60))
        telemetry.tracer_provider.force_flush()
        spans = exporter.get_finished_spans()
        roots = [s for s in spans if s.name == "slo_engine.cycle"]
        assert len(roots) == 3
        assert len({s.context.trace_id for s in roots}) == 3
        last = roots[-1].context.trace_id
        names = {s.name for s in spans if s.context.trace_id == last}
        assert {"evaluate", "source.batch", "policy", "incidents", "store.apply"} <= names
        # The cycle never delivers; a cycle that queued nothing has no delivery in its trace.
        assert "notifications" not in names
        by_id = {s.context.span_id: s for s in spans}
        batch = next(s for s in spans if s.name == "source.batch" and s.context.trace_id == last)
        assert by_id[batch.parent.span_id].name == "evaluate"  # type: ignore[union-attr]
        # The page was queued by the second cycle (the first minute of the outage) and its
        # delivery, on the receiver's worker, continues that cycle's trace.
        paged = roots[1].context.trace_id
        notify = next(s for s in spans if s.name == "notifications" and s.context.trace_id == paged)
        assert notify.attributes["slo_engine.sent"] == 1
        assert notify.attributes["slo_engine.receiver"] == "webhook-1"
        assert by_id[notify.parent.span_id].name == "incidents"  # type: ignore[union-attr]
    finally:
        runtime.close()
