"""Traces, metrics and logs of slo-engine itself, over OTLP; and what build is running.

Off unless an endpoint is configured: an SLO engine that needs a collector to start would be
one more thing to page about. Spans follow one evaluation cycle (source batches, policy,
incident decisions, notifications); log records carry the active trace and span ids so a
log line can be found from a trace and back — on stderr (engine/logs.py) and, with an
endpoint, as OTLP log records in the same trace.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor

Protocol = Literal["grpc", "http/protobuf"]
INSTRUMENTATION = "slo-engine"
DISTRIBUTION = "slo-engine"


@cache
def build_info() -> dict[str, str]:
    """version (package metadata), python_version, and revision: the source revision baked
    into the image (`SLO_ENGINE_REVISION`, set by the Dockerfile's REVISION build argument),
    "unknown" elsewhere — never a `git` call at run time."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree, not installed
        version = "0.0.0+unknown"
    return {
        "version": version,
        "python_version": platform.python_version(),
        "revision": os.environ.get("SLO_ENGINE_REVISION") or "unknown",
    }


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    processors: list[SpanProcessor] = field(default_factory=list)
    logger_provider: LoggerProvider | None = None
    log_handler: logging.Handler | None = None

    @property
    def tracer(self) -> trace.Tracer:
        return self.tracer_provider.get_tracer(INSTRUMENTATION)

    @property
    def meter(self) -> metrics.Meter:
        return self.meter_provider.get_meter(INSTRUMENTATION)

    def shutdown(self) -> None:
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler = None
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        if self.logger_provider is not None:
            self.logger_provider.shutdown()


def _exporters(
    endpoint: str, protocol: Protocol, headers: dict[str, str]
) -> tuple[SpanExporter, object, LogRecordExporter]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint.startswith("http://")
        return (
            OTLPSpanExporter(endpoint=endpoint, headers=headers, insecure=insecure),
            OTLPMetricExporter(endpoint=endpoint, headers=headers, insecure=insecure),
            OTLPLogExporter(endpoint=endpoint, headers=headers, insecure=insecure),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HTTPLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HTTPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    base = endpoint.rstrip("/")
    return (
        HTTPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers),
        HTTPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers),
        HTTPLogExporter(endpoint=f"{base}/v1/logs", headers=headers),
    )


def setup_telemetry(
    *,
    endpoint: str | None = None,
    protocol: Protocol = "http/protobuf",
    headers: dict[str, str] | None = None,
    service_name: str = "slo-engine",
    resource_attributes: Mapping[str, str] | None = None,
    export_interval_s: float = 30.0,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    log_exporters: Sequence[LogRecordExporter] = (),
) -> Telemetry:
    """Providers for the daemon. Without an endpoint and extra exporters nothing leaves the
    process (the providers still work, so instrumented code needs no branches). With an
    endpoint (or `log_exporters`) the process's log records are exported too, until
    `shutdown`. `resource_attributes` (OTEL_RESOURCE_ATTRIBUTES) go under our own
    service.name and service.version."""
    resource = Resource.create(
        {
            **(resource_attributes or {}),
            "service.name": service_name,
            "service.version": build_info()["version"],
        }
    )
    readers = list(metric_readers)
    span_processors: list[SpanProcessor] = [BatchSpanProcessor(e) for e in span_exporters]
    log_processors: list[LogRecordProcessor] = [BatchLogRecordProcessor(e) for e in log_exporters]
    if endpoint:
        span_exporter, metric_exporter, log_exporter = _exporters(endpoint, protocol, headers or {})
        span_processors.append(BatchSpanProcessor(span_exporter))
        readers.append(
            PeriodicExportingMetricReader(
                metric_exporter,  # type: ignore[arg-type]
                export_interval_millis=int(export_interval_s * 1000),
            )
        )
        log_processors.append(BatchLogRecordProcessor(log_exporter))
    tracer_provider = TracerProvider(resource=resource)
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    telemetry = Telemetry(tracer_provider, meter_provider, span_processors)
    if log_processors:
        telemetry.logger_provider = LoggerProvider(resource=resource)
        for log_processor in log_processors:
            telemetry.logger_provider.add_log_record_processor(log_processor)
        telemetry.log_handler = OTLPLogHandler(telemetry.logger_provider)
        logging.getLogger().addHandler(telemetry.log_handler)
    return telemetry


# Python levels → OTel severity numbers (the log data model's DEBUG, INFO, WARN, ERROR, FATAL).
_SEVERITY = (
    (logging.CRITICAL, SeverityNumber.FATAL, "FATAL"),
    (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
    (logging.WARNING, SeverityNumber.WARN, "WARN"),
    (logging.INFO, SeverityNumber.INFO, "INFO"),
    (logging.NOTSET, SeverityNumber.DEBUG, "DEBUG"),
)
# The exporters' own loggers: a failing export that logs would be exported, fail, log…
_SELF_LOGGERS = ("opentelemetry", "urllib3", "requests", "grpc")


class OTLPLogHandler(logging.Handler):
    """Hands log records to an OTel LoggerProvider, in the span they were written in (the
    log record carries its trace and span ids).

    It takes the filters of the handlers already on the root logger when attached (the
    redaction of engine.redact among them), so a line is redacted the same in the collector
    as on stderr.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        super().__init__()
        self._provider = provider
        for handler in logging.getLogger().handlers:
            for log_filter in handler.filters:
                if log_filter not in self.filters:
                    self.addFilter(log_filter)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SELF_LOGGERS):
            return
        try:
            number, text = next((n, t) for level, n, t in _SEVERITY if record.levelno >= level)
            body = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                body = f"{body}\n{record.exc_text}"
            self._provider.get_logger(record.name).emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time.time_ns(),
                    severity_number=number,
                    severity_text=text,
                    body=body,
                    attributes={"logger": record.name},
                )
            )
        except Exception:
            self.handleError(record)
