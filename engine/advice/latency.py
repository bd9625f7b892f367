"""Latency SLIs: the share of requests under each threshold the histogram can answer, and a
threshold/objective pair for a target share.

A classic histogram answers only at its bucket bounds, so the candidates are its `le`
values, asked of the source (`count by (le)` over the last day of the history); a native
histogram answers at any threshold, so the candidates are a fixed ladder of usual ones. Each
candidate becomes a copy of the SLO with that threshold, fetched with the backtest's
`fetch_history` — the same queries as the SLO itself (`engine.spec.sli`) — and judged per
period like the objective (`engine.advice.periods`).

The pair: the smallest threshold whose share met the target share in every usable period
with the ladder's headroom (≤ 75 % of the target's budget spent in the worst period); a
threshold that only just meets it would page at the first slow deploy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol

from engine.advice.ladder import HEADROOM
from engine.advice.periods import PeriodValue
from engine.spec.durations import Duration
from engine.spec.models import SLO, LatencySLI

# Candidates for native histograms, which answer at any threshold.
NATIVE_THRESHOLDS = tuple(
    Duration.parse(x) for x in ("50ms", "100ms", "250ms", "500ms", "1s", "2500ms", "5s", "10s")
)


class InstantQueries(Protocol):
    def query_instant(self, query: str, at: float) -> list[dict]: ...


def is_native(sli: LatencySLI) -> bool:
    # `native` arrives with native-histogram support; older specs have no such field.
    return bool(getattr(sli, "native", False))


def bound_duration(le: str) -> Duration | None:
    """A bucket bound as a threshold: whole milliseconds only, +Inf never."""
    try:
        seconds = float(le)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    ms = seconds * 1000
    if abs(ms - round(ms)) > 1e-6:
        return None
    return Duration(round(ms))


def bucket_bounds(source: InstantQueries, sli: LatencySLI, at: float) -> list[Duration]:
    """The bucket bounds the histogram had in the day before `at`, as thresholds."""
    selector = "{" + sli.selector + "}" if sli.selector else ""
    query = f"count by (le) (last_over_time({sli.histogram}_bucket{selector}[1d]))"
    found = set()
    for series in source.query_instant(query, at):
        bound = bound_duration(str(series.get("metric", {}).get("le", "")))
        if bound is not None:
            found.add(bound)
    return sorted(found)


def candidate_thresholds(slo: SLO, bounds: Sequence[Duration]) -> list[Duration]:
    latency = slo.sli.latency
    assert latency is not None
    if is_native(latency):
        return sorted({*NATIVE_THRESHOLDS, latency.threshold})
    return sorted(bounds)


def threshold_variants(slo: SLO, thresholds: Sequence[Duration]) -> list[SLO]:
    """The SLO with each threshold (distinct names, so the source keeps their errors apart)."""
    latency = slo.sli.latency
    assert latency is not None
    out = []
    for k, threshold in enumerate(thresholds):
        sli = slo.sli.model_copy(
            update={"latency": latency.model_copy(update={"threshold": threshold})}
        )
        out.append(replace(slo, name=f"{slo.name}~le{k}", sli=sli))
    return out


@dataclass(frozen=True)
class ThresholdShare:
    threshold: Duration
    periods: list[PeriodValue]
    overall: PeriodValue  # the whole history
    error: str | None = None

    @property
    def worst(self) -> float | None:
        values = [p.achieved for p in self.periods if p.usable and p.achieved is not None]
        return min(values) if values else None

    def to_json(self) -> dict[str, object]:
        return {
            "threshold": str(self.threshold),
            "share": self.overall.achieved,
            "worst_period_share": self.worst,
            "periods": [p.achieved if p.usable else None for p in self.periods],
            "error": self.error,
        }


@dataclass(frozen=True)
class LatencyAdvice:
    current: Duration
    target: Decimal  # percent of requests that should be under the threshold
    shares: list[ThresholdShare]
    threshold: Duration | None
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "current_threshold": str(self.current),
            "target_share": float(self.target),
            "thresholds": [s.to_json() for s in self.shares],
            "recommended": None
            if self.threshold is None
            else {"threshold": str(self.threshold), "objective": float(self.target)},
            "reason": self.reason,
        }


def recommend_threshold(
    current: Duration, target: Decimal, shares: Sequence[ThresholdShare]
) -> LatencyAdvice:
    budget = float(1 - target / 100)
    needed = 100.0 * (1 - HEADROOM * budget)
    judged = [s for s in shares if s.worst is not None]
    if not judged:
        return LatencyAdvice(
            current, target, list(shares), None, "no threshold has a usable period of data"
        )
    roomy = [s for s in judged if (s.worst or 0.0) >= needed]
    if roomy:
        best = min(roomy, key=lambda s: s.threshold)
        return LatencyAdvice(
            current,
            target,
            list(shares),
            best.threshold,
            f"the smallest threshold under which ≥ {needed:.3g} % of requests fell in every "
            f"period (worst: {best.worst:.3f} %): at most {HEADROOM * 100:.0f} % of a "
            f"{target.normalize():f} % budget spent",
        )
    met = [s for s in judged if (s.worst or 0.0) >= float(target)]
    if met:
        best = min(met, key=lambda s: s.threshold)
        return LatencyAdvice(
            current,
            target,
            list(shares),
            best.threshold,
            f"the smallest threshold meeting {target.normalize():f} % in every period, with "
            f"little headroom (worst: {best.worst:.3f} %)",
        )
    top = max(judged, key=lambda s: s.worst or 0.0)
    return LatencyAdvice(
        current,
        target,
        list(shares),
        None,
        f"no threshold reached {target.normalize():f} % in every period; the best, "
        f"{top.threshold}, achieved {top.worst:.3f} % at worst",
    )
