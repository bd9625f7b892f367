"""Traces and metrics of slo-engine itself, over OTLP.

Off unless an endpoint is configured: an SLO engine that needs a collector to start would be
one more thing to page about. Spans follow one evaluation cycle (source batches, policy,
incident decisions, notifications); log records carry the active trace and span ids so a
log line can be found from a trace and back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor

Protocol = Literal["grpc", "http/protobuf"]
INSTRUMENTATION = "slo-engine"


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    processors: list[SpanProcessor] = field(default_factory=list)

    @property
    def tracer(self) -> trace.Tracer:
        return self.tracer_provider.get_tracer(INSTRUMENTATION)

    @property
    def meter(self) -> metrics.Meter:
        return self.meter_provider.get_meter(INSTRUMENTATION)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _exporters(
    endpoint: str, protocol: Protocol, headers: dict[str, str]
) -> tuple[SpanExporter, object]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=endpoint, headers=headers, insecure=endpoint.startswith("http://")
        ), OTLPMetricExporter(
            endpoint=endpoint, headers=headers, insecure=endpoint.startswith("http://")
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HTTPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    base = endpoint.rstrip("/")
    return HTTPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers), HTTPMetricExporter(
        endpoint=f"{base}/v1/metrics", headers=headers
    )


def setup_telemetry(
    *,
    endpoint: str | None = None,
    protocol: Protocol = "http/protobuf",
    headers: dict[str, str] | None = None,
    service_name: str = "slo-engine",
    export_interval_s: float = 30.0,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Providers for the daemon. Without an endpoint and extra exporters nothing leaves the
    process (the providers still work, so instrumented code needs no branches)."""
    resource = Resource.create({"service.name": service_name})
    readers = list(metric_readers)
    span_processors: list[SpanProcessor] = [BatchSpanProcessor(e) for e in span_exporters]
    if endpoint:
        span_exporter, metric_exporter = _exporters(endpoint, protocol, headers or {})
        span_processors.append(BatchSpanProcessor(span_exporter))
        readers.append(
            PeriodicExportingMetricReader(
                metric_exporter,  # type: ignore[arg-type]
                export_interval_millis=int(export_interval_s * 1000),
            )
        )
    tracer_provider = TracerProvider(resource=resource)
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(tracer_provider, meter_provider, span_processors)


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, or "-") to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
