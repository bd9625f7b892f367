"""A vectorized decoder for the samples of one remote-read `TimeSeries` message.

The protobuf runtime builds one Python object per sample (≈0.5 µs each), which made
decoding the slowest part of remote read. Prometheus (gogoproto) writes a series as its
labels, then one record per sample — `0x12 L [0x09 <8-byte double>] 0x10 <varint ms>`, the
value left out when it is 0 — so the records can be found with numpy: a record's length byte
gives the next record's start, and a run of records of equal length is a fixed stride that
can be checked in one vector operation. Runs change only where the value becomes or stops
being 0 (or a timestamp's varint grows), so the Python loop is over runs, not samples.

Every record is checked (tags, lengths, varint continuation bits); anything unexpected —
another field order, a field this decoder does not know — returns None and the caller decodes
that series with the protobuf runtime instead.
"""

from __future__ import annotations

import numpy as np

_LABEL_TAG, _SAMPLE_TAG, _VALUE_TAG, _TIMESTAMP_TAG = 0x0A, 0x12, 0x09, 0x10
_FIRST_RUN_CHECK = 64  # records checked at once first; doubled while a run goes on


def read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = shift = 0
    while True:
        byte = raw[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _labels(raw: bytes, pos: int) -> tuple[dict[str, str], int] | None:
    """The Label fields at the start of a series, and where the samples begin."""
    labels: dict[str, str] = {}
    while pos < len(raw) and raw[pos] == _LABEL_TAG:
        length, pos = read_varint(raw, pos + 1)
        end, name, value = pos + length, "", ""
        while pos < end:
            tag = raw[pos]
            size, pos = read_varint(raw, pos + 1)
            text = raw[pos : pos + size].decode("utf-8")
            if tag == _LABEL_TAG:
                name = text
            elif tag == _SAMPLE_TAG:
                value = text
            else:
                return None
            pos += size
        labels[name] = value
    return labels, pos


def _runs(buf: np.ndarray, pos: int) -> list[tuple[int, int, int]] | None:
    """The sample records from `pos` to the end as runs of equal length: (start, records,
    stride), or None when they do not chain up to the end exactly."""
    n, runs = buf.size, []
    while pos < n:
        if pos + 1 >= n or buf[pos] != _SAMPLE_TAG or buf[pos + 1] >= 0x80:
            return None
        length = int(buf[pos + 1])
        stride, start, check = length + 2, pos, _FIRST_RUN_CHECK
        while pos < n:
            k = min(check, (n - pos) // stride)
            if k == 0:
                break
            at = pos + stride * np.arange(k)
            ok = (buf[at] == _SAMPLE_TAG) & (buf[at + 1] == length)
            good = k if ok.all() else int(np.argmin(ok))
            pos += good * stride
            if good < k:
                break
            check *= 2
        if pos == start:
            return None
        runs.append((start, (pos - start) // stride, stride))
    return runs


def _run_fields(block: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(timestamps ms, values) of `block[records, stride]`: records of one length, so every
    field sits at the same column; None when a record is not value-then-timestamp."""
    kind = block[:, 2]
    if kind[0] == _VALUE_TAG:
        if np.any(kind != _VALUE_TAG):
            return None
        values = np.ascontiguousarray(block[:, 3:11]).view("<f8").ravel()
        tag = 11
    else:
        values = np.zeros(block.shape[0])  # a 0 value is left out of the record
        tag = 2
    digits = block[:, tag + 1 :]
    width = digits.shape[1]
    if width < 1 or width > 10 or np.any(block[:, tag] != _TIMESTAMP_TAG):
        return None
    if np.any(digits[:, :-1] < 0x80) or np.any(digits[:, -1] >= 0x80):
        return None  # varint continuation bits
    t_ms = np.zeros(block.shape[0], dtype=np.uint64)
    for j in range(width):
        t_ms |= (digits[:, j] & 0x7F).astype(np.uint64) << np.uint64(7 * j)
    return t_ms.view(np.int64), values


def decode_series(raw: bytes) -> tuple[dict[str, str], np.ndarray, np.ndarray] | None:
    """One serialized TimeSeries → (labels, timestamps ms, values); None when its layout is
    not the one described in the module docstring."""
    head = _labels(raw, 0)
    if head is None:
        return None
    labels, pos = head
    buf = np.frombuffer(raw, dtype=np.uint8)
    runs = _runs(buf, pos)
    if runs is None:
        return None
    times, values = [], []
    for start, count, stride in runs:
        fields = _run_fields(buf[start : start + count * stride].reshape(count, stride))
        if fields is None:
            return None
        times.append(fields[0])
        values.append(fields[1])
    if not runs:
        return labels, np.empty(0, dtype=np.int64), np.empty(0)
    return labels, np.concatenate(times), np.concatenate(values)
