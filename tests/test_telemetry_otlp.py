"""Self-telemetry over the wire: a daemon Runtime configured with an OTLP/HTTP endpoint sends
its cycle traces and metrics to a local receiver, which decodes the protobuf requests."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_daemon_runtime import Clock, ScriptedSource, make_config

from engine.daemon.runtime import Runtime
from engine.demo.webhook_sink import WebhookSink


class OTLPReceiver:
    """POST /v1/traces and /v1/metrics (application/x-protobuf), recorded as decoded messages."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.content_types: set[str] = set()
        self.tenants: set[str | None] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                receiver.content_types.add(self.headers.get("Content-Type", ""))
                receiver.tenants.add(self.headers.get("X-Tenant"))
                if self.path == "/v1/traces":
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(raw)
                    receiver.traces.append(message)
                elif self.path == "/v1/metrics":
                    metrics = ExportMetricsServiceRequest()
                    metrics.ParseFromString(raw)
                    receiver.metrics.append(metrics)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.traces
            for resource_spans in request.resource_spans
            for scope in resource_spans.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    otlp = OTLPReceiver()
    yield otlp
    otlp.server.shutdown()
    otlp.server.server_close()


def test_cycle_traces_and_metrics_arrive_over_otlp_http(
    tmp_path: Path, receiver: OTLPReceiver
) -> None:
    headers = tmp_path / "otlp-headers"
    headers.write_text("X-Tenant: blue\n")
    with WebhookSink() as sink:
        config = make_config(
            tmp_path,
            sink,
            telemetry={
                "otlp_endpoint": receiver.url,
                "headers_file": str(headers),
                "service_name": "slo-engine-test",
            },
        )
        clock, source = Clock(), ScriptedSource()
        runtime = Runtime(config, clock=clock, source=source)
        try:
            runtime.run_cycle()
            source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
            runtime.run_cycle(clock.advance(60))
            # The page's delivery runs on the receiver's worker, in the cycle's trace.
            assert runtime.wait_for_delivery()
            assert runtime.telemetry.tracer_provider.force_flush(10_000)
            assert runtime.telemetry.meter_provider.force_flush(10_000)
        finally:
            runtime.close()

    assert receiver.content_types == {"application/x-protobuf"}
    assert receiver.tenants == {"blue"}  # headers_file reached the exporter
    spans = receiver.spans()
    cycles = [s for s in spans if s.name == "slo_engine.cycle"]
    assert len(cycles) == 2
    assert len({bytes(s.trace_id) for s in cycles}) == 2
    second = bytes(cycles[1].trace_id)
    names = {s.name for s in spans if bytes(s.trace_id) == second}
    assert {
        "evaluate",
        "source.batch",
        "policy",
        "incidents",
        "store.apply",
        "notifications",
    } <= names
    root_ids = {bytes(s.span_id) for s in cycles}
    evaluate = [s for s in spans if s.name == "evaluate"]
    assert all(bytes(s.parent_span_id) in root_ids for s in evaluate)
    resource = receiver.traces[0].resource_spans[0].resource
    attributes = {a.key: a.value.string_value for a in resource.attributes}
    assert attributes["service.name"] == "slo-engine-test"

    metric_names = {
        metric.name
        for request in receiver.metrics
        for resource_metrics in request.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
    }
    assert {
        "slo_engine.cycle.duration",
        "slo_engine.source.requests",
        "slo_engine.notifications",
        "slo_engine.slo.burn_rate",
        "slo_engine.incidents.open",
    } <= metric_names
