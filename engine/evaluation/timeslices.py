"""Time-slice SLOs counted in slices: an event source whose "events" are judged slices.

`with_timeslices(source)` wraps any event source. For a time-slice SLO
(engine.spec.timeslices) a request for steps of any length is answered by asking the inner
source for the SLO's good/total increases at the slice resolution, judging each slice, and
counting per step:

    bad  = slices ending in the step whose good/total < slice_target    (bad slices)
    total = slices ending in the step with at least one event             (judged slices)

Slices are epoch-aligned and each is counted in the one step its end falls in, so the
counts are additive: the cache's windows, the budget over the period, every burn rate
(bad-slice fraction / (1 − objective)), the multiwindow alerts, incidents and backtest all
follow from the same core code as for events — and cannot disagree with each other.

Missing data stays missing: a slice without any series is no data (a step with only such
slices is no data); a slice whose total is 0 had no events and is not judged (neither good
nor bad, the usual choice — see docs/budgets.md). A step shorter than the slice in which no
slice ends (a 1m step of a 5m slice) counts 0 of 0, present when the latest slice ended
before it has data, so the freshest windows see the freshest judged slice, never a gap.
Without time-slice SLOs in a request the wrapper is a plain pass-through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_SLICES_PER_REQUEST = 11_000
# A slice exactly at its target is good: rates come back as floats, so the comparison
# allows for their last bits (99 of 100 good at 99 % is good, not bad by 1e-17).
RELATIVE_TOLERANCE = 1e-9


def judge_slices(
    bad: np.ndarray, total: np.ndarray, target: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-slice verdicts from bad and total event counts [S, N] (NaN = no data).

    Returns (bad_slice, judged, present) boolean arrays [S, N]: a slice is judged when it had
    events; bad when judged and its good/total ratio is below `target` (a ratio)."""
    present = ~np.isnan(total)
    judged = present & (np.nan_to_num(total, nan=0.0) > 0)
    # A missing bad series with a known total is 0 bad events (engine.evaluation.source).
    bad_events = np.where(present, np.nan_to_num(bad, nan=0.0), 0.0)
    allowed = (1.0 - target) * np.where(judged, total, 0.0)
    bad_slice = judged & (bad_events > allowed + RELATIVE_TOLERANCE * np.abs(allowed) + 1e-12)
    return bad_slice, judged, present


def slices_per_step(
    slice_ends: np.ndarray,
    verdicts: tuple[np.ndarray, np.ndarray, np.ndarray],
    step_ends: np.ndarray,
    step: int,
    slice_s: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Bad and judged slice counts per step [S, T] (NaN where the step has no data).

    `slice_ends` (int seconds, ascending, every slice) must cover (step_ends[0] − step −
    slice, step_ends[-1]]; `step_ends` are the steps' end times (int seconds)."""
    bad_slice, judged, present = verdicts
    n, t = bad_slice.shape[0], step_ends.size
    # The step whose interval (end − step, end] holds each slice end; −1/T: outside.
    index = np.searchsorted(step_ends, slice_ends, side="left")
    inside = (index < t) & (slice_ends > step_ends[np.minimum(index, t - 1)] - step)
    flat = (np.arange(n)[:, None] * t + index[None, :])[:, inside].ravel()

    def per_step(values: np.ndarray) -> np.ndarray:
        weights = values[:, inside].astype(np.float64).ravel()
        return np.bincount(flat, weights=weights, minlength=n * t).reshape(n, t)

    bad = per_step(bad_slice)
    judged_n = per_step(judged)
    has_data = per_step(present) > 0
    # A step in which no slice ends: the latest slice ended by then says whether data flows.
    latest = np.searchsorted(slice_ends, (step_ends // slice_s) * slice_s, side="left")
    known = latest < slice_ends.size
    latest_present = np.zeros((n, t), dtype=bool)
    latest_present[:, known] = present[:, latest[known]]
    has_data |= (per_step(np.ones_like(present)) == 0) & latest_present
    return np.where(has_data, bad, np.nan), np.where(has_data, judged_n, np.nan)


class TimesliceSource:
    """An event source (engine.evaluation.source.EventSource) answering for time-slice SLOs
    in slices (module docstring)."""

    def __init__(self, inner: Any, max_slices: int = MAX_SLICES_PER_REQUEST) -> None:
        self.inner = inner
        self._max_slices = max_slices

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        sliced = [i for i, s in enumerate(slos) if s.timeslices is not None]
        if not sliced:
            return self.inner.fetch(slos, step, start, end)
        step_s = step.seconds
        step_ends = np.rint(np.arange(start, end + step_s / 2, step_s)).astype(np.int64)
        bad = np.full((len(slos), step_ends.size), np.nan)
        total = np.full_like(bad, np.nan)
        errors: dict[str, str] = {}
        plain = [i for i in range(len(slos)) if i not in set(sliced)]
        if plain:
            rates = self.inner.fetch([slos[i] for i in plain], step, start, end)
            bad[plain], total[plain] = rates.bad, rates.total
            errors.update(rates.errors)
        by_shape: dict[tuple[int, float], list[int]] = {}
        for i in sliced:
            spec = slos[i].timeslices
            assert spec is not None
            by_shape.setdefault((spec.slice.ms // 1000, spec.target), []).append(i)
        for (slice_s, target), rows in by_shape.items():
            counts, failed = self._slice_counts(
                [slos[i] for i in rows], slice_s, target, step_ends, int(step_s)
            )
            # Per-second rates, as every source answers: the cache multiplies by the step.
            bad[rows], total[rows] = counts[0] / step_s, counts[1] / step_s
            errors.update(failed)
        return StepRates(
            step=step, times=step_ends.astype(np.float64), bad=bad, total=total, errors=errors
        )

    def _slice_counts(
        self, slos: list[SLO], slice_s: int, target: float, step_ends: np.ndarray, step: int
    ) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, str]]:
        first = ((int(step_ends[0]) - step) // slice_s) * slice_s
        last = (int(step_ends[-1]) // slice_s) * slice_s
        slice_ends = np.arange(first, last + 1, slice_s, dtype=np.int64)
        bad = np.full((len(slos), slice_ends.size), np.nan)
        total = np.full_like(bad, np.nan)
        errors: dict[str, str] = {}
        for lo in range(0, slice_ends.size, self._max_slices):
            part = slice_ends[lo : lo + self._max_slices]
            rates = self.inner.fetch(
                slos, Duration(slice_s * 1000), float(part[0]), float(part[-1])
            )
            times = np.rint(np.asarray(rates.times, dtype=np.float64)).astype(np.int64)
            columns = np.searchsorted(slice_ends, times)
            ok = (columns < slice_ends.size) & (
                slice_ends[np.minimum(columns, -1 + slice_ends.size)] == times
            )
            bad[:, columns[ok]] = rates.bad[:, ok] * slice_s
            total[:, columns[ok]] = rates.total[:, ok] * slice_s
            errors.update(rates.errors)
        verdicts = judge_slices(bad, total, target)
        return slices_per_step(slice_ends, verdicts, step_ends, step, slice_s), errors

    def __getattr__(self, name: str) -> Any:
        # Anything else a source offers (window_counts, close, labels, ...) is the inner one's.
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def with_timeslices(source: Any) -> Any:
    """`source` able to answer for time-slice SLOs (once: a wrapped source is returned as
    is; a composite wrapper gets the time-slice wrapper inside it)."""
    from engine.evaluation.composite import CompositeSource

    if isinstance(source, TimesliceSource):
        return source
    if isinstance(source, CompositeSource):
        source.inner = with_timeslices(source.inner)
        return source
    return TimesliceSource(source)


def has_timeslices(slos: Sequence[SLO]) -> bool:
    """Whether any SLO is counted in slices (the instant path cannot count them)."""
    return any(s.timeslices is not None for s in slos)
