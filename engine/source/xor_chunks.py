"""Remote read's STREAMED_XOR_CHUNKS answer, decoded into the same series as SAMPLES.

With SAMPLES, Prometheus decodes every stored chunk and re-encodes each sample as a
protobuf record, and the client decodes that again: half of a long history fetch's CPU was
Prometheus', the other half ours. With STREAMED_XOR_CHUNKS it ships the chunks as stored
and the client decodes them (engine.source.xor_kernels, compiled).

The body is a stream of frames — uvarint length, CRC-32C of the message (4 bytes, big
endian), a `ChunkedReadResponse{chunked_series[], query_index}` — each at most
`--storage.remote.read-max-bytes-in-frame` (1 MiB by default), so a series with many
chunks continues in the next frame under the same labels. Chunks cover whole stretches of
samples and may reach outside the asked range: samples are cut to [start, end], both ends
included, as SAMPLES answers them, and stale markers are dropped the same way.

Anything unexpected — a checksum that does not match, a truncated frame, a chunk that is
not XOR (native histograms), a chunk that does not decode within its bytes — raises
`ChunkError`; the caller then asks that request again as SAMPLES.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence

import numpy as np

from engine.source.prompb import STALE_NAN_BITS, Series, prompb_classes
from engine.source.prompb_samples import read_varint

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-streamed-protobuf"
_XOR = 1  # prompb Chunk.Encoding


class ChunkError(ValueError):
    """A chunked answer this decoder cannot read."""


@functools.lru_cache(maxsize=1)
def decoder_available() -> bool:
    """Whether the compiled decoder can be used here (numba importable and working with
    this numpy); if not, remote read asks for SAMPLES. Tried once per process."""
    try:
        import engine.source.xor_kernels  # noqa: F401
    except Exception as exc:  # ImportError, or numba refusing this numpy version
        log.warning("no compiled chunk decoder (%s): remote read asks for samples", exc)
        return False
    return True


def is_chunked(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip() == CONTENT_TYPE


def decode_chunked_response(body: bytes, ranges: Sequence[tuple[int, int]]) -> list[list[Series]]:
    """Per query of the request ((start ms, end ms) each, in order), its series: labels,
    timestamps (ms) and values within the range, stale markers dropped."""
    found = _collect(body, len(ranges))
    chunks = [blob for series in found for _key, blobs in series for blob in blobs]
    t_ms, values, first = _decode_all(chunks)
    out: list[list[Series]] = []
    k = 0
    for (start, end), series in zip(ranges, found, strict=True):
        answers: list[Series] = []
        for key, blobs in series:
            a, b = first[k], first[k + len(blobs)]
            k += len(blobs)
            # A series without samples in the range stays, empty, as in a SAMPLES answer.
            answers.append(_cut(dict(key), t_ms[a:b], values[a:b], start, end))
        out.append(answers)
    return out


def frames(body: bytes) -> Iterator[bytes]:
    """The messages of a chunked body, each checked against its CRC-32C."""
    from engine.source.xor_kernels import CRC32C_TABLE, crc32c

    buf = np.frombuffer(body, dtype=np.uint8)
    pos, n = 0, len(body)
    while pos < n:
        size, pos = _uvarint(body, pos)
        start = pos + 4
        if start + size > n:
            raise ChunkError("truncated frame")
        expected = int.from_bytes(body[pos:start], "big")
        if int(crc32c(buf, start, start + size, CRC32C_TABLE)) != expected:
            raise ChunkError("frame checksum mismatch")
        yield body[start : start + size]
        pos = start + size


Found = list[list[tuple[tuple[tuple[str, str], ...], list[bytes]]]]


def _collect(body: bytes, n_queries: int) -> Found:
    """Per query, its series as (labels, chunk bytes), frames of one series joined."""
    message = prompb_classes()["ChunkedReadResponse"]
    found: Found = [[] for _ in range(n_queries)]
    for frame in frames(body):
        try:
            response = message.FromString(frame)
        except Exception as exc:  # the protobuf runtime's DecodeError
            raise ChunkError(f"undecodable frame ({exc})") from None
        q = response.query_index
        if not 0 <= q < n_queries:
            raise ChunkError(f"query index {q} outside the request's {n_queries} queries")
        series_of_query = found[q]
        for series in response.chunked_series:
            key = tuple((label.name, label.value) for label in series.labels)
            if not series_of_query or series_of_query[-1][0] != key:
                series_of_query.append((key, []))
            blobs = series_of_query[-1][1]
            for chunk in series.chunks:
                if chunk.type != _XOR:
                    raise ChunkError(f"chunk encoding {chunk.type} is not XOR")
                blobs.append(chunk.data)
    return found


def _decode_all(chunks: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All chunks decoded in one compiled call: timestamps, values, and where each chunk's
    samples start (one more entry: the total)."""
    from engine.source.xor_kernels import PADDING, decode_chunks

    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    buf = np.frombuffer(b"".join(chunks) + bytes(PADDING), dtype=np.uint8)
    # A chunk shorter than its 2-byte header reads padding here; the kernel refuses it.
    counts = (buf[starts].astype(np.int64) << 8) | buf[starts + 1]
    first = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    t_ms = np.empty(first[-1], dtype=np.int64)
    bits = np.empty(first[-1], dtype=np.uint64)
    bad = decode_chunks(buf, starts, ends, first, t_ms, bits)
    if bad >= 0:
        raise ChunkError(f"chunk {bad} does not decode within its {lengths[bad]} bytes")
    return t_ms, bits.view(np.float64), first


def _cut(
    labels: dict[str, str], t_ms: np.ndarray, values: np.ndarray, start: int, end: int
) -> Series:
    """One series' samples within [start, end], in time order, stale markers dropped."""
    if t_ms.size > 1 and np.any(np.diff(t_ms) <= 0):
        # Chunks of a series come ordered and disjoint from Prometheus' merging querier;
        # another server might overlap them: keep one sample per timestamp.
        t_ms, keep = np.unique(t_ms, return_index=True)
        values = values[keep]
    a = int(np.searchsorted(t_ms, start, side="left"))
    b = int(np.searchsorted(t_ms, end, side="right"))
    t_ms, values = t_ms[a:b], values[a:b]
    stale = values.view(np.uint64) == STALE_NAN_BITS
    if stale.any():
        t_ms, values = t_ms[~stale], values[~stale]
    return labels, t_ms, values


def _uvarint(body: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_varint(body, pos)
    except IndexError:
        raise ChunkError("truncated frame length") from None
