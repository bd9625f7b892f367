"""Composite SLOs' events from their components' events: no query of their own.

`with_composites(source, slos)` wraps any event source. A request naming composite SLOs is
sent on without them (plus any component not already in it), and each composite's rows are
then computed from its components' rows, composites of composites in dependency order:

    bad  = Σ wᵢ·badᵢ      total = Σ wᵢ·totalᵢ          (engine.spec.composite)

per step for `fetch` (rates over equal steps: a weighted sum of rates is the rate of the
weighted sum of events) and per window for `window_counts`. Everything downstream — window
sums, budget, burn rates, the multiwindow alerts, incidents, backtest — then treats a
composite like any SLO, so it cannot disagree with how its components are counted.

Missing data stays missing: a step (or window) is no data for the composite unless every
component has a total there — a journey with one part unseen is not known to be healthy.
A component's missing *bad* with a known total is 0 bad events, as for any SLO
(engine.evaluation.windows). A component whose query failed fails the composite, naming it.
Without composite SLOs in a request the wrapper is a plain pass-through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from engine.evaluation.source import StepRates
from engine.spec.composite import CompositeSLI, component_order
from engine.spec.durations import Duration
from engine.spec.models import SLO


class CompositeSource:
    """An event source (engine.evaluation.source.EventSource) that also answers for
    composite SLOs (module docstring)."""

    def __init__(self, inner: Any, catalog: Iterable[SLO] = ()) -> None:
        self.inner = inner
        self._catalog: dict[str, SLO] = {}
        self.set_catalog(catalog)

    def set_catalog(self, slos: Iterable[SLO]) -> None:
        """The SLOs a composite's components are looked up in when a request lacks them."""
        self._catalog = {s.id: s for s in slos}

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        if not any(s.sli.composite is not None for s in slos):
            return self.inner.fetch(slos, step, start, end)
        asked, missing = self._plain(slos)
        rates = self.inner.fetch(asked, step, start, end) if asked else None
        shape = (len(asked), _steps(step, start, end) if rates is None else rates.bad.shape[1])
        bad, total, errors = self._combine(
            slos,
            asked,
            missing,
            rates.bad if rates else np.empty(shape),
            rates.total if rates else np.empty(shape),
            rates.errors if rates else {},
        )
        times = rates.times if rates else end - step.seconds * np.arange(shape[1])[::-1]
        return StepRates(step=step, times=times, bad=bad, total=total, errors=errors)

    def window_counts(self, slos: Sequence[SLO], windows: Sequence[Duration], at: float) -> Any:
        """`WindowCountSource.window_counts` (engine.evaluation.instant) with composites."""
        if not any(s.sli.composite is not None for s in slos):
            return self.inner.window_counts(slos, windows, at)
        asked, missing = self._plain(slos)
        counts = self.inner.window_counts(asked, windows, at)
        bad, total, errors = self._combine(
            slos, asked, missing, counts.bad, counts.total, counts.errors
        )
        return replace(counts, bad=bad, total=total, errors=errors)

    def __getattr__(self, name: str) -> Any:
        # Anything else a source offers (close, labels, ...) is the inner source's.
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _plain(self, slos: Sequence[SLO]) -> tuple[list[SLO], dict[str, str]]:
        """The non-composite SLOs to ask the inner source for — the request's own and every
        component reached through its composites — and, per composite id that cannot be
        computed, why (a component neither requested nor in the catalog)."""
        known = {**self._catalog, **{s.id: s for s in slos}}
        asked: dict[str, SLO] = {s.id: s for s in slos if s.sli.composite is None}
        missing: dict[str, str] = {}
        for slo in slos:
            for leaf in _leaves(slo, known, missing):
                asked.setdefault(leaf.id, leaf)
        return list(asked.values()), missing

    def _combine(
        self,
        slos: Sequence[SLO],
        asked: Sequence[SLO],
        missing: dict[str, str],
        bad: np.ndarray,
        total: np.ndarray,
        errors: dict[str, str],
    ) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
        """Rows in the order of `slos`: the inner source's for plain SLOs, combined ones for
        composites; errors for the requested SLOs only."""
        rows: dict[str, tuple[np.ndarray, np.ndarray]] = {
            s.id: (bad[i], total[i]) for i, s in enumerate(asked)
        }
        failed = dict(errors)
        nan = np.full(bad.shape[1:], np.nan)
        composites = _composites(slos, {s.id: s for s in slos} | self._catalog)
        for slo_id in component_order(composites):
            if slo_id in missing:
                failed[slo_id] = missing[slo_id]
                continue
            rows[slo_id], message = composite_rows(composites[slo_id], rows, failed, nan.shape)
            if message is not None:
                failed[slo_id] = message
        out_bad = np.array([rows.get(s.id, (nan, nan))[0] for s in slos]).reshape(
            (len(slos), *bad.shape[1:])
        )
        out_total = np.array([rows.get(s.id, (nan, nan))[1] for s in slos]).reshape(out_bad.shape)
        wanted = {s.id for s in slos}
        return out_bad, out_total, {k: v for k, v in failed.items() if k in wanted}


def composite_rows(
    sli: CompositeSLI,
    rows: dict[str, tuple[np.ndarray, np.ndarray]],
    errors: dict[str, str],
    shape: tuple[int, ...],
) -> tuple[tuple[np.ndarray, np.ndarray], str | None]:
    """(bad, total) of one composite from its components' rows — Σ wᵢ·badᵢ and Σ wᵢ·totalᵢ,
    NaN wherever a component has no total — and the error naming a failed component."""
    failed = [ref for ref in sli.refs if ref in errors or ref not in rows]
    if failed:
        blank = np.full(shape, np.nan)
        reasons = "; ".join(f"{ref}: {errors.get(ref, 'not evaluated')}" for ref in failed)
        return (blank, blank.copy()), f"component SLO failed — {reasons}"
    bad_sum: np.ndarray | float = 0.0
    total_sum: np.ndarray | float = 0.0
    for objective in sli.objectives:
        bad, total = rows[objective.slo]
        weight = float(objective.weight)
        # NaN total stays NaN in the sum (no data); a NaN bad beside a known total is 0.
        bad_sum = bad_sum + weight * np.where(np.isnan(bad) & ~np.isnan(total), 0.0, bad)
        total_sum = total_sum + weight * total
    total_arr = np.asarray(total_sum, dtype=np.float64)
    bad_arr = np.where(np.isnan(total_arr), np.nan, np.asarray(bad_sum, dtype=np.float64))
    return (bad_arr, total_arr), None


def composite_covered(slos: Sequence[SLO], covered: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Covered seconds [S, W] (engine.evaluation.coverage) with each composite's row — where
    it has data — the least of its components' rows: a composite step has data only where
    all of them do, so its coverage is at most theirs (the cache path counts its own steps;
    the one-shot path cannot, and a young component must still mark the journey's budget
    partial). Composites whose components are not all in `slos` stay as they are."""
    index = {s.id: i for i, s in enumerate(slos)}
    composites = {s.id: s.sli.composite for s in slos if s.sli.composite is not None}
    out = covered.copy()
    for slo_id in component_order(composites):
        refs = composites[slo_id].refs
        if all(r in index for r in refs):
            row = index[slo_id]
            least = np.min(out[[index[r] for r in refs]], axis=0)
            out[row] = np.where(np.isnan(total[row]), np.nan, least)
    return out


def with_composites(source: Any, catalog: Iterable[SLO] = ()) -> Any:
    """`source` able to answer for composite SLOs (once: a wrapped source is returned as
    is, with its catalog replaced)."""
    if isinstance(source, CompositeSource):
        source.set_catalog(catalog)
        return source
    return CompositeSource(source, catalog)


def plain_slos(slos: Iterable[SLO]) -> list[SLO]:
    """The SLOs a metrics backend can be asked about directly (not composites)."""
    return [s for s in slos if s.sli.composite is None]


def _composites(slos: Sequence[SLO], known: dict[str, SLO]) -> dict[str, CompositeSLI]:
    """Every composite the request needs, its own and those it builds on."""
    out: dict[str, CompositeSLI] = {}
    pending = [s for s in slos if s.sli.composite is not None]
    while pending:
        slo = pending.pop()
        if slo.id in out or slo.sli.composite is None:
            continue
        out[slo.id] = slo.sli.composite
        pending += [known[r] for r in slo.sli.composite.refs if r in known]
    return out


def _leaves(slo: SLO, known: dict[str, SLO], missing: dict[str, str]) -> list[SLO]:
    """The plain SLOs under `slo` (itself if plain); records composites with a component
    that is not known in `missing`."""
    if slo.sli.composite is None:
        return [slo]
    out: list[SLO] = []
    for ref in slo.sli.composite.refs:
        component = known.get(ref)
        if component is None:
            missing[slo.id] = f"component SLO {ref} is not loaded"
            continue
        out += _leaves(component, known, missing)
    return out


def _steps(step: Duration, start: float, end: float) -> int:
    return round((end - start) / step.seconds) + 1
