"""History over Prometheus remote read, with `query_range` as the fallback.

Long spans (the daemon's cold fill of its cache tiers, `backtest`'s history) are where
`query_range` is slow: Prometheus evaluates `rate()` at every step and ships JSON. Remote read
(`POST /api/v1/read`) ships the raw samples instead (snappy-compressed protobuf), and the
per-step rates are computed here with Prometheus 2.x `rate()` semantics
(engine.source.counter_math) — measured about 4× faster, equal to `query_range` within 1e-9
relative (bench/bench_remote_read.py, tests/test_source_remote_read.py).

Only plain selectors can be read: an SLO qualifies when every atom of its bad and total
expressions (engine.source.query_plan) is `sum(rate|increase(metric{matchers}[step]))`.
Atoms are merged into few selectors so each series is fetched once, and its per-step
increase is added to every atom it belongs to (engine.source.read_plan), summed as
Prometheus' `sum` would. Any other SLO (opaque PromQL, availability's `*_over_time`, native
histograms) keeps `query_range`.

Fallback, and saying which was used: a backend without remote read (VictoriaMetrics
single-node answers 400/404) is remembered and asked over `query_range` from then on; a
failed read (5xx after retries, timeout, a sample limit) falls back for that fetch only.
Either way a warning is logged; `PrometheusSource.history_slos` counts SLO histories per
method (the daemon's `slo_engine_source_history_slos_total{method}`), and
`history_fallback` keeps the last reason (backtest's JSON reports both).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import requests

from engine.evaluation.source import StepRates
from engine.source.counter_math import extrapolated_increase
from engine.source.prompb import HEADERS, Matcher, Series, decode_read_response
from engine.source.prompb import encode_read_request as encode_request
from engine.source.read_plan import Read, plan_reads, readable_rows
from engine.source.xor_chunks import (
    ChunkError,
    decode_chunked_response,
    decoder_available,
    is_chunked,
)
from engine.spec.durations import Duration
from engine.spec.models import SLO

if TYPE_CHECKING:
    from engine.source.prometheus import PrometheusSource

log = logging.getLogger(__name__)

REMOTE_READ = "remote_read"
QUERY_RANGE = "query_range"
# Time per request: a day of 15 s scrapes is 5,760 samples per series, far under the
# server's per-query sample limit for the series of a read's atoms (read_plan.READ_ATOMS).
CHUNK_MS = 86_400_000
# Stored chunks have no sample limit; longer requests re-send fewer chunks that straddle
# a request's edge (a chunk holds about 120 samples).
STREAMED_CHUNK_MS = 7 * CHUNK_MS
# Remote-read queries per request.
QUERIES_PER_REQUEST = 4
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class RemoteReadFailed(Exception):
    """Remote read did not answer; `permanent` when the backend lacks it altogether."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def read_history(
    source: PrometheusSource, slos: Sequence[SLO], step: Duration, times: np.ndarray
) -> StepRates:
    """`PrometheusSource.fetch` over a long span: remote read for the SLOs it can serve,
    `query_range` for the others and as the fallback."""
    if source.history_fallback_permanent:
        return _over_query_range(source, slos, step, times)
    source._refresh_auth()
    plan, scales = source._plan(slos, step)
    reads, readable = plan_reads(plan)
    ok = readable_rows(plan, readable, len(slos))
    if not ok.any():
        return _over_query_range(source, slos, step, times)
    try:
        atom_rates = read_atoms(source, reads, len(plan.atoms), times)
    except RemoteReadFailed as exc:
        source.history_fallback = f"remote read failed at {source.url}: {exc}"
        source.history_fallback_permanent = exc.permanent
        log.warning("%s; history over query_range instead", source.history_fallback)
        return _over_query_range(source, slos, step, times)
    bad = plan.bad.combine(atom_rates, len(slos)) * scales[:, None]
    total = plan.total.combine(atom_rates, len(slos)) * scales[:, None]
    errors: dict[str, str] = {}
    rows = np.flatnonzero(ok)
    read_bad, read_total = bad[rows], total[rows]
    source._missing_good([slos[i] for i in rows], times, read_bad, read_total, errors)
    bad[rows], total[rows] = read_bad, read_total
    _count(source, REMOTE_READ, int(ok.sum()))
    log.info("history of %d SLOs over remote read (%d steps)", int(ok.sum()), times.size)
    rest = np.flatnonzero(~ok)
    if rest.size:
        other = _over_query_range(source, [slos[i] for i in rest], step, times)
        bad[rest], total[rest] = other.bad, other.total
        errors.update(other.errors)
    return StepRates(step=step, times=times, bad=bad, total=total, errors=errors)


def _over_query_range(
    source: PrometheusSource, slos: Sequence[SLO], step: Duration, times: np.ndarray
) -> StepRates:
    rates = source.query_range_rates(slos, step, times)
    _count(source, QUERY_RANGE, len(slos))
    return rates


def _count(source: PrometheusSource, method: str, n: int) -> None:
    with source._lock:
        source.history_slos[method] = source.history_slos.get(method, 0) + n


def _chunks(times: np.ndarray, span_ms: int = CHUNK_MS) -> Iterator[tuple[int, int]]:
    """Index ranges [i0, i1) of `times` each spanning at most `span_ms`."""
    eval_ms = np.rint(times * 1000).astype(np.int64)
    i0 = 0
    while i0 < eval_ms.size:
        i1 = int(np.searchsorted(eval_ms, eval_ms[i0] + span_ms, side="left"))
        i1 = max(i1, i0 + 1)
        yield i0, i1
        i0 = i1


def read_atoms(
    source: PrometheusSource, reads: Sequence[Read], n_atoms: int, times: np.ndarray
) -> np.ndarray:
    """float64[n_atoms, T]: every read atom's value at each of `times` (NaN: no series had
    two samples in the range; atoms no read covers stay NaN). Raises `RemoteReadFailed`."""
    eval_ms = np.rint(times * 1000).astype(np.int64)
    sums = np.zeros((n_atoms, times.size))
    seen = np.zeros((n_atoms, times.size), dtype=bool)
    lock = threading.Lock()
    streamed = source.remote_read_chunks and decoder_available()
    tasks = [
        (reads[q : q + QUERIES_PER_REQUEST], i0, i1)
        for i0, i1 in _chunks(times, STREAMED_CHUNK_MS if streamed else CHUNK_MS)
        for q in range(0, len(reads), QUERIES_PER_REQUEST)
    ]

    failed = threading.Event()

    def run(task: tuple[Sequence[Read], int, int]) -> None:
        if failed.is_set():
            return  # the whole fetch goes to query_range: stop asking
        batch, i0, i1 = task
        at = eval_ms[i0:i1]
        queries = [(int(at[0]) - r.range_ms, int(at[-1]), r.matchers) for r in batch]
        try:
            answers = _ask(source, queries, streamed)
        except RemoteReadFailed:
            failed.set()
            raise
        for read, found in zip(batch, answers, strict=True):
            for atom, values in _atom_values(read, found, at):
                with lock:
                    present = ~np.isnan(values)
                    sums[atom, i0:i1] += np.where(present, values, 0.0)
                    seen[atom, i0:i1] |= present

    with ThreadPoolExecutor(max_workers=max(1, source.concurrency)) as pool:
        list(pool.map(run, tasks))
    return np.where(seen, sums, np.nan)


def _atom_values(
    read: Read, found: list[Series], eval_ms: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """(atom, value at each eval time) per series and atom it belongs to: its increase over
    the range (rate: per second), to be summed into the atom like Prometheus' `sum`."""
    for labels, t_ms, values in found:
        atoms = read.atoms_for(labels)
        if not atoms or t_ms.size < 2:
            # Under two samples there is no increase; SAMPLES answers list series without
            # samples in the range (one that stopped earlier in the same block).
            continue
        increase = extrapolated_increase(t_ms, values, eval_ms, read.range_ms)
        if read.func == "rate":
            increase = increase / (read.range_ms / 1000)
        for atom in atoms:
            yield atom, increase


def _ask(
    source: PrometheusSource, queries: list[tuple[int, int, Sequence[Matcher]]], streamed: bool
) -> list[list[Series]]:
    """One request's answers, as stored chunks when `streamed` and the source still takes
    them: a chunked answer that cannot be decoded is asked again as SAMPLES, and so is
    every later request of this source."""
    ranges = [(start, end) for start, end, _ in queries]
    if streamed and source.remote_read_chunks:
        try:
            return _post(source, encode_request(queries, chunks=True), ranges)
        except ChunkError as exc:
            source.remote_read_chunks = False
            log.warning(
                "remote read chunks from %s undecodable (%s); asking for samples", source.url, exc
            )
    return _post(source, encode_request(queries), ranges)


def _post(
    source: PrometheusSource, body: bytes, ranges: list[tuple[int, int]]
) -> list[list[Series]]:
    """One remote-read request, retried like the source's queries; decoded per query. A
    chunked answer that does not decode raises ChunkError."""
    client = source._client
    headers = {**HEADERS, **(client.headers or {})}
    last = ""
    for attempt in range(source.retries + 1):
        if attempt:
            source._sleep(random.uniform(0, source.backoff * 2 ** (attempt - 1)))
        source._count()
        try:
            response = client._session.post(
                f"{source.url}/api/v1/read",
                data=body,
                headers=headers,
                auth=client.auth,
                timeout=source.timeout,
            )
        except requests.exceptions.Timeout:
            last = f"timed out after {source.timeout}s"
            continue
        except requests.exceptions.RequestException as exc:
            last = f"{type(exc).__name__}"
            continue
        if response.status_code == 200:
            if is_chunked(response.headers.get("Content-Type")):
                return decode_chunked_response(response.content, ranges)
            try:
                return decode_read_response(response.content)
            except Exception as exc:  # not snappy/protobuf: a backend without remote read
                raise RemoteReadFailed(f"undecodable answer ({exc})", permanent=True) from None
        text = response.text[:200].strip()
        if response.status_code in _RETRYABLE_STATUS:
            last = f"HTTP {response.status_code}: {text}"
            continue
        # 4xx: the backend has no remote read (404, VictoriaMetrics' 400) — unless it is the
        # per-query sample limit, which a later, smaller fetch may pass.
        permanent = response.status_code != 401 and response.status_code != 403
        permanent = permanent and "sample limit" not in text
        raise RemoteReadFailed(f"HTTP {response.status_code}: {text}", permanent=permanent)
    raise RemoteReadFailed(f"{last} (gave up after {source.retries + 1} attempts)")


def history_report(source: object) -> dict[str, object]:
    """How a source fetched its long spans, for backtest's JSON: `method` is remote_read,
    query_range, mixed (some SLOs each way) or none; `slos` counts SLO histories (an SLO
    fetched in three time chunks counts three) per method; `fallback` says why remote
    read was given up, if it was."""
    counts = dict(getattr(source, "history_slos", None) or {})
    used = sorted(method for method, n in counts.items() if n)
    method = used[0] if len(used) == 1 else ("mixed" if used else "none")
    return {"method": method, "slos": counts, "fallback": getattr(source, "history_fallback", None)}
