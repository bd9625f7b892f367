"""History over remote read (engine.source.remote_read) against a real Prometheus: equal to
`query_range` within 1e-9 relative on counters with resets, scraped off the step grid; SLOs
remote read cannot serve keep query_range; VictoriaMetrics (no remote read) and a failing
`/api/v1/read` fall back to query_range and say so."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from harness.localvm import LocalVictoriaMetrics
from harness.localvm import skip_reason as vm_skip_reason

from engine.demo.openmetrics import open_openmetrics
from engine.evaluation.source import StepRates
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.source.prompb import prompb_classes, stale_nan
from engine.source.query_plan import plan_queries
from engine.source.read_plan import plan_reads, readable_rows
from engine.source.remote_read import QUERY_RANGE, REMOTE_READ, history_report
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

HOUR, DAY = 3600, 86400
T0 = 1_704_067_200  # 2024-01-01 UTC
SCRAPE, PHASE = 15, 7  # scrapes 7 s past the step grid: extrapolation is exercised
DAYS = 2
JOBS = [f"j{i}" for i in range(5)]
BUCKETS = ("0.1", "0.5", "1", "+Inf")
W = "{{window}}"


def _counters(rng: np.random.Generator, n: int, rate: float, resets: bool) -> np.ndarray:
    values = np.cumsum(rng.poisson(rate * SCRAPE, n)).astype(np.float64)
    if resets:  # restarts: the counter drops to 0 and counts on
        for at in sorted(rng.integers(n // 10, n, 3)):
            values[at:] -= values[at - 1]
    return values


def write_data(path: Path) -> Path:
    rng = np.random.default_rng(5)
    ts = T0 + PHASE + SCRAPE * np.arange(DAYS * DAY // SCRAPE, dtype=np.int64)
    with open_openmetrics(path) as writer:
        writer.family("rr_requests", "counter", "Requests.")
        for k, job in enumerate(JOBS):
            for code, share in (("200", 0.99), ("500", 0.01)):
                values = _counters(rng, ts.size, 20 * share, resets=k % 2 == 0)
                writer.series("rr_requests_total", {"job": job, "code": code}, ts, values)
        writer.family("rr_duration_seconds", "histogram", "Latency.")
        count = _counters(rng, ts.size, 10, resets=True)
        for le, share in zip(BUCKETS, (0.5, 0.9, 0.97, 1.0), strict=True):
            labels = {"job": "j0", "le": le}
            writer.series("rr_duration_seconds_bucket", labels, ts, np.floor(count * share))
        writer.series("rr_duration_seconds_count", {"job": "j0"}, ts, count)
        writer.series("rr_duration_seconds_sum", {"job": "j0"}, ts, count * 0.2)
        writer.family("rr_up", "gauge", "Up.")
        writer.series("rr_up", {"job": "j0"}, ts, (rng.random(ts.size) > 0.01).astype(float))
    return path


def events(name: str, bad: str, total: str, key: str = "bad") -> dict[str, Any]:
    return {"name": name, "objective": 99, "sli": {"events": {key: bad, "total": total}}}


def slos() -> list[SLO]:
    bodies = [
        events(
            f"errors-{job}",
            f'sum(rate(rr_requests_total{{job="{job}",code="500"}}[{W}]))',
            f'sum(rate(rr_requests_total{{job="{job}"}}[{W}]))',
        )
        for job in JOBS
    ]
    bodies += [
        events(
            "good",
            'sum(rate(rr_requests_total{job="j1",code="200"}[{{window}}]))',
            'sum(increase(rr_requests_total{job="j1"}[{{window}}])) / 60',
            key="good",
        ),
        events(
            "regex",
            'sum(rate(rr_requests_total{job=~"j[0-2]",code=~"5.."}[{{window}}]))',
            'sum(rate(rr_requests_total{job=~"j[0-2]"}[{{window}}]))',
        ),
        events(  # not a plain selector: stays on query_range
            "opaque",
            'sum without (code) (rate(rr_requests_total{job="j3",code="500"}[{{window}}]))',
            'sum without (code) (rate(rr_requests_total{job="j3"}[{{window}}]))',
        ),
        {
            "name": "latency",
            "objective": 95,
            "sli": {
                "latency": {
                    "histogram": "rr_duration_seconds",
                    "selector": 'job="j0"',
                    "threshold": "500ms",
                }
            },
        },
        {
            "name": "latency-no-bucket",
            "objective": 95,
            "sli": {
                "latency": {
                    "histogram": "rr_duration_seconds",
                    "selector": 'job="j0"',
                    "threshold": "300ms",
                }
            },
        },
        {"name": "up", "objective": 99, "sli": {"availability": {"metric": 'rr_up{job="j0"}'}}},
    ]
    spec = {"apiVersion": "slo-engine/v1", "service": "rr", "slos": bodies}
    return ServiceSpec.model_validate(spec).slo_records()


SLOS = slos()
QUERY_RANGE_ONLY = {"rr/opaque", "rr/up"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("remote-read") / "data.om")


@pytest.fixture(scope="module")
def prometheus(data: Path) -> Iterator[LocalPrometheus]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with LocalPrometheus(backfill(data, data.parent / "tsdb")) as server:
        yield server


def assert_equal(a: StepRates, b: StepRates, rel: float = 1e-9) -> None:
    assert a.errors == b.errors
    np.testing.assert_array_equal(a.times, b.times)
    for mine, theirs in ((a.bad, b.bad), (a.total, b.total)):
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        both = ~np.isnan(mine)
        np.testing.assert_allclose(mine[both], theirs[both], rtol=rel, atol=1e-12)


SPANS = [
    # Spans a day boundary: two requests over SAMPLES (a day each), one over chunks.
    ("1m", T0 + 2 * HOUR, T0 + DAY + 2 * HOUR),
    ("5m", T0 + HOUR, T0 + DAYS * DAY),
    ("2m30s", T0 + 3 * HOUR, T0 + 9 * HOUR),
]


@pytest.mark.prometheus
@pytest.mark.parametrize("chunks", [True, False], ids=["xor-chunks", "samples"])
@pytest.mark.parametrize(("step", "start", "end"), SPANS, ids=[s[0] for s in SPANS])
def test_remote_read_equals_query_range(
    prometheus: LocalPrometheus, step: str, start: int, end: int, chunks: bool
) -> None:
    """Both answer types: stored chunks (the default) and SAMPLES (the fallback)."""
    remote = PrometheusSource(prometheus.url)
    remote.remote_read_chunks = chunks
    ranged = PrometheusSource(prometheus.url, remote_read=False)
    got = remote.fetch(SLOS, Duration.parse(step), start, end)
    expected = ranged.fetch(SLOS, Duration.parse(step), start, end)
    assert_equal(got, expected)
    readable = len(SLOS) - len(QUERY_RANGE_ONLY)
    assert remote.history_slos == {REMOTE_READ: readable, QUERY_RANGE: len(QUERY_RANGE_ONLY)}
    assert ranged.history_slos == {}
    assert remote.history_fallback is None
    assert remote.remote_read_chunks is chunks  # chunks were decoded, never given up
    # The data exercise what they must: resets inside the span, steps without data.
    assert set(got.errors) == {"rr/latency-no-bucket"}
    assert "has no bucket" in got.errors["rr/latency-no-bucket"]
    assert not np.isnan(got.total[: len(JOBS)]).all()


@pytest.mark.prometheus
def test_short_spans_stay_on_query_range(prometheus: LocalPrometheus) -> None:
    """A warm cycle's few steps are cheaper as per-step rates: no remote read at all."""
    source = PrometheusSource(prometheus.url)
    source.fetch(SLOS, Duration.parse("1m"), T0 + DAY, T0 + DAY + 30 * 60)
    assert source.history_slos == {}


@pytest.fixture(scope="module")
def victoria(data: Path) -> Iterator[LocalVictoriaMetrics]:
    reason = vm_skip_reason()
    if reason:
        pytest.skip(reason)
    with LocalVictoriaMetrics() as server:
        server.import_openmetrics(data)
        yield server


def test_victoriametrics_has_no_remote_read_and_falls_back_for_good(
    victoria: LocalVictoriaMetrics,
) -> None:
    source = PrometheusSource(victoria.url)
    plain = PrometheusSource(victoria.url, remote_read=False)
    step = Duration.parse("5m")
    got = source.fetch(SLOS, step, T0 + HOUR, T0 + DAY)
    assert_equal(got, plain.fetch(SLOS, step, T0 + HOUR, T0 + DAY), rel=0)
    assert source.history_slos == {QUERY_RANGE: len(SLOS)}
    assert source.history_fallback is not None and "HTTP 400" in source.history_fallback
    assert source.history_fallback_permanent
    assert history_report(source)["method"] == QUERY_RANGE
    # Remembered: the next long fetch does not ask /api/v1/read again.
    before = source.http_requests
    source.fetch(SLOS, step, T0 + HOUR, T0 + DAY)
    assert source.http_requests - before == plain.http_requests


class _FailingRead(BaseHTTPRequestHandler):
    """Forwards queries (GET or POST) to Prometheus; `/api/v1/read` answers 503."""

    upstream = ""
    reads = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/api/v1/read":  # queries come as POST forms too
            headers = {"Content-Type": self.headers.get("Content-Type", "")}
            upstream = requests.post(
                self.upstream + self.path, data=body, headers=headers, timeout=60
            )
            self._reply(upstream.status_code, upstream.content)
            return
        type(self).reads += 1
        self._reply(503, b"overloaded", "text/plain")

    def do_GET(self) -> None:
        upstream = requests.get(self.upstream + self.path, timeout=60)
        self._reply(upstream.status_code, upstream.content)


@pytest.mark.prometheus
def test_a_failing_remote_read_falls_back_for_that_fetch_only(
    prometheus: LocalPrometheus,
) -> None:
    _FailingRead.upstream = prometheus.url
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingRead)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        source = PrometheusSource(url, retries=1, backoff=0.01)
        step = Duration.parse("5m")
        got = source.fetch(SLOS, step, T0 + HOUR, T0 + DAY)
        expected = PrometheusSource(prometheus.url, remote_read=False)
        assert_equal(got, expected.fetch(SLOS, step, T0 + HOUR, T0 + DAY), rel=0)
        assert source.history_slos == {QUERY_RANGE: len(SLOS)}
        assert "HTTP 503" in (source.history_fallback or "")
        assert not source.history_fallback_permanent
        first = _FailingRead.reads
        assert first >= 2  # retried before giving up
        source.fetch(SLOS, step, T0 + HOUR, T0 + DAY)
        assert _FailingRead.reads > first  # transient: tried again next time
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------- units, no server


def test_stale_markers_are_dropped() -> None:
    import cramjam

    from engine.source.prompb import decode_read_response

    response = prompb_classes()["ReadResponse"]()
    series = response.results.add().timeseries.add()
    series.labels.add(name="__name__", value="x")
    for t, v in ((1000, 1.0), (2000, stale_nan()), (3000, 3.0)):
        series.samples.add(timestamp=t, value=v)
    body = bytes(cramjam.snappy.compress_raw(response.SerializeToString()))
    ((labels, t_ms, values),) = decode_read_response(body)[0]
    assert labels == {"__name__": "x"}
    assert t_ms.tolist() == [1000, 3000] and values.tolist() == [1.0, 3.0]


def test_plan_reads_fetches_each_series_once_and_leaves_the_rest() -> None:
    pairs = [
        ('sum(rate(m{job="a",code="5"}[1m]))', 'sum(rate(m{job="a"}[1m]))'),
        ('sum(rate(m{job="b",code="5",v!="1"}[1m]))', 'sum(rate(m{job="b",v!="1"}[1m]))'),
        ('sum(rate(m{path=~"/api/\\\\d+"}[1m]))', "sum(rate(m[1m]))"),  # escaped regex
        ("sum(rate(m[1m])) / on() group_left rate(m[1m])", "sum(rate(m[1m]))"),
        ('sum(rate(m{path="\\x41"}[1m]))', "sum(rate(m[1m]))"),  # an escape JSON lacks
    ]
    plan = plan_queries(pairs)
    reads, readable = plan_reads(plan)
    assert readable_rows(plan, readable, len(pairs)).tolist() == [True, True, True, False, False]
    merged = next(r for r in reads if ("job", "=~", "a|b") in r.matchers)
    # The four job atoms in one read: what they share server-side, the rest per series.
    assert merged.matchers == (("__name__", "=", "m"), ("job", "=~", "a|b"))
    assert len(merged.atoms) == 4
    series = {"__name__": "m", "job": "b", "code": "5", "v": "2"}
    names = {plan.atoms[a] for a in merged.atoms_for(series)}
    assert names == {
        'sum(rate(m{code="5",job="b",v!="1"}[1m]))',
        'sum(rate(m{job="b",v!="1"}[1m]))',
    }
    assert merged.atoms_for({**series, "v": "1"}) == []
    assert merged.atoms_for({**series, "job": "axb"}) == []  # '.'-free, but checked anyway
    escaped = next(r for r in reads if ("path", "=~", "/api/\\d+") in r.matchers)
    assert escaped.matchers[0] == ("__name__", "=", "m") and escaped.func == "rate"


def test_the_numpy_decoder_reads_what_protobuf_reads() -> None:
    """Zero values (left out of the record), a negative value, tiny and negative timestamps
    (1- and 10-byte varints), stale markers; a layout it does not know goes to protobuf."""
    import cramjam

    from engine.source.prompb import decode_read_response
    from engine.source.prompb_samples import decode_series

    rng = np.random.default_rng(2)
    classes = prompb_classes()
    response = classes["ReadResponse"]()
    result = response.results.add()
    written = []
    for k in range(6):
        t = 1_700_000_000_000 + 15_000 * np.arange(3000) + rng.integers(0, 3, 3000)
        v = np.cumsum(rng.poisson(2, 3000)).astype(float)
        v[: 100 * k] = 0.0
        v[1500:1510] = 0.0
        if k == 1:
            t[0], v[3] = 5, -1.5e300
        if k == 2:
            t[0] = -5
        if k == 3:
            v[7] = stale_nan()
        series = result.timeseries.add()
        series.labels.add(name="__name__", value="x")
        series.labels.add(name="job", value=f"j{k}é")
        for ts, value in zip(t.tolist(), v.tolist(), strict=True):
            series.samples.add(timestamp=ts, value=value)
        written.append((t, v))
    raw = classes["ReadResponseRaw"].FromString(response.SerializeToString())
    assert all(decode_series(s) is not None for s in raw.results[0].timeseries)
    body = bytes(cramjam.snappy.compress_raw(response.SerializeToString()))
    for k, (labels, t_ms, values) in enumerate(decode_read_response(body)[0]):
        t, v = written[k]
        keep = v.view(np.uint64) != 0x7FF0000000000002
        assert labels == {"__name__": "x", "job": f"j{k}é"}
        np.testing.assert_array_equal(t_ms, t[keep])
        np.testing.assert_array_equal(values, v[keep])
    # Timestamp before value: valid protobuf, not the layout the decoder knows.
    swapped = b"\x12\x0b\x10\x01\x09" + np.float64(2.5).tobytes()
    label = b"\x0a\x05\x0a\x01a\x12\x00"
    assert decode_series(label + swapped) is None
    message = classes["TimeSeries"].FromString(label + swapped)
    assert (message.samples[0].timestamp, message.samples[0].value) == (1, 2.5)
