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

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from engine.evaluation.instant import WindowCounts
from engine.evaluation.source import SourceUnavailable
from engine.source.outcome import FetchOutcome
from engine.source.query_plan import Part, QueryPlan, Terms, plan_queries
from engine.source.window_tiles import Tiles, tile
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bad_rate, total_rate

if TYPE_CHECKING:
    from engine.source.prometheus import PrometheusSource

# A range no SLI writes: the plan is built at it, then copied per window (`window_plan`).
_SENTINEL = Duration(1_234_567_891)


def counted_window(slo: SLO, window: Duration) -> Duration:
    """The range the SLI's queries use for `window` (availability: 1 ms shorter, see the
    module docstring)."""
    if slo.sli.availability is not None and window.ms > 1:
        return Duration(window.ms - 1)
    return window


def _direct_plan(
    slos: Sequence[SLO], windows: tuple[Duration, ...], group_size: int
) -> tuple[QueryPlan, np.ndarray]:
    pairs, seconds = [], np.empty(len(slos) * len(windows))
    for s, slo in enumerate(slos):
        for w, window in enumerate(windows):
            ranged = counted_window(slo, window)
            pairs.append((bad_rate(slo.sli, ranged), total_rate(slo.sli, ranged)))
            seconds[s * len(windows) + w] = ranged.seconds
    return plan_queries(pairs, group_size=group_size, derive=True), seconds


def window_plan(
    slos: Sequence[SLO], windows: tuple[Duration, ...], group_size: int
) -> tuple[QueryPlan, np.ndarray, Tiles | None]:
    """The query plan of every (SLO, window) pair — row `s × W + w`, window w's copy of
    atom a at `w × A + a` — the seconds that turn each row's combined value into a count,
    and, when the long windows are read as tiles (engine.source.window_tiles), how to turn
    the answers back into windows (None: each copy reads its whole window).

    Parsing 6,000 expressions costs more than the queries' round trips, and the pairs of
    one SLO differ only in their range: the SLOs are planned once at a sentinel window and
    the plan is copied per window with the range rewritten. Where the sentinel would show
    up anywhere but a range (a `{{window}}` used as an offset, say), every pair is planned.
    """
    n_windows = len(windows)
    template = [counted_window(slo, _SENTINEL) for slo in slos]
    pairs = [
        (bad_rate(slo.sli, w), total_rate(slo.sli, w))
        for slo, w in zip(slos, template, strict=True)
    ]
    base = plan_queries(pairs, group_size=group_size, derive=True)
    available = np.array([w != _SENTINEL for w in template])  # availability: 1 ms shorter
    copies = [w * len(base.atoms) for w in range(n_windows)]
    tiles = tile(base, windows, _tile_renamer)
    if tiles is not None:  # the same layout, long windows' copies read as tiles
        atoms, parts = list(tiles.plan.atoms), list(tiles.plan.parts)
    else:
        renames = [_renamer(window) for window in windows]
        atoms = [rename(a) for rename in renames for a in base.atoms]
        # A part's copies side by side: a batch failing on one SLO is bisected to it quickly.
        parts = [
            p.moved(rename(p.expr), offset)
            for p in base.parts
            for rename, offset in zip(renames, copies, strict=True)
        ]
    leftovers = (str(_SENTINEL), str(Duration(_SENTINEL.ms - 1)))
    if any(text in atom for atom in atoms for text in leftovers):
        return (*_direct_plan(slos, windows, group_size), None)

    def terms(side: Terms) -> Terms:
        return Terms(
            np.concatenate([side.rows * n_windows + w for w in range(n_windows)]),
            np.concatenate([side.atoms + offset for offset in copies]),
            np.tile(side.coefs, n_windows),
        )

    # Rates × W is a count; availability's coefficients already divide by the sentinel.
    seconds = np.array([[w.seconds for w in windows]] * len(slos))
    seconds[available] = Duration(_SENTINEL.ms - 1).seconds
    plan = QueryPlan(tuple(atoms), tuple(parts), terms(base.bad), terms(base.total))
    return plan, seconds.ravel(), tiles


def _renamer(window: Duration) -> Callable[[str], str]:
    pairs = [
        (f"[{_SENTINEL}", f"[{window}"),
        (f"[{Duration(_SENTINEL.ms - 1)}", f"[{Duration(max(1, window.ms - 1))}"),
    ]

    def rename(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old + "]", new + "]").replace(old + ":", new + ":")
        return text

    return rename


def _tile_renamer(length: Duration, offset: Duration | None) -> Callable[[str], str]:
    """The sentinel range as a tile: `[length] offset <offset>` (parsed atoms only: their
    range is the last thing inside the function call)."""
    after = f" offset {offset}" if offset is not None else ""
    pairs = [
        (f"[{_SENTINEL}]", f"[{length}]{after}"),
        (f"[{Duration(_SENTINEL.ms - 1)}]", f"[{Duration(max(1, length.ms - 1))}]{after}"),
    ]

    def rename(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    return rename


_RANGE = re.compile(r"\[(\d[0-9smhdwy]*)[\]:]")


def longest_first(batches: list[list[Part]]) -> list[list[Part]]:
    """Batches in the order of their longest range, longest first: Prometheus' cost of a
    whole-window query follows the samples in its range (a 30d window reads all of the
    history, a 5m one a few samples), so the worker threads start the long queries at once
    and the short ones fill in behind them, instead of a 30d query starting last."""

    def longest(batch: list[Part]) -> int:
        ranges = (m.group(1) for part in batch for m in _RANGE.finditer(part.expr))
        return max((_ms(r) for r in ranges), default=0)

    return sorted(batches, key=longest, reverse=True)


def _ms(text: str) -> int:
    try:
        return Duration.parse(text).ms
    except ValueError:  # bracketed text in a label value, not a range: no weight
        return 0


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
    plan, seconds, tiles = window_plan(slos, windows, source.batch_size)
    rates = np.full((len(plan.atoms), 1), np.nan)
    outcome = FetchOutcome()
    times = np.array([float(at)])

    def run(batch: list[Part]) -> None:
        if outcome.fatal is not None:
            outcome.fail(batch, outcome.fatal)
            return
        source._run_batch(plan, batch, times, 0, 1, None, rates, outcome)

    batches = longest_first(source._batches(list(plan.parts), 1))
    with ThreadPoolExecutor(max_workers=max(1, source.concurrency)) as pool:
        list(pool.map(run, batches))
    if outcome.unreachable and outcome.succeeded == 0:
        raise SourceUnavailable(outcome.fatal or outcome.first_unreachable)
    failed = outcome.errors
    if tiles is not None:
        rates = tiles.window_rates(rates, windows)
        failed = tiles.window_errors(failed, n_windows)

    rows = n_slos * n_windows
    bad = (plan.bad.combine(rates, rows)[:, 0] * seconds).reshape(n_slos, n_windows)
    total = (plan.total.combine(rates, rows)[:, 0] * seconds).reshape(n_slos, n_windows)
    errors: dict[str, str] = {}
    for atom, message in sorted(failed.items()):
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
