"""Window coverage for the one-shot path, from one instant subquery per window and batch.

Whole-window counts (`rate(x[W]) × W`) cannot tell a full window from a part-filled one, and
filling the daemon's cache to find out would cost the one-shot path what it exists to avoid
(engine.evaluation.instant). A PromQL subquery asks the question directly: for a window W
sampled every `s`,

    count_over_time((<total rate over one fine step>)[W − 1ms : s])

is the number of instants in (at − W, at] at which the SLI's total had data over the fine
step before them — the daemon's "step with data" (engine.evaluation.coverage) — and
÷ (W / s) the window's coverage. Prometheus evaluates a one-step rate at W / s instants
(hundreds of short ranges, not W of samples) and returns one number per series. The range is
1 ms short of W so the instant exactly at `at − W` (a step of the window before) is left out
in Prometheus 2 (closed ranges) as in 3 (left-open).

The totals go through the query planner (engine.source.query_plan) as for any fetch: atoms
differing in one label value are one `sum by (label)` selector, wrapped once per window —
`count_over_time` keeps the grouping label, so each series still answers for its atom —
batched with `or`, a rejected batch bisected down to its SLO (not judged: NaN). A total
made of several atoms (a latency SLI's count minus its buckets, say) counts the instants of
its sparsest atom: PromQL's `a − b` has data where both do, so that is exact when the atoms'
series are scraped together, and an upper bound otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """float64[S, W]: the share of each window's `samples[w]`-spaced instants at which the
    SLO's total had data over the `fine` step before them; 0 when none did; NaN where it
    could not be asked (no Prometheus behind `source`, a rejected query, a backend down)."""
    out = np.full((len(slos), len(windows)), np.nan)
    backends: dict[int, tuple[Any, list[int]]] = {}
    for row, slo in enumerate(slos):
        query = instant_query_for(source, slo)
        backend = getattr(query, "__self__", None)
        if backend is not None and hasattr(backend, "_run_batch"):
            backends.setdefault(id(backend), (backend, []))[1].append(row)
    for backend, rows in backends.values():
        counts = _instants_with_data(backend, [slos[r] for r in rows], windows, samples, fine, at)
        points = np.array([w.ms // s.ms for w, s in zip(windows, samples, strict=True)])
        out[rows] = np.minimum(counts / points, 1.0)
    return out


def _instants_with_data(
    backend: Any,
    slos: Sequence[SLO],
    windows: Sequence[Duration],
    samples: Sequence[Duration],
    fine: Duration,
    at: float,
) -> np.ndarray:
    """float64[S, W]: instants with data per SLO and window (NaN = failed)."""
    totals = [total_rate(slo.sli, fine) for slo in slos]
    base = plan_queries(list(zip(totals, totals, strict=True)), group_size=backend.batch_size)
    plan = _per_window(base, [_wrapper(w, s) for w, s in zip(windows, samples, strict=True)])
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
    out = np.full((len(slos), len(windows)), np.inf)
    for w in range(len(windows)):
        column = out[:, w]
        # The sparsest atom of each total (np.minimum keeps NaN: a failed atom fails it).
        with np.errstate(invalid="ignore"):
            np.minimum.at(column, terms.rows, per_atom[w * n_atoms + terms.atoms])
    out[np.isinf(out)] = np.nan  # a total without atoms: nothing to judge
    return out


def _wrapper(window: Duration, sample: Duration) -> Callable[[str], str]:
    subquery = f"[{Duration(window.ms - 1)}:{sample}]"
    return lambda expr: f"count_over_time((\n{expr}\n){subquery})"


def _per_window(base: QueryPlan, wrappers: Sequence[Callable[[str], str]]) -> QueryPlan:
    """`base` copied once per window with every part and atom wrapped in its subquery:
    window w's copy of atom a is atom `w × len(base.atoms) + a`."""
    n = len(base.atoms)
    atoms = tuple(wrap(atom) for wrap in wrappers for atom in base.atoms)
    parts = tuple(
        part.moved(wrap(part.expr), w * n) for w, wrap in enumerate(wrappers) for part in base.parts
    )
    return QueryPlan(atoms, parts, base.bad, base.total)
