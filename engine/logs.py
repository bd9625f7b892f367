"""The process's log lines: one handler on stderr, in the format the operator's pipeline reads.

- `text` (default): `2026-12-04T17:11:42.582Z INFO engine.daemon [trace=… span=…] message`,
  for a person at a terminal;
- `json`: one object per line (`ts`, `level`, `logger`, `msg`, `trace_id`, `span_id`,
  `exc`), for Loki, Elasticsearch or any collector that parses JSON;
- `logfmt`: `ts=… level=info logger=… msg="…"`, the format of Prometheus and Alertmanager
  themselves.

Timestamps are UTC RFC 3339 with milliseconds and a `Z`: local time without a zone cannot be
lined up with Prometheus, Alertmanager or a trace. A line written inside a span carries the
span's trace and span ids, so a log line can be found from a trace and back; json and logfmt
leave the ids out outside a span rather than writing placeholders.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO, Any, Literal

from opentelemetry import trace

LogFormat = Literal["text", "json", "logfmt"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json", "logfmt")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"

# The format chosen on the command line before the command ran (`slo-engine --log-format json
# run`), so a command that configures logging again keeps it unless told otherwise.
_chosen: LogFormat | None = None


def rfc3339(created: float) -> str:
    """`created` (unix seconds) as UTC RFC 3339 with milliseconds: 2026-12-04T17:11:42.582Z."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, or "-" outside a span) to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


def _fields(record: logging.LogRecord) -> dict[str, str]:
    """The fields of a structured line, in the order they are written."""
    fields = {
        "ts": rfc3339(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key in ("trace_id", "span_id"):
        value = getattr(record, key, "-")
        if value != "-":
            fields[key] = value
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        fields["exc"] = record.exc_text
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


# A logfmt value needs quotes when it is empty or holds a space, '=', a quote or a control
# character; inside quotes, backslash, quote and newlines are escaped (go-logfmt's rules).
_NEEDS_QUOTES = re.compile(r'[\s="\\]|^$|[\x00-\x1f]')


def logfmt_value(value: str) -> str:
    if not _NEEDS_QUOTES.search(value):
        return value
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _fields(record).items())


FORMATTERS: dict[str, type[logging.Formatter]] = {
    "text": TextFormatter,
    "json": JsonFormatter,
    "logfmt": LogfmtFormatter,
}


def configure_logging(
    level: int = logging.INFO, log_format: LogFormat = "text", stream: IO[str] | None = None
) -> None:
    """One handler on the root logger (stderr unless `stream`), writing `log_format` lines
    with the trace context of the span they are written in."""
    if log_format not in FORMATTERS:
        raise ValueError(f"unknown log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(FORMATTERS[log_format]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def choose_format(log_format: LogFormat | None) -> None:
    """Remember the format given before the command name (None: none given)."""
    global _chosen
    _chosen = log_format


def chosen_format() -> LogFormat | None:
    """The format given before the command name, if any (`run` falls back to it)."""
    return _chosen


def parse_logfmt(line: str) -> dict[str, Any]:
    """A logfmt line as a dict (for tests and tools reading our own lines back)."""
    out: dict[str, Any] = {}
    for match in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        key, raw = match.group(1), match.group(2)
        if raw.startswith('"'):
            raw = json.loads(raw, strict=False)  # our escapes are a subset of JSON's
        out[key] = raw
    return out
