"""Log lines an operator's pipeline can read: text, json or logfmt on stderr, UTC RFC 3339
timestamps ending in Z, the trace and span ids of the span a line was written in; and the
same records over OTLP when telemetry is on."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from test_daemon_runtime import Clock, ScriptedSource, make_config
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.daemon.runtime import Runtime
from engine.demo.webhook_sink import WebhookSink
from engine.logs import configure_logging, logfmt_value, parse_logfmt, rfc3339
from engine.redact import redact_handlers
from engine.telemetry import setup_telemetry

HEX32, HEX16 = r"[0-9a-f]{32}", r"[0-9a-f]{16}"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing to a buffer; the previous handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def _utc(ts: str) -> datetime:
    assert ts.endswith("Z"), ts
    parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


def test_rfc3339_is_utc_with_milliseconds_and_z() -> None:
    assert rfc3339(0.25) == "1970-01-01T00:00:00.250Z"
    assert rfc3339(1764868302.582) == "2025-12-04T17:11:42.582Z"


@pytest.mark.parametrize("fmt", ["json", "logfmt"])
def test_structured_lines_parse_and_carry_the_span_they_were_written_in(
    captured: io.StringIO, fmt: Any
) -> None:
    configure_logging(logging.INFO, fmt, stream=captured)
    telemetry = setup_telemetry()
    log = logging.getLogger("engine.test")
    log.info("outside any span")
    with telemetry.tracer.start_as_current_span("slo_engine.cycle") as span:
        log.warning('incident %s opened: "api" burns at %.1fx', "INC-1", 14.4)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("delivery failed")
    telemetry.shutdown()

    parse = json.loads if fmt == "json" else parse_logfmt
    lines = [parse(line) for line in captured.getvalue().splitlines() if "=" in line or "{" in line]
    outside, inside, failed = (
        lines[0],
        lines[1],
        next(line for line in lines if line.get("msg") == "delivery failed"),
    )
    for line in (outside, inside, failed):
        _utc(line["ts"])
        assert line["logger"] == "engine.test"
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["msg"] == 'incident INC-1 opened: "api" burns at 14.4x'
    assert inside["level"] == "warning"
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert failed["level"] == "error" and "RuntimeError: boom" in failed["exc"]


def test_text_lines_keep_their_shape_with_a_utc_timestamp(captured: io.StringIO) -> None:
    configure_logging(logging.INFO, "text", stream=captured)
    logging.getLogger("engine.test").info("hello")
    (line,) = captured.getvalue().splitlines()
    ts, level, name, rest = line.split(" ", 3)
    _utc(ts)
    assert (level, name, rest) == ("INFO", "engine.test", "[trace=- span=-] hello")


def test_logfmt_quotes_what_needs_quoting() -> None:
    assert logfmt_value("plain") == "plain"
    assert logfmt_value("") == '""'
    assert logfmt_value('a "b"=c\nd') == '"a \\"b\\"=c\\nd"'
    line = " ".join(f"{k}={logfmt_value(v)}" for k, v in {"a": "x y", "b": 'q"'}.items())
    assert parse_logfmt(line) == {"a": "x y", "b": 'q"'}


def test_a_cycle_logs_with_its_trace_on_stderr_and_over_otlp(
    tmp_path: Path, captured: io.StringIO
) -> None:
    """One daemon cycle that opens an incident: its log lines carry the cycle's trace id,
    in the json lines and in the exported OTLP log records alike; secrets stay redacted."""
    configure_logging(logging.INFO, "json", stream=captured)
    redact_handlers()
    exporter = InMemoryLogRecordExporter()
    with WebhookSink() as sink:
        config = make_config(tmp_path, sink)
        clock, source = Clock(), ScriptedSource()
        telemetry = setup_telemetry(log_exporters=[exporter])
        runtime = Runtime(config, clock=clock, source=source, telemetry=telemetry)
        try:
            runtime.run_cycle()
            source.outage, source.outage_from = {"api/availability"}, clock.advance(60)
            runtime.run_cycle(clock.advance(60))
            logging.getLogger("engine.test").info("see https://user:hunter2@example.org/x")
            assert telemetry.logger_provider is not None
            assert telemetry.logger_provider.force_flush(10_000)
        finally:
            runtime.close()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    opened = [line for line in lines if "opened" in line["msg"]]
    assert opened, lines
    assert all(len(line.get("trace_id", "")) == 32 for line in opened)
    exported = [r.log_record for r in exporter.get_finished_logs()]
    traced = {format(r.trace_id, "032x") for r in exported if "opened" in str(r.body)}
    assert traced and traced <= {line["trace_id"] for line in opened}
    assert not any("hunter2" in str(r.body) for r in exported)
    assert logging.getLogger().handlers == [logging.getLogger().handlers[0]]  # OTLP one gone


class _LogsReceiver:
    """POST /v1/logs (OTLP/HTTP protobuf), recorded decoded; other signals accepted."""

    def __init__(self) -> None:
        self.requests: list[ExportLogsServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/logs":
                    message = ExportLogsServiceRequest()
                    message.ParseFromString(raw)
                    receiver.requests.append(message)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_log_records_arrive_over_otlp_http_with_their_trace(captured: io.StringIO) -> None:
    configure_logging(logging.INFO, "text", stream=captured)
    receiver = _LogsReceiver()
    port = receiver.server.server_address[1]
    telemetry = setup_telemetry(endpoint=f"http://127.0.0.1:{port}", service_name="logs-test")
    try:
        with telemetry.tracer.start_as_current_span("slo_engine.cycle") as span:
            logging.getLogger("engine.daemon").warning("source unreachable")
        assert telemetry.logger_provider is not None
        assert telemetry.logger_provider.force_flush(10_000)
    finally:
        telemetry.shutdown()
        receiver.server.shutdown()
        receiver.server.server_close()
    records = [
        (resource_logs.resource, record)
        for request in receiver.requests
        for resource_logs in request.resource_logs
        for scope in resource_logs.scope_logs
        for record in scope.log_records
    ]
    (resource, record), *_ = [(r, x) for r, x in records if x.body.string_value]
    assert record.body.string_value == "source unreachable"
    assert record.severity_text == "WARN"
    assert bytes(record.trace_id).hex() == format(span.get_span_context().trace_id, "032x")
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "logs-test" and names["service.version"]


def test_the_log_format_option_works_before_any_command(tmp_path: Path) -> None:
    _register()
    result = CliRunner().invoke(app, ["--log-format", "yaml", "validate", str(tmp_path)])
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert "'yaml' is not one of 'text', 'json', 'logfmt'" in said
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("slo-engine ")


def test_the_daemon_reads_log_format_from_its_config(tmp_path: Path) -> None:
    from engine.daemon.config import ConfigError, load_config

    base = {"specs": [str(tmp_path)], "prometheus_url": "http://127.0.0.1:9", "state_dir": "s"}
    assert load_config(None, base).log_format == "text"
    assert load_config(None, {**base, "log_format": "logfmt"}).log_format == "logfmt"
    with pytest.raises(ConfigError) as refused:
        load_config(None, {**base, "log_format": "yaml"})
    assert "log_format" in str(refused.value) or "--log-format" in str(refused.value)
