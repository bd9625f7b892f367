"""Prometheus remote read on the wire: protobuf messages and snappy block compression.

Built without protoc: the message classes come from a hand-written descriptor (prompb's
remote.proto and types.proto, proto3) through the protobuf runtime the OpenTelemetry
exporter already installs. Bodies are snappy *block* compressed in both directions
(`cramjam.snappy.compress_raw`; its `compress` writes the framed format, which Prometheus
rejects). Two response types: SAMPLES, bounded by the server's
`--storage.remote.read-sample-limit` (5e7 per query by default), so callers chunk by time;
and STREAMED_XOR_CHUNKS, Prometheus' stored chunks shipped without decoding them and
re-encoding every sample (decoded by engine.source.xor_chunks). A request may accept both.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Prometheus writes a stale marker (a NaN with this bit pattern) when a series disappears;
# PromQL's range selectors skip it, so the client-side rate must too.
STALE_NAN_BITS = 0x7FF0000000000002
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Read-Version": "0.1.0",
}
# LabelMatcher.Type
MATCH_TYPES = {"=": 0, "!=": 1, "=~": 2, "!~": 3}

# The message classes `prompb_classes` hands out.
_CLASSES = ("ReadRequest", "ReadResponse", "ReadResponseRaw", "TimeSeries", "ChunkedReadResponse")
Matcher = tuple[str, str, str]  # label, operator (=, !=, =~, !~), value (unescaped)
Series = tuple[dict[str, str], np.ndarray, np.ndarray]  # labels, t_ms int64, values


@functools.lru_cache(maxsize=1)
def prompb_classes() -> dict[str, type]:
    """ReadRequest/ReadResponse message classes built from a hand-written descriptor.

    Field numbers follow prometheus/prompb remote.proto and types.proto (proto3):
    ReadRequest{queries=1, accepted_response_types=2 (enum SAMPLES=0)},
    Query{start_timestamp_ms=1, end_timestamp_ms=2, matchers=3},
    LabelMatcher{type=1 (EQ=0 NEQ=1 RE=2 NRE=3), name=2, value=3},
    ReadResponse{results=1}, QueryResult{timeseries=1}, TimeSeries{labels=1, samples=2},
    Label{name=1, value=2}, Sample{value=1 double, timestamp=2 int64 ms}.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="slo_engine_prompb.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    enum = fdp.enum_type.add(name="ResponseType")
    enum.value.add(name="SAMPLES", number=0)
    enum.value.add(name="STREAMED_XOR_CHUNKS", number=1)
    enum = fdp.enum_type.add(name="MatchType")
    for number, name in enumerate(("EQ", "NEQ", "RE", "NRE")):
        enum.value.add(name=name, number=number)
    message(
        "LabelMatcher",
        [
            ("type", 1, F.TYPE_ENUM, opt, ".prometheus.MatchType"),
            ("name", 2, F.TYPE_STRING, opt, None),
            ("value", 3, F.TYPE_STRING, opt, None),
        ],
    )
    message(
        "Query",
        [
            ("start_timestamp_ms", 1, F.TYPE_INT64, opt, None),
            ("end_timestamp_ms", 2, F.TYPE_INT64, opt, None),
            ("matchers", 3, F.TYPE_MESSAGE, rep, ".prometheus.LabelMatcher"),
        ],
    )
    message(
        "ReadRequest",
        [
            ("queries", 1, F.TYPE_MESSAGE, rep, ".prometheus.Query"),
            ("accepted_response_types", 2, F.TYPE_ENUM, rep, ".prometheus.ResponseType"),
        ],
    )
    message(
        "Label", [("name", 1, F.TYPE_STRING, opt, None), ("value", 2, F.TYPE_STRING, opt, None)]
    )
    message(
        "Sample",
        [("value", 1, F.TYPE_DOUBLE, opt, None), ("timestamp", 2, F.TYPE_INT64, opt, None)],
    )
    message(
        "TimeSeries",
        [
            ("labels", 1, F.TYPE_MESSAGE, rep, ".prometheus.Label"),
            ("samples", 2, F.TYPE_MESSAGE, rep, ".prometheus.Sample"),
        ],
    )
    message("QueryResult", [("timeseries", 1, F.TYPE_MESSAGE, rep, ".prometheus.TimeSeries")])
    message("ReadResponse", [("results", 1, F.TYPE_MESSAGE, rep, ".prometheus.QueryResult")])
    _chunked_messages(message, F)
    # The same response with each series left as bytes, for engine.source.prompb_samples.
    message("QueryResultRaw", [("timeseries", 1, F.TYPE_BYTES, rep, None)])
    message("ReadResponseRaw", [("results", 1, F.TYPE_MESSAGE, rep, ".prometheus.QueryResultRaw")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{name}"))
        for name in _CLASSES
    }


def _chunked_messages(message: Callable[..., None], F: Any) -> None:
    """STREAMED_XOR_CHUNKS' messages (engine.source.xor_chunks): Chunk{min_time_ms=1,
    max_time_ms=2, type=3 (XOR=1), data=4}, ChunkedSeries{labels=1, chunks=2},
    ChunkedReadResponse{chunked_series=1, query_index=2}. Chunk.type is an enum, read as
    the int32 it is on the wire."""
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message(
        "Chunk",
        [
            ("min_time_ms", 1, F.TYPE_INT64, opt, None),
            ("max_time_ms", 2, F.TYPE_INT64, opt, None),
            ("type", 3, F.TYPE_INT32, opt, None),
            ("data", 4, F.TYPE_BYTES, opt, None),
        ],
    )
    message(
        "ChunkedSeries",
        [
            ("labels", 1, F.TYPE_MESSAGE, rep, ".prometheus.Label"),
            ("chunks", 2, F.TYPE_MESSAGE, rep, ".prometheus.Chunk"),
        ],
    )
    message(
        "ChunkedReadResponse",
        [
            ("chunked_series", 1, F.TYPE_MESSAGE, rep, ".prometheus.ChunkedSeries"),
            ("query_index", 2, F.TYPE_INT64, opt, None),
        ],
    )


def encode_read_request(
    queries: Sequence[tuple[int, int, Sequence[Matcher]]], chunks: bool = False
) -> bytes:
    """A snappy-compressed ReadRequest: one query per (start ms, end ms, matchers), both
    ends included. SAMPLES response — or, with `chunks`, STREAMED_XOR_CHUNKS first and
    SAMPLES second: the server answers in the first type it supports."""
    import cramjam

    request = prompb_classes()["ReadRequest"]()
    for start_ms, end_ms, matchers in queries:
        query = request.queries.add(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms)
        for name, op, value in matchers:
            query.matchers.add(type=MATCH_TYPES[op], name=name, value=value)
    if chunks:
        request.accepted_response_types.append(1)  # STREAMED_XOR_CHUNKS
    request.accepted_response_types.append(0)  # SAMPLES
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def decode_read_response(body: bytes) -> list[list[Series]]:
    """Per query of the request, its series: labels, timestamps (ms) and values, stale
    markers dropped. Samples are decoded with numpy (engine.source.prompb_samples), or by
    the protobuf runtime for a series in any other layout."""
    import cramjam

    from engine.source.prompb_samples import decode_series

    classes = prompb_classes()
    response = classes["ReadResponseRaw"].FromString(bytes(cramjam.snappy.decompress_raw(body)))
    out = []
    for result in response.results:
        found = []
        for raw in result.timeseries:
            series = decode_series(raw) or _decode_with_protobuf(classes["TimeSeries"], raw)
            labels, t_ms, values = series
            stale = values.view(np.uint64) == STALE_NAN_BITS
            if stale.any():
                t_ms, values = t_ms[~stale], values[~stale]
            found.append((labels, t_ms, values))
        out.append(found)
    return out


def _decode_with_protobuf(message: type, raw: bytes) -> Series:
    series = message.FromString(raw)
    n = len(series.samples)
    t_ms = np.fromiter((s.timestamp for s in series.samples), np.int64, n)
    values = np.fromiter((s.value for s in series.samples), np.float64, n)
    return {label.name: label.value for label in series.labels}, t_ms, values


def stale_nan() -> float:
    """Prometheus' stale marker as a float (for tests)."""
    return float(struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0])
