"""Evaluate SLOs against a live source: the multi-resolution cache plus the pure evaluation.

    evaluator = Evaluator(slos, PrometheusSource(...))
    results = evaluator.evaluate(at=clock())   # list[SLOEvaluation], one per SLO, in order
    evaluator.set_slos(new_slos)               # spec hot reload; the cache keeps what it can

Time is always a parameter. If the source cannot be reached at all, every SLO is reported
with status "error" and the message — never "ok", never a stale answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.burn.evaluate import evaluate_window_events, plan_evaluation
from engine.burn.result import SLOEvaluation
from engine.source.base import EventSource, SourceUnavailable
from engine.source.cache import DEFAULT_TIERS, MultiResolutionCache, Tier
from engine.spec.models import SLO


class Evaluator:
    def __init__(
        self, slos: Sequence[SLO], source: EventSource, tiers: Sequence[Tier] = DEFAULT_TIERS
    ) -> None:
        self._cache = MultiResolutionCache(source, slos, tiers)
        self._plan = plan_evaluation(self._cache.slos, self._cache.windows)

    @property
    def slos(self) -> tuple[SLO, ...]:
        return self._cache.slos

    @property
    def cache(self) -> MultiResolutionCache:
        return self._cache

    def set_slos(self, slos: Sequence[SLO]) -> None:
        self._cache.set_slos(slos)
        self._plan = plan_evaluation(self._cache.slos, self._cache.windows)

    def evaluate(self, at: float) -> list[SLOEvaluation]:
        """Evaluate every SLO at `at` floored to the finest cache step (`evaluated_at`)."""
        try:
            events = self._cache.refresh(at)
        except SourceUnavailable as exc:
            message = f"source unavailable: {exc}"
            instant = float(self._cache.instant(at))
            return [
                SLOEvaluation(slo=slo, evaluated_at=instant, status="error", error=message)
                for slo in self._cache.slos
            ]
        return evaluate_window_events(self._cache.slos, events, self._plan)
