"""Whole-window event counts from Prometheus at one instant: the one-shot `evaluate` path.

`PrometheusSource.fetch` asks for per-step rates over a grid (the daemon's cache). A run that
evaluates once needs only each window's total, which Prometheus computes in one instant
query: for every SLO and window W, the SLI's rate expressions over `[W]` evaluated at `at`,
times W — `rate(x[W]) × W` is `increase(x[W])` by definition. The query planner
(engine.source.query_plan) treats each (SLO, window) pair as one row, so atoms differing
only in one label value still become one `sum by (label) (rate(metric{label=~"a|b|…"}[W]))`
per window (windows never share a group: the range is part of the atom), parts are tagged
and joined with `or` exactly as for range queries, and a batch failing with a PromQL error
is bisected down to the SLOs it belongs to. Batches run on the source's worker threads.

Availability SLIs count samples; as in `fetch`, their range is one millisecond shorter than
the window so a sample exactly at `at − W` belongs to the previous window, and the counts
come out per window exactly as the cache's per-step partition counts them.

A derived SLI (bad = total − good) whose good series is missing in a window with a total has
no data in that window; a classic-histogram latency SLI missing its bucket in the shortest
window with traffic is an error naming the bounds — the same rules and messages as `fetch`
(PrometheusSource._missing_good), applied with windows in place of steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from engine.evaluation.instant import WindowCounts
from engine.evaluation.source import SourceUnavailable
from engine.source.outcome import FetchOutcome
from engine.source.query_plan import Part, plan_queries
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bad_rate, total_rate

if TYPE_CHECKING:
    from engine.source.prometheus import PrometheusSource


def counted_window(slo: SLO, window: Duration) -> Duration:
    """The range the SLI's queries use for `window` (availability: 1 ms shorter, see the
    module docstring)."""
    if slo.sli.availability is not None and window.ms > 1:
        return Duration(window.ms - 1)
    return window


def window_counts(
    source: PrometheusSource, slos: Sequence[SLO], windows: Sequence[Duration], at: float
) -> WindowCounts:
    """Events in (at − W, at] for every SLO (rows) and window W (columns)."""
    windows = tuple(windows)
    n_slos, n_windows = len(slos), len(windows)
    if not slos or not windows:
        empty = np.full((n_slos, n_windows), np.nan)
        return WindowCounts(at=at, windows=windows, bad=empty, total=empty.copy())

    source._refresh_auth()
    pairs, seconds = [], np.empty(n_slos * n_windows)
    for s, slo in enumerate(slos):
        for w, window in enumerate(windows):
            ranged = counted_window(slo, window)
            pairs.append((bad_rate(slo.sli, ranged), total_rate(slo.sli, ranged)))
            seconds[s * n_windows + w] = ranged.seconds
    plan = plan_queries(pairs, group_size=source.batch_size)
    rates = np.full((len(plan.atoms), 1), np.nan)
    outcome = FetchOutcome()
    times = np.array([float(at)])

    def run(batch: list[Part]) -> None:
        if outcome.fatal is not None:
            outcome.fail(batch, outcome.fatal)
            return
        source._run_batch(plan, batch, times, 0, 1, None, rates, outcome)

    batches = source._batches(list(plan.parts), 1)
    with ThreadPoolExecutor(max_workers=max(1, source.concurrency)) as pool:
        list(pool.map(run, batches))
    if outcome.unreachable and outcome.succeeded == 0:
        raise SourceUnavailable(outcome.fatal or outcome.first_unreachable)

    rows = n_slos * n_windows
    bad = (plan.bad.combine(rates, rows)[:, 0] * seconds).reshape(n_slos, n_windows)
    total = (plan.total.combine(rates, rows)[:, 0] * seconds).reshape(n_slos, n_windows)
    errors: dict[str, str] = {}
    for atom, message in sorted(outcome.errors.items()):
        for row in sorted(plan.rows_using({atom})):
            s = row // n_windows
            errors.setdefault(slos[s].id, message)
            bad[s, :] = np.nan
            total[s, :] = np.nan
    _missing_good(source, slos, windows, at, bad, total, errors)
    return WindowCounts(at=at, windows=windows, bad=bad, total=total, errors=errors)


def _missing_good(
    source: PrometheusSource,
    slos: Sequence[SLO],
    windows: tuple[Duration, ...],
    at: float,
    bad: np.ndarray,
    total: np.ndarray,
    errors: dict[str, str],
) -> None:
    """`fetch`'s rule for a missing good series, over windows: the source's own check reads
    its columns as steps, oldest first, and judges the newest one with traffic — here the
    windows longest first, so that is the shortest window with traffic. In place."""
    order = sorted(range(len(windows)), key=lambda w: windows[w], reverse=True)
    longest_first_bad, longest_first_total = bad[:, order], total[:, order]
    source._missing_good(
        slos, np.full(len(order), float(at)), longest_first_bad, longest_first_total, errors
    )
    bad[:, order], total[:, order] = longest_first_bad, longest_first_total
