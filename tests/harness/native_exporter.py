"""A test exporter serving Prometheus native histograms in the protobuf exposition format.

Why a hand-made exporter: Prometheus 2.42 takes native histograms only from the classic
protobuf format (varint-delimited `io.prometheus.client.MetricFamily`), promtool cannot
backfill them, and Python's `prometheus_client` cannot expose them. So this module defines
the few messages it needs itself (written from the field numbers of Prometheus'
`io/prometheus/client/metrics.proto`, built with `descriptor_pb2` — no protoc, no generated
code) and serves them from an HTTP server on 127.0.0.1.

Observations are deterministic: each `Flow` is "`rate` requests per second, each lasting
`seconds`", counted from the moment the exporter starts. A scrape at time t reports
floor(rate × elapsed) observations per flow, in the native bucket that holds its latency, so
Prometheus' `rate()` sees exactly the configured rates. `expected_good_share` predicts what
Prometheus 2.42's `histogram_fraction` answers (linear interpolation inside the bucket that
holds the threshold), which equals the true share when no flow sits in that bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CONTENT_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)
# Prometheus' default zero bucket width (2^-128), as client_golang uses.
ZERO_THRESHOLD = 2.938735877055719e-39
# MetricType values of metrics.proto.
COUNTER, HISTOGRAM = 0, 4

_F = descriptor_pb2.FieldDescriptorProto
# (message, [(field, number, type, label, message type name or "")]) — proto2, as upstream.
_MESSAGES: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    ("LabelPair", [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
                   ("value", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "")]),
    ("Counter", [("value", 1, _F.TYPE_DOUBLE, _F.LABEL_OPTIONAL, "")]),
    ("BucketSpan", [("offset", 1, _F.TYPE_SINT32, _F.LABEL_OPTIONAL, ""),
                    ("length", 2, _F.TYPE_UINT32, _F.LABEL_OPTIONAL, "")]),
    ("Histogram", [
        ("sample_count", 1, _F.TYPE_UINT64, _F.LABEL_OPTIONAL, ""),
        ("sample_sum", 2, _F.TYPE_DOUBLE, _F.LABEL_OPTIONAL, ""),
        ("schema", 5, _F.TYPE_SINT32, _F.LABEL_OPTIONAL, ""),
        ("zero_threshold", 6, _F.TYPE_DOUBLE, _F.LABEL_OPTIONAL, ""),
        ("zero_count", 7, _F.TYPE_UINT64, _F.LABEL_OPTIONAL, ""),
        ("positive_span", 12, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "BucketSpan"),
        ("positive_delta", 13, _F.TYPE_SINT64, _F.LABEL_REPEATED, ""),
    ]),
    ("Metric", [
        ("label", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "LabelPair"),
        ("counter", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "Counter"),
        ("histogram", 7, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "Histogram"),
    ]),
    ("MetricFamily", [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
        ("help", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
        ("type", 3, _F.TYPE_ENUM, _F.LABEL_OPTIONAL, "MetricType"),
        ("metric", 4, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "Metric"),
    ]),
]  # fmt: skip
_METRIC_TYPES = ["COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM", "GAUGE_HISTOGRAM"]
_PACKAGE = "io.prometheus.client"


def _message_classes() -> dict[str, Any]:
    """The message classes, from a file descriptor built here, in a pool of our own (so
    nothing else registering `io.prometheus.client` can clash with it)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="slo_engine_test_metrics.proto", package=_PACKAGE, syntax="proto2"
    )
    enum = proto.enum_type.add(name="MetricType")
    for number, name in enumerate(_METRIC_TYPES):
        enum.value.add(name=name, number=number)
    for message_name, fields in _MESSAGES:
        message = proto.message_type.add(name=message_name)
        for name, number, kind, label, type_name in fields:
            entry = message.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name, _ in _MESSAGES
    }


MESSAGES = _message_classes()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def delimited(messages: Sequence[Any]) -> bytes:
    """Each message prefixed with its length as a varint: the scrape body."""
    return b"".join(_varint(m.ByteSize()) + m.SerializeToString() for m in messages)


# -- native bucket arithmetic ---------------------------------------------------------------


def bucket_index(value: float, schema: int) -> int:
    """Index of the positive bucket holding `value`: (base^(i-1), base^i], base = 2^2^-schema."""
    return math.ceil(math.log2(value) * 2**schema - 1e-9)


def bucket_bounds(index: int, schema: int) -> tuple[float, float]:
    return 2 ** ((index - 1) / 2**schema), 2 ** (index / 2**schema)


def spans_and_deltas(counts: dict[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Sparse bucket counts as metrics.proto writes them: spans of consecutive buckets
    (offset = the gap after the previous span; the first offset is the start index) and
    each bucket's count as the change from the previous bucket's."""
    spans: list[tuple[int, int]] = []
    deltas: list[int] = []
    previous_index: int | None = None
    previous_count = 0
    for index in sorted(counts):
        if previous_index is not None and index == previous_index + 1:
            offset, length = spans[-1]
            spans[-1] = (offset, length + 1)
        else:
            gap = index if previous_index is None else index - previous_index - 1
            spans.append((gap, 1))
        deltas.append(counts[index] - previous_count)
        previous_index, previous_count = index, counts[index]
    return spans, deltas


# -- what the exporter serves ---------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """`rate` requests per second, each taking `seconds` (0 lands in the zero bucket)."""

    rate: int
    seconds: float


@dataclass(frozen=True)
class Series:
    """One native histogram series (its labels) and the flows it observes."""

    labels: dict[str, str]
    flows: tuple[Flow, ...]
    schema: int = 3
    # Seconds after the exporter's start when this series' traffic stops (None: never).
    until: float | None = None

    @property
    def rate(self) -> int:
        return sum(f.rate for f in self.flows)

    def true_good_share(self, threshold: float) -> float:
        return sum(f.rate for f in self.flows if f.seconds <= threshold) / self.rate

    def expected_good_share(self, threshold: float) -> float:
        """`histogram_fraction(0, threshold, …)` of Prometheus 2.42 over these flows: whole
        buckets below the threshold, the zero bucket, and a linear share of the bucket that
        holds the threshold."""
        split = bucket_index(threshold, self.schema)
        lower, upper = bucket_bounds(split, self.schema)
        good = 0.0
        for flow in self.flows:
            index = (
                None if flow.seconds <= ZERO_THRESHOLD else bucket_index(flow.seconds, self.schema)
            )
            if index is None or index < split:
                good += flow.rate
            elif index == split:
                good += flow.rate * (threshold - lower) / (upper - lower)
        return good / self.rate


@dataclass
class NativeHistogramExporter:
    """Serves `histogram` (native) and `counter` (requests, the same count) for each series
    on 127.0.0.1; use as a context manager. `accepts` and `scraped_at` record each scrape's
    Accept header and time."""

    series: Sequence[Series]
    histogram: str = "http_request_duration_seconds"
    counter: str = "http_requests_total"
    accepts: list[str] = field(default_factory=list)
    scraped_at: list[float] = field(default_factory=list)
    started: float = 0.0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def families(self, at: float) -> list[Any]:
        elapsed = max(0.0, at - self.started)
        histogram = MESSAGES["MetricFamily"](name=self.histogram, type=HISTOGRAM, help="latency")
        counter = MESSAGES["MetricFamily"](name=self.counter, type=COUNTER, help="requests")
        for series in self.series:
            labels = [
                MESSAGES["LabelPair"](name=k, value=v) for k, v in sorted(series.labels.items())
            ]
            seconds = elapsed if series.until is None else min(elapsed, series.until)
            observed = [(flow, math.floor(flow.rate * seconds)) for flow in series.flows]
            total = sum(n for _, n in observed)
            histogram.metric.append(
                MESSAGES["Metric"](label=labels, histogram=self._histogram(series, observed))
            )
            counter.metric.append(
                MESSAGES["Metric"](label=labels, counter=MESSAGES["Counter"](value=float(total)))
            )
        return [histogram, counter]

    def _histogram(self, series: Series, observed: list[tuple[Flow, int]]) -> Any:
        zero = sum(n for flow, n in observed if flow.seconds <= ZERO_THRESHOLD)
        buckets: dict[int, int] = {}
        for flow, n in observed:
            if flow.seconds > ZERO_THRESHOLD:
                index = bucket_index(flow.seconds, series.schema)
                buckets[index] = buckets.get(index, 0) + n
        spans, deltas = spans_and_deltas(buckets)
        return MESSAGES["Histogram"](
            sample_count=sum(n for _, n in observed),
            sample_sum=sum(flow.seconds * n for flow, n in observed),
            schema=series.schema,
            zero_threshold=ZERO_THRESHOLD,
            zero_count=zero,
            positive_span=[MESSAGES["BucketSpan"](offset=o, length=n) for o, n in spans],
            positive_delta=deltas,
        )

    def start(self) -> NativeHistogramExporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                now = time.time()
                exporter.accepts.append(self.headers.get("Accept", ""))
                exporter.scraped_at.append(now)
                body = delimited(exporter.families(now))
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per scrape would bury the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.started = time.time()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> NativeHistogramExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
