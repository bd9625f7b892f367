"""Evaluate SLOs against a live source: the multi-resolution cache plus the pure evaluation.

    evaluator = Evaluator(slos, PrometheusSource(...), scrape_interval=Duration.parse("60s"))
    results = evaluator.evaluate(at=clock())   # list[SLOEvaluation], one per SLO, in order
    evaluator.set_slos(new_slos)               # spec hot reload; the cache keeps what it can

Time is always a parameter. If the source cannot be reached at all, every SLO is reported
with status "error" and the message — never "ok", never a stale answer.

The cache's finest step follows the scrape interval (engine.evaluation.resolution): 1m up to 30 s
scrapes, 2m30s at 60 s. Explicit `tiers` bypass that choice (tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.evaluation.burn import evaluate_window_events, plan_evaluation
from engine.evaluation.cache import MultiResolutionCache, Tier
from engine.evaluation.calendar import PinnedPlans, pin_all
from engine.evaluation.composite import with_composites
from engine.evaluation.groups import undiscovered_evaluations
from engine.evaluation.isolation import evaluate_each
from engine.evaluation.resolution import (
    DEFAULT_SCRAPE_INTERVAL,
    Resolution,
    resolution_for,
)
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource, SourceUnavailable
from engine.evaluation.timeslices import with_timeslices
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Below this share of fine steps with data (where the coarse tier has data), an SLO's fine
# windows are considered blind; see `sparse_fine_steps`.
SPARSE_FINE_COVERAGE = 0.75


class Evaluator:
    def __init__(
        self,
        slos: Sequence[SLO],
        source: EventSource,
        tiers: Sequence[Tier] | None = None,
        *,
        scrape_interval: Duration = DEFAULT_SCRAPE_INTERVAL,
    ) -> None:
        """Raises `ResolutionError` when no step fits the SLOs' windows at this scrape
        interval (e.g. a 5m short window with 5m scrapes)."""
        # Composites from their components' events; a replica's shard (daemon/shards.py)
        # finds components owned by other replicas in its `fleet`.
        # Time-slice SLOs are answered in slices (timeslices.py), composites on top.
        source = with_composites(with_timeslices(source), (*getattr(self, "fleet", ()), *slos))
        self._scrape_interval = scrape_interval
        self._fixed_tiers = tuple(tiers) if tiers is not None else None
        self._resolution = self._resolve(slos)
        self._cache = MultiResolutionCache(source, slos, self._resolution.tiers)
        self._source = source
        self._plan = plan_evaluation(self._cache.slos, self._cache.windows)
        self._pinned = PinnedPlans()  # calendar SLOs (engine.evaluation.calendar)

    def _resolve(self, slos: Sequence[SLO]) -> Resolution:
        if self._fixed_tiers is not None:
            return Resolution(self._scrape_interval, self._fixed_tiers)
        return resolution_for(slos, self._scrape_interval)

    @property
    def slos(self) -> tuple[SLO, ...]:
        return self._cache.slos

    @property
    def cache(self) -> MultiResolutionCache:
        return self._cache

    @property
    def resolution(self) -> Resolution:
        """The scrape interval and the cache tiers it chose (fine step first)."""
        return self._resolution

    def set_slos(self, slos: Sequence[SLO]) -> None:
        """Change the SLO set. Raises `ResolutionError` (and changes nothing) when the new set
        cannot be evaluated at the scrape interval. A set that needs a different fine step
        (new windows) starts a new cache: it refills from the source on the next evaluation."""
        resolution = self._resolve(slos)
        with_composites(self._source, (*getattr(self, "fleet", ()), *slos))
        # A cache of no SLOs has no columns to re-index: start a new one (grouped SLOs
        # whose first groups appear after none were known).
        if resolution.tiers != self._resolution.tiers or not self._cache.slos:
            self._cache = MultiResolutionCache(self._source, slos, resolution.tiers)
        else:
            self._cache.set_slos(slos)
        self._resolution = resolution
        self._plan = plan_evaluation(self._cache.slos, self._cache.windows)

    # Grouped SLOs without any group yet (engine.evaluation.groups): each is reported as one
    # `no_data` evaluation under its base id, never silently absent. A class default, so a
    # subclass re-running __init__ (a replica's shard) keeps them.
    _undiscovered: tuple[tuple[SLO, str], ...] = ()

    @property
    def undiscovered(self) -> tuple[SLO, ...]:
        return tuple(slo for slo, _ in self._undiscovered)

    def set_undiscovered(self, placeholders: Sequence[tuple[SLO, str]]) -> None:
        """The grouped SLOs without groups, each with the reason shown in its evaluation."""
        self._undiscovered = tuple(placeholders)

    def evaluate(self, at: float) -> list[SLOEvaluation]:
        """Evaluate every SLO at `at` floored to the finest cache step (`evaluated_at`);
        grouped SLOs without groups follow as `no_data`."""
        try:
            events = self._cache.refresh(at)
        except SourceUnavailable as exc:
            message = f"source unavailable: {exc}"
            instant = float(self._cache.instant(at))
            return [
                SLOEvaluation(slo=slo, evaluated_at=instant, status="error", error=message)
                for slo in (*self._cache.slos, *self.undiscovered)
            ]
        slos, plan = self._cache.slos, self._plan
        if any(s.calendar is not None for s in slos):  # factors follow this period's length
            slos = tuple(pin_all(slos, events.at, self._cache.fine_step, keep_period=True))
            plan = self._pinned.plan(plan, slos, lambda: plan_evaluation(slos, events.windows))
        try:
            results = evaluate_window_events(slos, events, plan)
        except Exception:  # one SLO's failure must not hide the others (isolation.py)
            results = evaluate_each(slos, events)
        return results + undiscovered_evaluations(self._undiscovered, events.at)

    def sparse_fine_steps(self, threshold: float = SPARSE_FINE_COVERAGE) -> dict[str, float]:
        """SLO id → share of fine steps with data, for SLOs whose fine steps are mostly empty
        while the coarser tier has data: the signature of a scrape interval longer than half
        the fine step (rate() sees one sample per step). Their short windows read as no data.
        """
        coverage = self._cache.fine_step_coverage()
        flagged = np.flatnonzero(coverage < threshold)  # NaN (not judged) compares False
        return {self._cache.slos[i].id: float(coverage[i]) for i in flagged}


def sparse_fine_steps_message(
    slo_id: str, coverage: float, resolution: Resolution, config_key: str
) -> str:
    """The warning for one SLO flagged by `Evaluator.sparse_fine_steps`, naming the cause
    and the setting that fixes it."""
    step = resolution.fine_step
    return (
        f"{slo_id}: only {coverage:.0%} of its {step} evaluation steps have data while its "
        f"coarser steps do — Prometheus likely scrapes it less often than every "
        f"{Duration(step.ms // 2)} (assumed scrape interval {resolution.scrape_interval}), so "
        f"rate() over one {step} step sees a single sample. Its short windows (and the page "
        f"rules using them) read as no data. Set {config_key} to the real scrape interval."
    )
