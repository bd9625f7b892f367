"""An in-memory, multi-resolution cache of per-step event counts, refreshed incrementally.

Why: asking Prometheus for `increase(x[30d])` every cycle makes it read 30 days of samples
per SLO per cycle, and one query per SLO per window multiplies that by the window count. The
cache instead keeps per-step counts at a few resolutions (tiers) and, once warm, asks only
for the steps that appeared since the last cycle: a handful of points per SLO, batched, whose
cost does not depend on the window lengths. Windows are then composed in numpy.

Tiers (default; memory per SLO = Σ steps × (8 + 8 bytes of counts + 1 byte "has data")):

    step  retention   steps  why
    1m    6h + 1h       420  page windows (5m … 6h) exact to the minute
    5m    3d + 1h       876  ticket windows (1d, 3d) with a 5m-resolution oldest edge
    1h    period + 1h   721  the period (30d); extended automatically for longer periods

That is 2,017 steps = 34,289 bytes per SLO at a 30d period (limit: 64 KiB). The "+1h"
margins hold the newest steps of the next coarser tier until they are settled (see
`engine.evaluation.windows.plan_window`).

Grids are epoch-aligned: a tier with step s stores steps ending at multiples of s. The
evaluation instant is `at` floored to the finest step (WindowEvents.at); every window ends
exactly there. A window is composed from the finest tier for its newest part and coarser
tiers for older parts; when the window's start falls inside a coarse step, that step is
prorated (uniform traffic within one step assumed), so smooth traffic is reproduced to well
under 0.5 %.

Incremental fetches: each tier remembers, per SLO, the newest grid point it fetched
successfully. When a tier's grid advances, it asks for the new steps plus the last
`refetch_steps` already-fetched ones, because the newest step was fetched just as it ended
and may have missed late scrapes. A failed SLO keeps its old mark, so it is fetched again
next cycle and reported in `errors` until it succeeds; its previous good data is kept.
A cold start (or a jump longer than a tier's retention, or time going backwards) fills the
tier with range requests of at most `max_points` steps each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.evaluation.calendar import since_start_rows
from engine.evaluation.decisions import evaluation_windows
from engine.evaluation.maintenance import ring_kept_share
from engine.evaluation.policy import policy_for
from engine.evaluation.source import EventSource
from engine.evaluation.windows import (
    TierGrid,
    plan_window,
    recent_window_for,
    sum_planned,
)
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Prometheus refuses range queries returning more than 11,000 points per series.
MAX_POINTS_PER_REQUEST = 11_000


@dataclass(frozen=True)
class Tier:
    """Keep `retention` worth of steps of length `step`."""

    step: Duration
    retention: Duration


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(Duration.parse("1m"), Duration.parse("7h")),
    Tier(Duration.parse("5m"), Duration.parse("3d1h")),
    Tier(Duration.parse("1h"), Duration.parse("30d1h")),
)


@dataclass(frozen=True)
class WindowEvents:
    """Event counts over each window ending at `at`, for S SLOs × W windows.

    NaN = no data in the whole window. Rows of SLOs listed in `errors` failed this cycle.
    """

    at: float  # the evaluation instant: the requested time floored to the finest step
    windows: tuple[Duration, ...]
    bad: np.ndarray  # float64[S, W]
    total: np.ndarray  # float64[S, W]
    errors: dict[str, str]
    slo_ids: tuple[str, ...]
    # float64[S, W]: seconds of the window covered by steps with data (≤ window length).
    covered_seconds: np.ndarray | None = field(default=None, compare=False)
    # The freshest evidence (see engine.evaluation.windows.RECENT_WINDOW): bad and total events
    # over the newest `recent_window`, float64[S] each, NaN = no data. None = not computed.
    recent_window: Duration | None = None
    recent_bad: np.ndarray | None = field(default=None, compare=False)
    recent_total: np.ndarray | None = field(default=None, compare=False)

    def row(self, slo_id: str) -> int:
        return self.slo_ids.index(slo_id)


def _seconds(duration: Duration, what: str) -> int:
    if duration.ms % 1000:
        raise ValueError(f"{what} {duration} must be a whole number of seconds")
    return duration.ms // 1000


class _TierStore:
    """One tier: per-step counts for every SLO in a time-major ring (see `TierGrid`).

    Missing steps hold 0 with `present` False, so window sums are plain sums.
    """

    def __init__(self, step: int, length: int, n_slos: int) -> None:
        self.step = step
        self.length = length
        self.end: int | None = None
        self.bad = np.zeros((length, n_slos))
        self.total = np.zeros((length, n_slos))
        self.present = np.zeros((length, n_slos), dtype=bool)
        # Per SLO, the newest grid time fetched successfully; None = never.
        self.fetched_until: list[int | None] = [None] * n_slos

    @property
    def start_time(self) -> int:
        """The time the oldest stored step begins."""
        assert self.end is not None
        return self.end - self.length * self.step

    @property
    def oldest(self) -> int:
        """Grid time of the oldest stored step."""
        assert self.end is not None
        return self.end - (self.length - 1) * self.step

    def grid(self) -> TierGrid:
        assert self.end is not None
        return TierGrid(step=self.step, end=self.end, length=self.length)

    def slots(self, grid_times: np.ndarray) -> np.ndarray:
        return (grid_times // self.step) % self.length

    def _clear(self, slots: np.ndarray | slice) -> None:
        self.bad[slots] = 0.0
        self.total[slots] = 0.0
        self.present[slots] = False

    def advance(self, new_end: int) -> None:
        """Move the newest step to `new_end`; the ring forgets the steps that fall out."""
        if self.end is None or new_end < self.end or new_end - self.end >= self.length * self.step:
            self._clear(slice(None))
            self.fetched_until = [None] * len(self.fetched_until)
            self.end = new_end
            return
        if new_end > self.end:
            self._clear(self.slots(np.arange(self.end + self.step, new_end + 1, self.step)))
            self.end = new_end

    def reset(self) -> None:
        self.end = None
        self._clear(slice(None))
        self.fetched_until = [None] * len(self.fetched_until)

    def write(
        self,
        rows: np.ndarray,
        grid_times: np.ndarray,
        bad_rates: np.ndarray,
        total_rates: np.ndarray,
    ) -> None:
        """Store per-second rates [len(rows), len(grid_times)] as per-step counts.

        Same missing-data rules as `normalize_step_counts`: no total = no data; a missing bad
        with a known total is 0 bad events (a source never sends that for a missing *good*
        series: see `StepRates.bad`).
        """
        slots = self.slots(grid_times)
        every_slo = rows.size == self.bad.shape[1] and np.array_equal(rows, np.arange(rows.size))
        index: Any = slots if every_slo else np.ix_(slots, rows)
        total = total_rates.T * self.step
        present = ~np.isnan(total)
        self.present[index] = present
        self.total[index] = np.where(present, total, 0.0)
        self.bad[index] = np.where(present, np.nan_to_num(bad_rates.T * self.step, nan=0.0), 0.0)

    def reindex(self, keep: list[int | None]) -> None:
        """New column order: keep[i] is the old column of SLO i, None for a new SLO."""
        n = len(keep)
        old = np.array([k if k is not None else 0 for k in keep], dtype=np.int64)
        new = np.array([k is None for k in keep], dtype=bool)
        for name in ("bad", "total", "present"):
            values = getattr(self, name)[:, old] if n else getattr(self, name)[:, :0]
            values[:, new] = False if name == "present" else 0.0
            setattr(self, name, np.ascontiguousarray(values))
        self.fetched_until = [None if k is None else self.fetched_until[k] for k in keep]

    @property
    def nbytes(self) -> int:
        return self.bad.nbytes + self.total.nbytes + self.present.nbytes


class MultiResolutionCache:
    """Per-step counts for a set of SLOs at several resolutions, refreshed from a source.

    Not thread-safe: one evaluation loop owns it.
    """

    def __init__(
        self,
        source: EventSource,
        slos: Sequence[SLO],
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        *,
        refetch_steps: int = 2,
        max_points: int = MAX_POINTS_PER_REQUEST,
    ) -> None:
        if not tiers:
            raise ValueError("the cache needs at least one tier")
        if refetch_steps < 0 or max_points < 1:
            raise ValueError("refetch_steps must be ≥ 0 and max_points ≥ 1")
        self._source = source
        self._tier_specs = tuple(tiers)
        self._steps = [_seconds(t.step, "tier step") for t in tiers]
        for fine, coarse in zip(self._steps, self._steps[1:], strict=False):
            if coarse <= fine or coarse % fine:
                raise ValueError(
                    f"tier steps must grow and each must be a multiple of the previous one "
                    f"(got {fine}s then {coarse}s)"
                )
        self._refetch = refetch_steps
        self._max_points = max_points
        self._slos: list[SLO] = []
        self._stores: list[_TierStore] = []
        self._last_at: int | None = None
        self.windows: tuple[Duration, ...] = ()
        self.set_slos(slos)

    # --- configuration ----------------------------------------------------------------

    @property
    def slos(self) -> tuple[SLO, ...]:
        return tuple(self._slos)

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-step arrays of every tier."""
        return sum(store.nbytes for store in self._stores)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tier_specs

    @property
    def fine_step(self) -> Duration:
        """The finest tier's step: the evaluation grid (see engine.evaluation.resolution)."""
        return self._tier_specs[0].step

    @property
    def tier_lengths(self) -> tuple[int, ...]:
        return tuple(store.length for store in self._stores)

    def _lengths_for(self, windows: Sequence[Duration]) -> list[int]:
        lengths = []
        for spec, step in zip(self._tier_specs, self._steps, strict=True):
            lengths.append(max(1, math.ceil(_seconds(spec.retention, "tier retention") / step)))
        # The coarsest tier must hold the longest window plus the step its start falls in.
        longest = max((_seconds(w, "window") for w in windows), default=0)
        lengths[-1] = max(lengths[-1], math.ceil(longest / self._steps[-1]) + 1)
        for i in range(len(lengths) - 1):
            if lengths[i] * self._steps[i] < 2 * self._steps[i + 1]:
                raise ValueError(
                    f"tier {self._tier_specs[i].step} must keep at least two steps of the next "
                    f"tier ({Duration((2 * self._steps[i + 1]) * 1000)}) to hand over to it"
                )
        return lengths

    def set_slos(self, slos: Sequence[SLO]) -> None:
        """Change the SLO set (spec hot reload): new SLOs are filled, removed ones dropped."""
        ids = [s.id for s in slos]
        if len(set(ids)) != len(ids):
            raise ValueError("SLO ids must be unique")
        windows = evaluation_windows([policy_for(s) for s in slos])
        lengths = self._lengths_for(windows)
        old_rows = {s.id: i for i, s in enumerate(self._slos)}
        keep = [old_rows.get(i) for i in ids]
        stores = []
        for index, (step, length) in enumerate(zip(self._steps, lengths, strict=True)):
            store = self._stores[index] if index < len(self._stores) else None
            if store is None or store.length != length:
                # A new retention (e.g. a longer period appeared): refill this tier.
                store = _TierStore(step, length, len(ids))
            else:
                store.reindex(keep)
            stores.append(store)
        self._stores = stores
        self._slos = list(slos)
        self.windows = windows

    # --- refresh ------------------------------------------------------------------------

    def instant(self, at: float) -> int:
        """The evaluation instant for a requested time: floored to the finest step."""
        step = self._steps[0]
        return math.floor(at / step) * step

    def refresh(self, at: float) -> WindowEvents:
        """Fetch what is missing up to `at` and return every window ending at `instant(at)`.

        Raises `SourceUnavailable` (from the source) when nothing could be fetched; the cache
        stays consistent and the next call fetches what is still missing.
        """
        now = self.instant(at)
        if self._last_at is not None and now < self._last_at:
            for store in self._stores:
                store.reset()  # time went backwards: a forward-only cache starts over
        self._last_at = now
        errors: dict[str, str] = {}
        for store in self._stores:
            store.advance((now // store.step) * store.step)
            errors.update(self._fill(store))
        return self._compose(now, errors)

    def _fill(self, store: _TierStore) -> dict[str, str]:
        """Fetch every SLO's missing steps of one tier; SLOs needing the same span share calls."""
        assert store.end is not None
        groups: dict[int, list[int]] = {}
        for row, until in enumerate(store.fetched_until):
            if until is not None and until >= store.end:
                continue
            start = store.oldest
            if until is not None:
                start = max(start, until - (self._refetch - 1) * store.step)
            groups.setdefault(start, []).append(row)
        errors: dict[str, str] = {}
        for start, rows in sorted(groups.items()):
            span_start = start
            while span_start <= store.end:
                span_end = min(store.end, span_start + (self._max_points - 1) * store.step)
                errors.update(self._fetch_into(store, rows, span_start, span_end))
                span_start = span_end + store.step
        return errors

    def _fetch_into(
        self, store: _TierStore, rows: list[int], start: int, end: int
    ) -> dict[str, str]:
        slos = [self._slos[r] for r in rows]
        rates = self._source.fetch(slos, Duration(store.step * 1000), float(start), float(end))
        if rates.bad.shape[0] != len(rows):
            raise ValueError(
                f"source returned {rates.bad.shape[0]} rows for {len(rows)} SLOs — rows must follow `slos`"
            )
        times = np.rint(np.asarray(rates.times, dtype=np.float64)).astype(np.int64)
        on_grid = (times % store.step == 0) & (times >= store.oldest) & (times <= store.end)
        ok = np.array([s.id not in rates.errors for s in slos], dtype=bool)
        if on_grid.any() and ok.any():
            bad, total = rates.bad, rates.total
            if not on_grid.all():
                bad, total = bad[:, on_grid], total[:, on_grid]
            if not ok.all():
                bad, total = bad[ok], total[ok]
            store.write(np.asarray(rows)[ok], times[on_grid], bad, total)
        for row, good in zip(rows, ok, strict=True):
            if good:
                store.fetched_until[row] = end
        return {s.id: rates.errors[s.id] for s in slos if s.id in rates.errors}

    def fine_step_coverage(self, min_coarse_steps: int = 3) -> np.ndarray:
        """float64[S]: the share of finest-tier steps holding data, counted only inside the
        settled steps of the next tier that hold data; NaN when there is too little to judge.

        The symptom of a fine step shorter than two scrape intervals: `rate(x[1m])` over 60 s
        scrapes sees one sample per step (no data) while `rate(x[5m])` sees five. A healthy
        SLO scores about 1 whatever its traffic (the comparison is against the coarse tier,
        so an SLO without data at all is NaN, not 0); ≪ 1 means the fine windows are blind.
        Reads only what the cache holds — no query.
        """
        n = len(self._slos)
        out = np.full(n, np.nan)
        if len(self._stores) < 2 or n == 0:
            return out
        fine, coarse = self._stores[0], self._stores[1]
        if fine.end is None or coarse.end is None:
            return out
        ratio = coarse.step // fine.step
        # Coarse steps lying wholly inside the fine tier's storage, and settled (the newest
        # coarse step may still be missing late scrapes; it is re-fetched next time).
        first = max(
            -(-fine.start_time // coarse.step) + 1, coarse.end // coarse.step - coarse.length + 1
        )
        last = min(coarse.end // coarse.step - 1, fine.end // coarse.step)
        if last < first:
            return out
        numbers = np.arange(first, last + 1)
        coarse_present = coarse.present[numbers % coarse.length]  # [C, S]
        fine_numbers = ((numbers[:, None] - 1) * ratio + 1 + np.arange(ratio)[None, :]).ravel()
        fine_present = fine.present[fine_numbers % fine.length].reshape(len(numbers), ratio, n)
        counted = (fine_present & coarse_present[:, None, :]).sum(axis=(0, 1))
        steps_with_data = coarse_present.sum(axis=0)
        judged = steps_with_data >= min_coarse_steps
        out[judged] = counted[judged] / (steps_with_data[judged] * ratio)
        return out

    def _compose(self, now: int, errors: dict[str, str]) -> WindowEvents:
        grids = [store.grid() for store in self._stores]
        bad_counts = [store.bad for store in self._stores]
        total_counts = [store.total for store in self._stores]
        present = [store.present for store in self._stores]
        bad, total, covered, recent_bad, recent_total = self._sums(
            now, grids, bad_counts, total_counts, present
        )
        # Maintenance windows: their events count for nothing. Only the SLOs that have
        # windows are composed again, from masked copies of their own columns.
        rows = np.flatnonzero([bool(s.maintenance) for s in self._slos])
        kept: list[np.ndarray | None] = []
        if rows.size:
            part = [self._slos[r] for r in rows]
            kept = [ring_kept_share(part, st.end or now, st.length, st.step) for st in self._stores]
            masked = self._sums(
                now,
                grids,
                [
                    c[:, rows] * (1.0 if k is None else k)
                    for c, k in zip(bad_counts, kept, strict=True)
                ],
                [
                    c[:, rows] * (1.0 if k is None else k)
                    for c, k in zip(total_counts, kept, strict=True)
                ],
                [p[:, rows] for p in present],
            )
            for whole, sub in zip(
                (bad, total, covered, recent_bad, recent_total), masked, strict=True
            ):
                whole[rows] = sub
        # Calendar SLOs: the period column holds the sums since the period began.
        since_start_rows(
            self._slos,
            now,
            self.windows,
            grids,
            self._steps,
            (bad_counts, total_counts, present),
            (bad, total, covered),
            (rows, kept) if rows.size else None,
        )
        recent = recent_window_for(Duration(self._steps[0] * 1000))
        return WindowEvents(
            at=float(now),
            windows=self.windows,
            bad=bad,
            total=total,
            errors=errors,
            slo_ids=tuple(s.id for s in self._slos),
            covered_seconds=covered,
            recent_window=recent,
            recent_bad=recent_bad,
            recent_total=recent_total,
        )

    def _sums(
        self,
        now: int,
        grids: list[TierGrid],
        bad_counts: list[np.ndarray],
        total_counts: list[np.ndarray],
        present: list[np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every window's bad, total and covered seconds [S, W], and the recent window's
        bad and total [S], for the SLO columns given."""
        n = bad_counts[0].shape[1]
        bad = np.empty((n, len(self.windows)))
        total = np.empty((n, len(self.windows)))
        covered = np.empty((n, len(self.windows)))
        for w, window in enumerate(self.windows):
            plan = plan_window(now, _seconds(window, "window"), grids)
            bad[:, w], _ = sum_planned(plan, bad_counts, present, self._steps)
            total[:, w], covered[:, w] = sum_planned(plan, total_counts, present, self._steps)
        # The newest minute is composed like any window: the finest tier's newest step(s).
        recent = recent_window_for(Duration(self._steps[0] * 1000))
        plan = plan_window(now, _seconds(recent, "recent window"), grids)
        recent_bad, _ = sum_planned(plan, bad_counts, present, self._steps)
        recent_total, _ = sum_planned(plan, total_counts, present, self._steps)
        return bad, total, covered, recent_bad, recent_total
