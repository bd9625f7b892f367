"""A one-shot `evaluate` asks Prometheus about the first spec files while it reads the rest.

Reading and validating 1,000 spec files takes about a third of a second of one core, and
Prometheus sat idle through it; then it had the whole evaluation's reads to do at once. So
the specs are read in two halves (engine.spec.loader.SpecLoading): once the first half is
validated, its SLOs' whole-window counts and coverage are asked in the background — the
same calls `evaluate_once` makes, for the same windows at the same instant — and the second
half is read meanwhile.

Nothing is trusted early. The prefetched rows serve an SLO of the final evaluation only if
the finished load has an equal SLO (same id, same SLI, same policy: `SLO.__eq__`) and the
evaluation asks the same windows at the same instant (and, for coverage, the same sampling);
anything else is asked as before. Only plain SLOs are prefetched — not composites, grouped,
calendar, time-slice or maintenance SLOs, whose evaluation changes what is asked. If the
finished load has errors, the run exits 1 as before and the prefetched answers are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.evaluation.instant import (
    WindowCounts,
    WindowCoverage,
    counts_windows,
    coverage_samples,
    evaluation_instant,
)
from engine.evaluation.resolution import ResolutionError, resolution_for
from engine.evaluation.windows import recent_window_for
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Below this many files the halves are not worth a second round of requests.
PREFETCH_FROM_FILES = 64


@dataclass(frozen=True)
class _Asked:
    at: float
    windows: tuple[Duration, ...]  # what window_counts is asked (the recent window last)
    coverage_windows: tuple[Duration, ...]
    samples: tuple[Duration, ...]
    fine: Duration


class Prefetch:
    """Counts and coverage of `slos`, asked in the background at construction."""

    def __init__(self, source: Any, slos: Sequence[SLO], when: float, scrape: Duration) -> None:
        from engine.source.window_coverage import window_coverage

        self.slos = [s for s in slos if _plain(s)]
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prefetch")
        self._counts: Future[WindowCounts] | None = None
        self._coverage: Future[np.ndarray] | None = None
        self.asked: _Asked | None = None
        if not self.slos:
            return
        try:
            fine = resolution_for(self.slos, scrape).fine_step
        except ResolutionError:
            return  # the evaluation will say why
        windows = counts_windows(self.slos)
        recent = recent_window_for(fine)
        asked = windows if recent in windows else (*windows, recent)
        at = evaluation_instant(when, fine)
        samples = coverage_samples(windows, fine)
        self.asked = _Asked(at, tuple(asked), tuple(windows), samples, fine)
        self._counts = self._pool.submit(source.window_counts, self.slos, asked, at)
        self._coverage = self._pool.submit(
            window_coverage, source, self.slos, windows, samples, fine, at
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _rows(self, slos: Sequence[SLO]) -> tuple[list[int], list[int]]:
        """(rows of `slos` found, their prefetched rows) for SLOs equal to a prefetched one."""
        index = {s.id: i for i, s in enumerate(self.slos)}
        found, rows = [], []
        for i, slo in enumerate(slos):
            j = index.get(slo.id)
            if j is not None and self.slos[j] == slo:
                found.append(i)
                rows.append(j)
        return found, rows

    def window_counts(
        self, inner: Any, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        """`inner.window_counts(slos, windows, at)`, the prefetched rows taken as they are:
        the others are asked at once, beside the prefetch still running."""
        asked = self.asked
        same = asked is not None and (asked.at, asked.windows) == (at, tuple(windows))
        if self._counts is None or not same:
            return inner.window_counts(slos, windows, at)
        found, rows = self._rows(slos)
        rest = _others(len(slos), found)
        more = inner.window_counts([slos[i] for i in rest], windows, at) if rest else None
        done = _result(self._counts)
        if done is None:  # the prefetch failed: ask its SLOs too, the usual way
            done = inner.window_counts([slos[i] for i in found], windows, at)
            rows = list(range(len(found)))
        shape = (len(slos), len(windows))
        bad, total = np.full(shape, np.nan), np.full(shape, np.nan)
        bad[found], total[found] = done.bad[rows], done.total[rows]
        kept = {slos[i].id for i in found}
        errors = {k: v for k, v in done.errors.items() if k in kept}
        if more is not None:
            bad[rest], total[rest] = more.bad, more.total
            errors.update(more.errors)
        return WindowCounts(at=at, windows=tuple(windows), bad=bad, total=total, errors=errors)

    def coverage(self, measure: WindowCoverage) -> WindowCoverage:
        """`measure`, the prefetched rows taken where the same question was asked (the
        others measured at once, beside the prefetch)."""

        def shares(
            slos: Sequence[SLO],
            windows: Sequence[Duration],
            samples: Sequence[Duration],
            fine: Duration,
            at: float,
        ) -> np.ndarray:
            asked = self.asked
            same = asked is not None and (
                asked.at,
                asked.coverage_windows,
                asked.samples,
                asked.fine,
            ) == (at, tuple(windows), tuple(samples), fine)
            if self._coverage is None or not same:
                return measure(slos, windows, samples, fine, at)
            found, rows = self._rows(slos)
            rest = _others(len(slos), found)
            more = measure([slos[i] for i in rest], windows, samples, fine, at) if rest else None
            done = _result(self._coverage)
            out = np.full((len(slos), len(windows)), np.nan)
            if more is not None:
                out[rest] = more
            if done is None:  # the prefetch failed: measure its SLOs too
                if found:
                    out[found] = measure([slos[i] for i in found], windows, samples, fine, at)
                return out
            out[found] = done[rows]
            return out

        return shares


def _others(n: int, found: list[int]) -> list[int]:
    taken = set(found)
    return [i for i in range(n) if i not in taken]


class PrefetchedSource:
    """A source whose `window_counts` goes through a `Prefetch`; the rest passes through."""

    def __init__(self, inner: Any, prefetch: Prefetch) -> None:
        self.inner, self._prefetch = inner, prefetch

    def window_counts(
        self, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        return self._prefetch.window_counts(self.inner, slos, windows, at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _plain(slo: SLO) -> bool:
    return (
        slo.sli.composite is None
        and not slo.grouped
        and slo.calendar is None
        and slo.timeslices is None
        and not slo.maintenance
    )


def _result(future: Future[Any] | None) -> Any:
    """The future's value, or None when it failed (the evaluation asks again and reports)."""
    if future is None:
        return None
    try:
        return future.result()
    except Exception:
        return None
