"""Compiled inner loops of the STREAMED_XOR_CHUNKS decoder (engine.source.xor_chunks).

A Gorilla chunk is a bit stream: every sample's width depends on the one before, so it
cannot be vectorized with numpy; decoding 259 million samples one bit field at a time in
Python would take minutes. numba compiles these loops to machine code (a few ns per sample),
on first use, cached on disk where numba finds a writable place (next to this module, or
the user's cache directory); elsewhere — a read-only image without a home — each process
compiles them again (about 2 s). This module imports numba: the caller imports it inside a
`try` and asks for SAMPLES when numba is missing.

The layout is Prometheus' `tsdb/chunkenc/xor.go` (2.x and 3.x alike):

- 2 bytes big-endian: the number of samples;
- sample 0: the timestamp as a zig-zag varint (byte by byte), the value as 64 raw bits;
- sample 1: the timestamp delta as an unsigned varint, the value XOR-encoded;
- later samples: the delta of the delta — `0` (none), `10`+14 bits, `110`+17, `1110`+20,
  `1111`+64 — then the value: `0` (unchanged), `10` + the meaningful bits in the previous
  window, or `11` + 5 bits of leading zeros + 6 bits of length (0 meaning 64) + the bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def _compiled(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """numba.njit with its on-disk cache when there is somewhere to write it."""

    def wrap(func: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # "cannot cache function …: no locator available"
            return numba.njit(cache=False, **options)(func)

    return wrap


# The decoder may read up to one sample's widest encoding (≈ 19 bytes) past a corrupt
# chunk's end before it notices; the buffer it gets is padded with this many zero bytes.
PADDING = 32


@_compiled(inline="always")
def _bits(buf: np.ndarray, pos: int, n: int) -> int:
    """`n` (1..64) bits of `buf` from bit `pos`, most significant first."""
    byte = pos >> 3
    avail = 8 - (pos & 7)
    cur = np.uint64(buf[byte]) & np.uint64((1 << avail) - 1)
    if n <= avail:
        return cur >> np.uint64(avail - n)
    out = cur
    n -= avail
    byte += 1
    while n >= 8:
        out = (out << np.uint64(8)) | np.uint64(buf[byte])
        byte += 1
        n -= 8
    if n > 0:
        out = (out << np.uint64(n)) | (np.uint64(buf[byte]) >> np.uint64(8 - n))
    return out


@_compiled(inline="always")
def _varint_bytes(buf: np.ndarray, pos: int) -> tuple[int, int]:
    """An unsigned varint written byte by byte into the bit stream at `pos`."""
    value = np.uint64(0)
    shift = 0
    for _ in range(10):
        byte = _bits(buf, pos, 8)
        pos += 8
        value |= (byte & np.uint64(0x7F)) << np.uint64(shift)
        if byte < np.uint64(0x80):
            return value, pos
        shift += 7
    return value, -1


@_compiled(nogil=True)
def decode_chunks(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    first: np.ndarray,
    t_out: np.ndarray,
    v_out: np.ndarray,
) -> int:
    """Decode chunk c (bytes starts[c]:ends[c] of buf) into t_out/v_out (value bits) from
    index first[c]. Returns -1, or the first chunk that did not decode within its bytes."""
    for c in range(starts.size):
        start, end, o = starts[c], ends[c], first[c]
        if end - start < 2:
            return c
        n = (int(buf[start]) << 8) | int(buf[start + 1])
        if n == 0:
            continue
        limit = end * 8
        u, pos = _varint_bytes(buf, (start + 2) * 8)
        if pos < 0:
            return c
        t = np.int64(u >> np.uint64(1)) ^ -np.int64(u & np.uint64(1))
        vbits = _bits(buf, pos, 64)
        pos += 64
        t_out[o] = t
        v_out[o] = vbits
        delta = np.int64(0)
        leading = np.int64(0)
        trailing = np.int64(0)
        for i in range(1, n):
            if i == 1:
                u, pos = _varint_bytes(buf, pos)
                if pos < 0:
                    return c
                delta = np.int64(u)
            else:
                size = 0
                for k in range(4):
                    if _bits(buf, pos, 1) == np.uint64(0):
                        pos += 1
                        break
                    pos += 1
                    size = k + 1
                if size > 0:
                    width = (0, 14, 17, 20, 64)[size]
                    raw = _bits(buf, pos, width)
                    pos += width
                    dod = np.int64(raw)
                    if width != 64 and raw > np.uint64(1 << (width - 1)):
                        dod = np.int64(raw) - np.int64(1 << width)
                    delta += dod
            t += delta
            if _bits(buf, pos, 1) == np.uint64(1):
                pos += 1
                if _bits(buf, pos, 1) == np.uint64(1):
                    leading = np.int64(_bits(buf, pos + 1, 5))
                    sig = np.int64(_bits(buf, pos + 6, 6))
                    pos += 12
                    if sig == 0:
                        sig = 64
                    trailing = 64 - leading - sig
                    if trailing < 0:
                        return c
                else:
                    pos += 1
                width = 64 - leading - trailing
                vbits ^= _bits(buf, pos, width) << np.uint64(trailing)
                pos += width
            else:
                pos += 1
            if pos > limit:
                return c
            t_out[o + i] = t
            v_out[o + i] = vbits
    return -1


@_compiled(nogil=True)
def crc32c(buf: np.ndarray, start: int, end: int, table: np.ndarray) -> int:
    """CRC-32C (Castagnoli) of buf[start:end], as Prometheus frames its chunked answers."""
    crc = np.uint32(0xFFFFFFFF)
    for i in range(start, end):
        crc = table[(crc ^ np.uint32(buf[i])) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


def crc32c_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table[i] = crc
    return table


CRC32C_TABLE = crc32c_table()
