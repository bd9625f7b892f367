"""Every SLO evaluated at every replayed step, vectorized, kept compact for the replay loop.

`evaluate` runs `engine.evaluation.series.iter_series` (the daemon's window sums, error ratios,
budgets, multiwindow rules and low-traffic guard, over the time axis) for chunks of SLOs —
in forked worker processes when asked, the SLOs being independent — and keeps only what the
replay needs: alert intervals, no-data runs, report traces, and the (SLO, step) entries where
some rule fired, which `Evaluated.evaluation` packages as the daemon's `SLOEvaluation`.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.backtest.plan import Progress
from engine.backtest.result import AlertInterval, AlertSeverity
from engine.backtest.traces import SLOTrace, slo_traces
from engine.evaluation.budget import burn_rate, error_ratio
from engine.evaluation.burn import (
    STATUS_CODE,
    STATUSES,
    alert_signal,
    plan_evaluation,
    window_values,
)
from engine.evaluation.decisions import evaluation_windows, held_reason
from engine.evaluation.policy import policy_for
from engine.evaluation.result import SLOEvaluation, WindowValue
from engine.evaluation.series import SeriesEvaluation, chunk_size, iter_series
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

_NO_DATA_CODES = (STATUS_CODE["no_data"], STATUS_CODE["error"])


@dataclass
class Fired:
    """Every (SLO, step) where some rule fired, with what packaging an evaluation needs."""

    rows: np.ndarray  # int64[n], row in `slos`
    steps: np.ndarray  # int64[n], position in the replayed range
    bad: np.ndarray  # float64[n, W]
    total: np.ndarray  # float64[n, W]
    remaining: np.ndarray  # float64[n]
    to_exhaustion: np.ndarray  # float64[n]
    fire: np.ndarray  # bool[n, R]
    held: np.ndarray  # bool[n, R]
    p_value: np.ndarray  # float64[n, R]
    status: np.ndarray  # int8[n]
    recent_bad: np.ndarray  # float64[n]: events over the recent window (NaN = no data)
    recent_total: np.ndarray  # float64[n]


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of a 1-D bool array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


class Evaluated:
    """Evaluation results of all SLOs over the replayed range, kept compact."""

    def __init__(self, slos: Sequence[SLO], rates: StepRates, first: int, want_traces: bool):
        self.slos = list(slos)
        self.first = first
        self.times = rates.times[first:]
        self.windows: tuple[Duration, ...] = ()
        self.members = np.zeros((len(slos), 0), dtype=bool)
        self.rules: list[tuple | None] = [None] * len(slos)
        self.intervals: list[AlertInterval] = []
        # Per SLO: [start, stop) step ranges with status no_data or error.
        self.unknown: list[list[tuple[int, int]]] = [[] for _ in slos]
        self.traces: dict[str, SLOTrace] = {}
        self._fired: list[Fired] = []
        self._want_traces = want_traces
        self._block: _Block | None = None
        self.error_budget = np.array([float(s.error_budget) for s in slos])
        self.recent_window: Duration | None = None
        self.member_index: list[list[int]] = []
        self.window_index: dict[Duration, int] = {}

    def add(self, rows: slice, ev: SeriesEvaluation) -> None:
        self.recent_window = ev.recent_window
        if not self.windows:
            self._set_windows(ev.windows)
        part = self.slos[rows]
        for k, s in enumerate(range(rows.start, rows.stop)):
            self.rules[s] = ev.rules[k]
        fire = ev.fire
        held = ev.held
        n_rules = fire.shape[1]
        is_page = np.array(
            [
                [r < len(ev.rules[k]) and ev.rules[k][r].severity == "page" for r in range(n_rules)]
                for k in range(len(part))
            ],
            dtype=bool,
        ).reshape(len(part), n_rules)
        active = np.array(
            [[r < len(ev.rules[k]) for r in range(n_rules)] for k in range(len(part))], dtype=bool
        ).reshape(len(part), n_rules)
        fire = fire & active[:, :, None]
        held = held & fire
        firing = fire & ~held
        status = ev.status
        for k, slo in enumerate(part):
            for severity, mask in (("page", is_page[k]), ("ticket", ~is_page[k] & active[k])):
                if not mask.any():
                    continue
                on = firing[k, mask].any(axis=0)
                kept = fire[k, mask].any(axis=0) & ~on
                for a, b in runs(on):
                    self.intervals.append(self._interval(slo.id, severity, a, b, None))
                for a, b in runs(kept):
                    self.intervals.append(self._interval(slo.id, severity, a, b, "low_traffic"))
            unknown = np.isin(status[k], _NO_DATA_CODES)
            self.unknown[rows.start + k] = runs(unknown)
        self._add_fired(rows, ev, fire, held)
        if self._want_traces:
            self.traces.update(slo_traces(part, ev, self.times))

    def _set_windows(self, windows: tuple[Duration, ...]) -> None:
        self.windows = windows
        self.members = plan_evaluation(self.slos, windows).members
        self.member_index = [np.flatnonzero(row).tolist() for row in self.members]
        self.window_index = {w: j for j, w in enumerate(windows)}

    def _add_fired(
        self, rows: slice, ev: SeriesEvaluation, fire: np.ndarray, held: np.ndarray
    ) -> None:
        any_fire = fire.any(axis=1)
        ks, ts = np.nonzero(any_fire)
        if ks.size:
            self._fired.append(
                Fired(
                    rows=ks + rows.start,
                    steps=ts,
                    bad=ev.bad[ks, :, ts],
                    total=ev.total[ks, :, ts],
                    remaining=ev.budget_remaining[ks, ts],
                    to_exhaustion=ev.time_to_exhaustion[ks, ts],
                    fire=fire[ks, :, ts],
                    held=held[ks, :, ts],
                    p_value=ev.p_value[ks, :, ts],
                    status=ev.status[ks, ts],
                    recent_bad=_at(ev.recent_bad, ks, ts),
                    recent_total=_at(ev.recent_total, ks, ts),
                )
            )

    def merge(self, part: Evaluated) -> None:
        """Take over what another `Evaluated` computed for its rows."""
        self.recent_window = self.recent_window or part.recent_window
        if not self.windows and part.windows:
            self._set_windows(part.windows)
        for s, rules in enumerate(part.rules):
            if rules is not None:
                self.rules[s] = rules
        for s, ranges in enumerate(part.unknown):
            if ranges:
                self.unknown[s] = ranges
        self.intervals.extend(part.intervals)
        self._fired.extend(part._fired)
        self.traces.update(part.traces)

    def _interval(
        self, slo_id: str, severity: AlertSeverity, a: int, b: int, held: str | None
    ) -> AlertInterval:
        end = float(self.times[b]) if b < self.times.size else None
        return AlertInterval(slo_id, severity, float(self.times[a]), end, held)  # type: ignore[arg-type]

    def fired(self) -> Fired | None:
        if not self._fired:
            return None
        parts = self._fired
        joined = Fired(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in Fired.__dataclass_fields__
            )
        )
        order = np.argsort(joined.steps, kind="stable")
        return Fired(*(getattr(joined, name)[order] for name in Fired.__dataclass_fields__))

    def _lists(self, fired: Fired, i: int) -> _Block:
        """Python lists (None for NaN) for the fired entries around `i`, converted a block
        at a time with the same vectorized functions the daemon uses for a cycle."""
        block = self._block
        if block is None or block.fired is not fired or not block.lo <= i < block.hi:
            lo, hi = i, min(i + _BLOCK, fired.steps.size)
            rows = fired.rows[lo:hi]
            bad, total = fired.bad[lo:hi], fired.total[lo:hi]
            ratio = error_ratio(bad, total)
            burn = burn_rate(ratio, self.error_budget[rows][:, None])
            block = _Block(
                fired,
                lo,
                hi,
                *(_none_for_nan(x) for x in (bad, total, ratio, burn)),
                _none_for_nan(fired.remaining[lo:hi]),
                _none_for_nan(fired.to_exhaustion[lo:hi]),
                window_values(
                    fired.recent_bad[lo:hi], fired.recent_total[lo:hi], self.error_budget[rows]
                ),
            )
            self._block = block
        return block

    def evaluation(self, fired: Fired, i: int, now: float) -> SLOEvaluation:
        """The `SLOEvaluation` the daemon would have produced (same packaging as
        `engine.evaluation.burn.evaluate_window_events`, from the same numbers)."""
        s = int(fired.rows[i])
        slo = self.slos[s]
        block = self._lists(fired, i)
        k = i - block.lo
        bad, total, ratio, burn = block.bad[k], block.total[k], block.ratio[k], block.burn[k]
        windows = {
            self.windows[j]: WindowValue(bad[j], total[j], ratio[j], burn[j])
            for j in self.member_index[s]
        }
        signals = []
        for r, rule in enumerate(self.rules[s]):
            if not fired.fire[i, r]:
                continue
            held = bool(fired.held[i, r])
            reason = None
            if held:
                j = self.window_index[rule.long_window]
                reason = held_reason(
                    float(fired.bad[i, j]),
                    float(fired.total[i, j]),
                    rule.long_window,
                    float(fired.p_value[i, r]),
                    slo.alerting.low_traffic,
                )
            signals.append(alert_signal(rule, held, reason))
        return SLOEvaluation(
            slo=slo,
            evaluated_at=now,
            status=STATUSES[int(fired.status[i])],
            windows=windows,
            error_budget_remaining=block.remaining[k],
            time_to_exhaustion=block.to_exhaustion[k],
            alerts=tuple(signals),
            recent_window=self.recent_window,
            recent=block.recent[k],
        )


# Fired entries converted to Python lists at a time (bounded memory, vectorized cost).
_BLOCK = 4096


@dataclass
class _Block:
    fired: Fired
    lo: int
    hi: int
    bad: list
    total: list
    ratio: list
    burn: list
    remaining: list
    to_exhaustion: list
    recent: list[WindowValue]


def _at(values: np.ndarray | None, ks: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return np.full(ks.size, np.nan) if values is None else values[ks, ts]


def _none_for_nan(values: np.ndarray) -> list:
    return np.where(np.isnan(values), None, values).tolist()


# ---------------------------------------------------------------------------- parallel

# Set just before forking workers: they read the history from the parent's memory
# (copy-on-write) instead of receiving gigabytes through a pipe.
_SHARED: tuple | None = None
# Groups per worker, so the progress bar moves and uneven groups even out.
_GROUPS_PER_WORKER = 4


def _evaluate_rows(
    slos: list[SLO],
    rates: StepRates,
    first: int,
    traces: bool,
    windows: tuple[Duration, ...],
    lo: int,
    hi: int,
) -> Evaluated:
    part = Evaluated(slos, rates, first, traces)
    sub = StepRates(
        step=rates.step,
        times=rates.times,
        bad=rates.bad[lo:hi],
        total=rates.total[lo:hi],
        errors={s.id: rates.errors[s.id] for s in slos[lo:hi] if s.id in rates.errors},
    )
    for rows, ev in iter_series(slos[lo:hi], sub, windows=windows, from_step=first):
        part.add(slice(rows.start + lo, rows.stop + lo), ev)
    return part


def _evaluate_group(bounds: tuple[int, int]) -> Evaluated:
    assert _SHARED is not None
    part = _evaluate_rows(*_SHARED, *bounds)
    part.slos = []  # the parent has them; do not pickle them back
    return part


def evaluate(
    slos: list[SLO],
    rates: StepRates,
    first: int,
    traces: bool,
    workers: int,
    progress: Progress,
) -> Evaluated:
    """All `slos` over the replayed steps `rates.times[first:]`, in `workers` processes."""
    global _SHARED
    windows = evaluation_windows([policy_for(s) for s in slos]) if slos else ()
    evaluated = Evaluated(slos, rates, first, traces)
    n = len(slos)
    progress("evaluate", 0, n)
    if n == 0:
        return evaluated
    if workers <= 1 or n < 2 * workers or "fork" not in mp.get_all_start_methods():
        size = chunk_size(len(windows), rates.times.size)
        for lo in range(0, n, size):
            evaluated.merge(
                _evaluate_rows(slos, rates, first, traces, windows, lo, min(lo + size, n))
            )
            progress("evaluate", min(lo + size, n), n)
        return evaluated
    groups = workers * _GROUPS_PER_WORKER
    edges = np.linspace(0, n, groups + 1).round().astype(int)
    bounds = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    _SHARED = (slos, rates, first, traces, windows)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            done = 0
            for part in pool.imap_unordered(_evaluate_group, bounds):
                evaluated.merge(part)
                done += sum(1 for rules in part.rules if rules is not None)
                progress("evaluate", done, n)
    finally:
        _SHARED = None
    return evaluated
