"""Remote read's STREAMED_XOR_CHUNKS (engine.source.xor_chunks, engine.source.xor_kernels).

The decoder is checked two ways: against an encoder written here from the format
(Prometheus' tsdb/chunkenc/xor.go) on samples chosen to hit every branch — every
delta-of-delta width and sign, unchanged values, reused and new XOR windows, 64 meaningful
bits, NaN, infinities, −0 — and against a real Prometheus, whose chunked answers must give
exactly the samples its SAMPLES answers give. Corrupt or foreign answers are refused with
`ChunkError`, and the source then asks for samples.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import requests

from engine.source import remote_read, xor_chunks
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.source.prompb import (
    HEADERS,
    decode_read_response,
    encode_read_request,
    prompb_classes,
    stale_nan,
)
from engine.source.xor_chunks import ChunkError, decode_chunked_response, frames
from engine.source.xor_kernels import crc32c_table

T0_MS = 1_704_067_200_000


# --------------------------------------------------------------- an encoder, from the format


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def write(self, value: int, n: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def varint_bytes(self, data: bytes) -> None:
        for byte in data:
            self.write(byte, 8)

    def tobytes(self) -> bytes:
        padded = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, padded[i : i + 8])), 2) for i in range(0, len(padded), 8))


def _uvarint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def _float_bits(v: float) -> int:
    return struct.unpack(">Q", struct.pack(">d", v))[0]


def encode_xor(samples: list[tuple[int, float]]) -> bytes:
    """A Prometheus XOR chunk of `samples` (timestamp ms, value)."""
    out = _Bits()
    leading, trailing = 0xFF, 0
    prev_t, prev_delta, prev_v = 0, 0, 0
    for i, (t, v) in enumerate(samples):
        vb = _float_bits(v)
        if i == 0:
            out.varint_bytes(_uvarint((t << 1) ^ (t >> 63) if t >= 0 else ((-t) << 1) - 1))
            out.write(vb, 64)
        else:
            delta = t - prev_t
            if i == 1:
                out.varint_bytes(_uvarint(delta))
            else:
                dod = delta - prev_delta
                for prefix, plen, width in ((0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)):
                    if dod == 0:
                        out.write(0, 1)
                        break
                    if -((1 << (width - 1)) - 1) <= dod <= 1 << (width - 1):
                        out.write(prefix, plen)
                        out.write(dod & ((1 << width) - 1), width)
                        break
                else:
                    out.write(0b1111, 4)
                    out.write(dod & ((1 << 64) - 1), 64)
            x = vb ^ prev_v
            if x == 0:
                out.write(0, 1)
            else:
                out.write(1, 1)
                lead = min(64 - x.bit_length(), 31)
                trail = (x & -x).bit_length() - 1
                if leading != 0xFF and lead >= leading and trail >= trailing:
                    out.write(0, 1)
                    out.write(x >> trailing, 64 - leading - trailing)
                else:
                    leading, trailing = lead, trail
                    sig = 64 - lead - trail
                    out.write(1, 1)
                    out.write(lead, 5)
                    out.write(sig & 0x3F, 6)
                    out.write(x >> trail, sig)
            prev_delta = delta
        prev_t, prev_v = t, vb
    return struct.pack(">H", len(samples)) + out.tobytes()


def _crc32c(data: bytes) -> int:
    table = crc32c_table()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = int(table[(crc ^ byte) & 0xFF]) ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def frame(message: bytes) -> bytes:
    return _uvarint(len(message)) + _crc32c(message).to_bytes(4, "big") + message


def chunked_body(series: list[tuple[int, dict[str, str], list[bytes]]], kind: int = 1) -> bytes:
    """One frame per (query index, labels, chunks)."""
    message = prompb_classes()["ChunkedReadResponse"]
    body = b""
    for query, labels, chunks in series:
        response = message(query_index=query)
        entry = response.chunked_series.add()
        for name, value in labels.items():
            entry.labels.add(name=name, value=value)
        for data in chunks:
            entry.chunks.add(min_time_ms=0, max_time_ms=0, type=kind, data=data)
        body += frame(response.SerializeToString())
    return body


# --------------------------------------------------------------- the decoder vs the encoder


def _samples(rng: np.random.Generator, n: int) -> list[tuple[int, float]]:
    t = T0_MS + int(rng.integers(-(10**6), 10**6))
    out, v = [], float(rng.integers(0, 1000))
    widths = (0, 0, 1, 100, 8_000, 60_000, 500_000, 10**9)  # every dod width, both signs
    delta = 15_000
    for _ in range(n):
        out.append((t, v))
        delta = max(1, delta + int(rng.choice(widths)) * int(rng.choice((-1, 1))))
        t += delta
        kind = rng.integers(0, 6)
        if kind == 0:
            pass  # unchanged: a 0 bit
        elif kind == 1:
            v += float(rng.integers(1, 50))
        elif kind == 2:
            v = float(rng.normal() * 10.0 ** rng.integers(-300, 300))
        elif kind == 3:
            v = float(rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0, stale_nan()]))
        else:
            v = v * (1 + 1e-15) if v else 1.0
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 120, 500])
def test_the_decoder_reads_what_the_format_encodes(n: int) -> None:
    rng = np.random.default_rng(n)
    chunks = [_samples(rng, n) for _ in range(20)]
    body = chunked_body([(0, {"job": "a"}, [encode_xor(c) for c in chunks])])
    everything = [s for c in chunks for s in c]
    start, end = min(t for t, _ in everything), max(t for t, _ in everything)
    [[(labels, t_ms, values)]] = decode_chunked_response(body, [(start, end)])
    assert labels == {"job": "a"}
    # What SAMPLES would carry: in time order, one per timestamp, stale markers dropped.
    expected = sorted({t: v for t, v in reversed(everything)}.items())
    expected = [(t, v) for t, v in expected if _float_bits(v) != _float_bits(stale_nan())]
    assert t_ms.tolist() == [t for t, _ in expected]
    assert values.view(np.uint64).tolist() == [_float_bits(v) for _, v in expected]


def test_samples_are_cut_to_the_asked_range_and_frames_of_a_series_join() -> None:
    first = [(T0_MS + 1000 * i, float(i)) for i in range(120)]
    second = [(T0_MS + 1000 * i, float(i)) for i in range(120, 240)]
    body = chunked_body(
        [
            (0, {"job": "a"}, [encode_xor(first)]),
            (0, {"job": "a"}, [encode_xor(second)]),  # the same series, next frame
            (0, {"job": "b"}, [encode_xor(first)]),
            (1, {"job": "a"}, [encode_xor(second)]),
        ]
    )
    answers = decode_chunked_response(body, [(T0_MS + 10_000, T0_MS + 200_000), (0, 2**62)])
    (a_labels, a_t, a_v), (b_labels, b_t, _b_v) = answers[0]
    assert (a_labels, b_labels) == ({"job": "a"}, {"job": "b"})
    assert a_t.tolist() == [T0_MS + 1000 * i for i in range(10, 201)]  # both ends included
    assert a_v.tolist() == [float(i) for i in range(10, 201)]
    assert b_t.tolist() == [T0_MS + 1000 * i for i in range(10, 120)]
    assert answers[1][0][1].size == 120


def test_corrupt_and_foreign_answers_are_refused() -> None:
    good = chunked_body([(0, {"job": "a"}, [encode_xor([(T0_MS, 1.0), (T0_MS + 15, 2.0)])])])
    assert len(list(frames(good))) == 1
    flipped = bytearray(good)
    flipped[-1] ^= 0x01
    with pytest.raises(ChunkError, match="checksum"):
        decode_chunked_response(bytes(flipped), [(0, 2**62)])
    with pytest.raises(ChunkError, match="truncated"):
        decode_chunked_response(good[:-3], [(0, 2**62)])
    histogram = chunked_body([(0, {"job": "a"}, [b"\x00\x01abc"])], kind=2)
    with pytest.raises(ChunkError, match="not XOR"):
        decode_chunked_response(histogram, [(0, 2**62)])
    # A header promising more samples than the bytes hold.
    short = encode_xor([(T0_MS + i, float(i * i)) for i in range(50)])
    lying = struct.pack(">H", 400) + short[2:]
    with pytest.raises(ChunkError, match="does not decode"):
        decode_chunked_response(chunked_body([(0, {}, [lying])]), [(0, 2**62)])
    with pytest.raises(ChunkError, match="within its 1 bytes"):  # shorter than its header
        decode_chunked_response(chunked_body([(0, {}, [b"\x00", short])]), [(0, 2**62)])
    with pytest.raises(ChunkError, match="query index 3"):
        decode_chunked_response(chunked_body([(3, {}, [short])]), [(0, 2**62)])


# --------------------------------------------------------------- against a real Prometheus

SCRAPE_MS = 15_000


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from engine.demo.openmetrics import open_openmetrics

    work = tmp_path_factory.mktemp("xor-chunks")
    rng = np.random.default_rng(3)
    ts = T0_MS // 1000 + 7 + 15 * np.arange(2 * 86_400 // 15, dtype=np.int64)
    with open_openmetrics(work / "data.om") as writer:
        writer.family("xc_requests", "counter", "Requests.")
        for job in ("a", "b", "c"):
            values = np.cumsum(rng.poisson(30, ts.size)).astype(np.float64)
            values[ts.size // 2 :] -= values[ts.size // 2 - 1]  # a reset
            keep = rng.random(ts.size) > 0.02  # irregular gaps
            writer.series("xc_requests_total", {"job": job}, ts[keep], values[keep])
        writer.family("xc_level", "gauge", "Floats.")
        writer.series("xc_level", {"job": "a"}, ts, rng.normal(size=ts.size) * 1e-3)
    with LocalPrometheus(backfill(work / "data.om", work / "tsdb")) as server:
        yield server


def _read(url: str, queries: list, chunks: bool) -> tuple[str, bytes]:
    response = requests.post(
        f"{url}/api/v1/read", data=encode_read_request(queries, chunks=chunks), headers=HEADERS
    )
    response.raise_for_status()
    return response.headers["Content-Type"], response.content


RANGES = [
    (T0_MS, T0_MS + 2 * 86_400_000),  # everything
    (T0_MS + 3_600_123, T0_MS + 3 * 3_600_000 + 7_000),  # edges inside chunks, on a sample
    (T0_MS + 86_400_000 - 1, T0_MS + 86_400_000 + 1),  # at most one sample
]


@pytest.mark.prometheus
def test_chunked_answers_carry_exactly_the_samples_of_samples_answers(
    prometheus: LocalPrometheus,
) -> None:
    queries = [
        (start, end, [("__name__", "=~", "xc_.*"), ("job", "=~", ".+")]) for start, end in RANGES
    ]
    kind, body = _read(prometheus.url, queries, chunks=True)
    assert xor_chunks.is_chunked(kind), kind
    chunked = decode_chunked_response(body, [(s, e) for s, e, _ in queries])
    kind, body = _read(prometheus.url, queries, chunks=False)
    assert not xor_chunks.is_chunked(kind)
    sampled = decode_read_response(body)
    # SAMPLES lists every matching series, empty ones too (the last range holds no
    # sample); chunks come only where some chunk overlaps the range. Either way a series
    # without samples adds nothing.
    assert [len(found) for found in sampled] == [4, 4, 4]
    sampled = [[s for s in found if s[1].size] for found in sampled]
    assert [len(found) for found in chunked] == [len(found) for found in sampled] == [4, 4, 0]
    total = 0
    for mine, theirs in zip(chunked, sampled, strict=True):
        by_labels = {tuple(sorted(labels.items())): (t, v) for labels, t, v in theirs}
        for labels, t_ms, values in mine:
            t_exp, v_exp = by_labels[tuple(sorted(labels.items()))]
            np.testing.assert_array_equal(t_ms, t_exp)
            np.testing.assert_array_equal(values.view(np.uint64), v_exp.view(np.uint64))
            total += t_ms.size
    assert total > 2 * 4 * 86_400_000 // SCRAPE_MS * 0.9  # the whole range was compared


class _Proxy(BaseHTTPRequestHandler):
    """Forwards remote reads to Prometheus, flipping a byte of every chunked answer."""

    upstream = ""
    asked: ClassVar[list[list[int]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        import cramjam

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = prompb_classes()["ReadRequest"].FromString(
            bytes(cramjam.snappy.decompress_raw(body))
        )
        type(self).asked.append(list(request.accepted_response_types))
        answer = requests.post(f"{self.upstream}{self.path}", data=body, headers=HEADERS)
        content = answer.content
        if xor_chunks.is_chunked(answer.headers.get("Content-Type")):
            content = content[:-1] + bytes([content[-1] ^ 0xFF])
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers["Content-Type"])
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


@pytest.fixture
def proxy(prometheus: LocalPrometheus) -> Iterator[str]:
    _Proxy.upstream, _Proxy.asked = prometheus.url, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _atoms(url: str, **kwargs: Any) -> tuple[PrometheusSource, np.ndarray]:
    from engine.source.read_plan import Read

    source = PrometheusSource(url, **kwargs)
    read = Read(
        matchers=(("__name__", "=", "xc_requests_total"),),
        func="increase",
        range_ms=300_000,
        atoms=((0, ()),),
    )
    times = (T0_MS + 300_000 * np.arange(1, 500)) / 1000.0
    return source, remote_read.read_atoms(source, [read], 1, times)


@pytest.mark.prometheus
def test_an_undecodable_chunked_answer_is_asked_again_as_samples(
    prometheus: LocalPrometheus, proxy: str
) -> None:
    direct_source, direct = _atoms(prometheus.url)
    assert direct_source.remote_read_chunks
    source, through_proxy = _atoms(proxy)
    np.testing.assert_array_equal(through_proxy, direct)
    assert source.remote_read_chunks is False  # SAMPLES from now on
    assert _Proxy.asked == [[1, 0], [0]]
    _atoms(proxy)  # a new source tries chunks again; this one would not
    source.remote_read_chunks = False
    _Proxy.asked.clear()
    remote_read.read_atoms(source, [], 1, np.array([T0_MS / 1000 + 600.0]))
    assert _Proxy.asked == []


@pytest.mark.prometheus
def test_without_the_compiled_decoder_only_samples_are_asked(
    prometheus: LocalPrometheus, proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_read, "decoder_available", lambda: False)
    _, through_proxy = _atoms(proxy)
    assert _Proxy.asked and all(types == [0] for types in _Proxy.asked)
    _, direct = _atoms(prometheus.url)
    np.testing.assert_array_equal(through_proxy, direct)


def test_decoder_available_here() -> None:
    """numba is a dependency: the fast path is the one the suite exercises."""
    assert xor_chunks.decoder_available()


def test_a_series_without_samples_in_range_adds_nothing() -> None:
    """SAMPLES lists a series that stopped earlier in the block with no samples: it must
    not break the fetch (it used to raise IndexError in the increase)."""
    from engine.source.read_plan import Read

    read = Read(matchers=(), func="increase", range_ms=300_000, atoms=((0, ()),))
    empty = np.empty(0, dtype=np.int64), np.empty(0)
    one = np.array([T0_MS]), np.array([5.0])
    found = [({"job": "gone"}, *empty), ({"job": "once"}, *one)]
    assert list(remote_read._atom_values(read, found, np.array([T0_MS + 60_000]))) == []


@pytest.mark.prometheus
def test_head_chunks_of_a_scraping_prometheus_read_like_samples(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The daemon's cold fill reads the head block too: its chunks include the open one
    still being appended to. Prometheus scrapes itself every second for a few seconds."""
    import time

    from engine.source.localprom import free_port

    if skip_reason():
        pytest.skip(skip_reason())
    port = free_port()
    scrape = {
        "job_name": "self",
        "scrape_interval": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
    }
    tsdb = tmp_path_factory.mktemp("xor-head")
    with LocalPrometheus(tsdb, port=port, scrape_configs=[scrape]) as server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until `up` has 5 samples
            answer = requests.get(
                f"{server.url}/api/v1/query", params={"query": "count_over_time(up[1m])"}
            ).json()["data"]["result"]
            if answer and float(answer[0]["value"][1]) >= 5:
                break
            time.sleep(0.5)
        # Two seconds back: no sample at or before the end is appended between the reads.
        now_ms = int(time.time() * 1000) - 2000
        queries = [
            (
                now_ms - 600_000,
                now_ms,
                [
                    ("job", "=", "self"),
                    ("__name__", "=~", "up|scrape_.*|prometheus_http_requests_total"),
                ],
            )
        ]
        kind, body = _read(server.url, queries, chunks=True)
        assert xor_chunks.is_chunked(kind), kind
        chunked = decode_chunked_response(body, [(now_ms - 600_000, now_ms)])[0]
        _, body = _read(server.url, queries, chunks=False)
        sampled = [s for s in decode_read_response(body)[0] if s[1].size]
    assert len(chunked) == len(sampled) >= 5
    up = [t for labels, t, _ in chunked if labels["__name__"] == "up"]
    assert len(up) == 1 and up[0].size >= 3  # (series born while polling have fewer)
    by_labels = {tuple(sorted(labels.items())): (t, v) for labels, t, v in sampled}
    for labels, t_ms, values in chunked:
        t_exp, v_exp = by_labels[tuple(sorted(labels.items()))]
        np.testing.assert_array_equal(t_ms, t_exp)
        np.testing.assert_array_equal(values.view(np.uint64), v_exp.view(np.uint64))


def test_the_decoder_compiles_where_numba_cannot_cache() -> None:
    """A read-only image without a home: numba finds no place for its cache and refuses
    `cache=True` at import; the kernels are compiled without it and still decode."""
    import subprocess
    import sys

    script = (
        "import numba.core.caching as c\n"
        "c.CacheImpl._locator_classes = []\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_source_xor_chunks import chunked_body, encode_xor\n"
        "from engine.source.xor_chunks import decode_chunked_response\n"
        "body = chunked_body([(0, {'job': 'a'}, [encode_xor([(5, 1.5), (20, 2.5), (35, 4.0)])])])\n"
        "[[(_, t, v)]] = decode_chunked_response(body, [(0, 100)])\n"
        "print(t.tolist(), v.tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[5, 20, 35] [1.5, 2.5, 4.0]"
