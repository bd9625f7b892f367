"""Window coverage for the one-shot path, from one instant subquery per window and batch.

Whole-window counts (`rate(x[W]) × W`) cannot tell a full window from a part-filled one, and
filling the daemon's cache to find out would cost the one-shot path what it exists to avoid
(engine.evaluation.instant). A PromQL subquery asks the question directly: for a segment of
length L ending `o` before the instant, sampled every `s`,

    count_over_time((<total rate over one fine step>)[L − 1ms : s] offset o)

is the number of instants in (at − o − L, at − o] at which the SLI's total had data over the
fine step before them — the daemon's "step with data" (engine.evaluation.coverage). The
range is 1 ms short of L so the instant exactly at its start (the segment before's) is left
out in Prometheus 2 (closed ranges) as in 3 (left-open).

All windows end at the instant, so each is cut at the next shorter one: the 5m window is
one segment, the 1h window that plus (5m, 1h], the 1d window those plus (1h, 6h] and
(6h, 1d], each segment sampled at its own window's interval (`coverage_samples`). A window's
covered time is the sum over its segments of instants × interval, ÷ W its coverage. Asked
per whole window instead, Prometheus decoded the last 6h of samples twice and the last hour
four times: the cost of these subqueries is decoding the samples under them (a one-step
rate every few minutes reads every chunk), not the number of instants.

The totals go through the query planner (engine.source.query_plan) as for any fetch: atoms
differing in one label value are one `sum by (label)` selector, wrapped once per segment —
`count_over_time` keeps the grouping label, so each series still answers for its atom —
batched with `or`, a rejected batch bisected down to its SLO (not judged: NaN). A total
made of several atoms (a latency SLI's count minus its buckets, say) counts, in each segment,
the instants of its sparsest atom: PromQL's `a − b` has data where both do, so that is exact when the atoms'
series are scraped together, and an upper bound otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.source.discovery import instant_query_for
from engine.source.outcome import FetchOutcome
from engine.source.query_plan import Part, QueryPlan, plan_queries
from engine.source.window_counts import longest_first
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import total_rate


def window_coverage(
    source: object,
    slos: Sequence[SLO],
    windows: Sequence[Duration],
    samples: Sequence[Duration],
    fine: Duration,
    at: float,
) -> np.ndarray:
    """float64[S, W]: the share of each window's sampled instants (every `samples[w]` beyond
    the next shorter window, as that window within it) at which the SLO's total had data
    over the `fine` step before them; 0 when none did; NaN where it could not be asked (no
    Prometheus behind `source`, a rejected query, a backend down)."""
    out = np.full((len(slos), len(windows)), np.nan)
    backends: dict[int, tuple[Any, list[int]]] = {}
    for row, slo in enumerate(slos):
        query = instant_query_for(source, slo)
        backend = getattr(query, "__self__", None)
        if backend is not None and hasattr(backend, "_run_batch"):
            backends.setdefault(id(backend), (backend, []))[1].append(row)
    if not backends or not windows:
        return out
    segments, last = _segments(windows, samples, fine)
    steps = np.array([segment.step.ms for segment in segments], dtype=np.float64)
    lengths = np.array([w.ms for w in windows], dtype=np.float64)
    for backend, rows in backends.values():
        counts = _instants_with_data(backend, [slos[r] for r in rows], segments, fine, at)
        # Covered time, segment by segment outwards; a failed segment fails every window
        # that contains it (NaN carries through the running sum).
        covered = np.cumsum(counts * steps, axis=1)
        out[rows] = np.minimum(covered[:, last] / lengths, 1.0)
    return out


@dataclass(frozen=True)
class _Segment:
    """The part of a window beyond the next shorter one: `length` ending `offset` before
    the instant, sampled every `step` (which divides `length`)."""

    offset: Duration
    length: Duration
    step: Duration


def _segments(
    windows: Sequence[Duration], samples: Sequence[Duration], fine: Duration
) -> tuple[list[_Segment], list[int]]:
    """The windows cut into disjoint segments, shortest first, and for each window the
    index of its outermost segment. Nested windows (all end at the instant) share their
    inner segments, so Prometheus decodes each sample once, not once per window that
    holds it: a 1d window's last 6h are the 6h window's."""
    step_of = dict(zip(windows, samples, strict=True))
    segments: list[_Segment] = []
    inner = 0
    for window in sorted(set(windows)):
        length = Duration(window.ms - inner)
        segments.append(
            _Segment(Duration(inner), length, _tiling_step(length, step_of[window], fine))
        )
        inner = window.ms
    index = {segment.offset.ms + segment.length.ms: i for i, segment in enumerate(segments)}
    return segments, [index[w.ms] for w in windows]


def _tiling_step(length: Duration, step: Duration, fine: Duration) -> Duration:
    """The window's sampling interval if it divides the segment, else the longest multiple
    of the fine step below it that does (a segment is never sampled coarser than its
    window). The fine step itself always does: `resolution_for` makes every window a
    multiple of it, so their differences are too."""
    k = step.ms // fine.ms
    while length.ms % (k * fine.ms):
        k -= 1
    return Duration(k * fine.ms)


def _instants_with_data(
    backend: Any, slos: Sequence[SLO], segments: Sequence[_Segment], fine: Duration, at: float
) -> np.ndarray:
    """float64[S, J]: instants with data per SLO and segment (NaN = failed)."""
    totals = [total_rate(slo.sli, fine) for slo in slos]
    base = plan_queries(list(zip(totals, totals, strict=True)), group_size=backend.batch_size)
    plan = _per_window(base, [_wrapper(segment) for segment in segments])
    counts = np.full((len(plan.atoms), 1), np.nan)
    outcome = FetchOutcome()
    times = np.array([float(at)])
    backend._refresh_auth()

    def run(batch: list[Part]) -> None:
        if outcome.fatal is not None:
            outcome.fail(batch, outcome.fatal)
            return
        backend._run_batch(plan, batch, times, 0, 1, None, counts, outcome)

    with ThreadPoolExecutor(max_workers=max(1, backend.concurrency)) as pool:
        list(pool.map(run, longest_first(backend._batches(list(plan.parts), 1))))
    failed = np.zeros(len(plan.atoms), dtype=bool)
    failed[list(outcome.errors)] = True
    if outcome.unreachable and outcome.succeeded == 0:
        failed[:] = True
    # No series back = no instant had data: 0, unless the atom's query failed.
    per_atom = np.where(failed, np.nan, np.nan_to_num(counts[:, 0], nan=0.0))
    n_atoms, terms = len(base.atoms), base.total
    out = np.full((len(slos), len(segments)), np.inf)
    for j in range(len(segments)):
        column = out[:, j]
        # The sparsest atom of each total (np.minimum keeps NaN: a failed atom fails it).
        with np.errstate(invalid="ignore"):
            np.minimum.at(column, terms.rows, per_atom[j * n_atoms + terms.atoms])
    out[np.isinf(out)] = np.nan  # a total without atoms: nothing to judge
    return out


def _wrapper(segment: _Segment) -> Callable[[str], str]:
    subquery = f"[{Duration(segment.length.ms - 1)}:{segment.step}]"
    if segment.offset.ms:
        subquery += f" offset {segment.offset}"
    return lambda expr: f"count_over_time((\n{expr}\n){subquery})"


def _per_window(base: QueryPlan, wrappers: Sequence[Callable[[str], str]]) -> QueryPlan:
    """`base` copied once per segment with every part and atom wrapped in its subquery:
    segment j's copy of atom a is atom `j × len(base.atoms) + a`."""
    n = len(base.atoms)
    atoms = tuple(wrap(atom) for wrap in wrappers for atom in base.atoms)
    parts = tuple(
        part.moved(wrap(part.expr), w * n) for w, wrap in enumerate(wrappers) for part in base.parts
    )
    return QueryPlan(atoms, parts, base.bad, base.total)
