"""A ladder of candidate objectives judged by the periods of history, and the one to pick.

For each candidate: the share of its error budget each period would have spent
(`engine.evaluation.budget.budget_consumed`, event-weighted like every budget here), how
many periods would have missed it, and — filled in by the alert replays — how many pages
and tickets the SLO's policy would have sent with that objective.

The recommendation is the tightest candidate met in every usable period with at most
`HEADROOM` of its budget spent in the worst one: an objective the service only just meets
leaves nothing for the next deploy, and one it beats by far pages nobody when users
start to notice. A service at 99.93 % spends 70 % of a 99.9 % budget and 140 % of a
99.95 % one, so it gets 99.9.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

import numpy as np

from engine.advice.periods import MIN_COVERAGE, PeriodValue
from engine.evaluation.budget import budget_consumed

LADDER: tuple[Decimal, ...] = tuple(Decimal(x) for x in ("99", "99.5", "99.9", "99.95", "99.99"))
# Most of the budget the worst period may spend for an objective to be recommended.
HEADROOM = 0.75
# A current objective whose worst period spent less than this share of its budget is loose.
LOOSE = 0.10


@dataclass
class Rung:
    """One candidate objective over the history."""

    objective: Decimal
    budget_spent: list[float | None]  # per rolling period, newest first; None = no data
    periods: int  # usable periods
    violated: int  # usable periods that spent more than the whole budget
    pages: int | None = None  # page alerts that would have fired (None: not replayed)
    tickets: int | None = None

    @property
    def worst(self) -> float | None:
        spent = [s for s in self.budget_spent if s is not None]
        return max(spent) if spent else None

    def to_json(self) -> dict[str, object]:
        return {
            "objective": float(self.objective),
            "budget_spent": self.budget_spent,
            "worst_budget_spent": self.worst,
            "periods": self.periods,
            "periods_violated": self.violated,
            "pages": self.pages,
            "tickets": self.tickets,
        }


@dataclass(frozen=True)
class Recommendation:
    objective: Decimal
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"objective": float(self.objective), "reason": self.reason}


@dataclass(frozen=True)
class AdviceWarning:
    kind: str  # unattainable, missed, loose, no_data
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass
class LadderResult:
    rungs: list[Rung]
    recommendation: Recommendation | None
    warnings: list[AdviceWarning] = field(default_factory=list)


def candidates(current: Decimal) -> tuple[Decimal, ...]:
    """The standard ladder plus the current objective, loosest first."""
    return tuple(sorted({*LADDER, current.normalize()}))


def build_rungs(objectives: Sequence[Decimal], periods: Sequence[PeriodValue]) -> list[Rung]:
    usable = [p for p in periods if p.usable]
    bad = np.array([p.bad for p in periods], dtype=np.float64)
    total = np.array([p.total for p in periods], dtype=np.float64)
    budgets = np.array([float(1 - o / 100) for o in objectives])
    spent = budget_consumed(bad[None, :], total[None, :], budgets[:, None])
    mask = np.array([p.usable for p in periods], dtype=bool)
    rungs = []
    for k, objective in enumerate(objectives):
        row = [
            None if not ok or math.isnan(float(v)) else float(v)
            for v, ok in zip(spent[k], mask, strict=True)
        ]
        violated = sum(1 for v in row if v is not None and v > 1.0)
        rungs.append(Rung(objective, row, len(usable), violated))
    return rungs


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _percent(objective: Decimal) -> str:
    return f"{objective.normalize():f}"


def recommend(rungs: Sequence[Rung], periods: Sequence[PeriodValue]) -> Recommendation | None:
    """The tightest candidate met everywhere with headroom; else the tightest met at all;
    else the worst period's SLI rounded down to 0.1 %. None without a usable period."""
    usable = [p for p in periods if p.usable]
    if not usable:
        return None
    n = len(usable)
    met = [r for r in rungs if r.violated == 0 and r.worst is not None]
    roomy = [r for r in met if r.worst is not None and r.worst <= HEADROOM]
    if roomy:
        best = max(roomy, key=lambda r: r.objective)
        return Recommendation(
            best.objective,
            f"the tightest objective met in {n} of the last {n} periods with ≤ "
            f"{_pct(HEADROOM)} of its budget spent (worst period: {_pct(best.worst or 0)})",
        )
    if met:
        best = max(met, key=lambda r: r.objective)
        return Recommendation(
            best.objective,
            f"the tightest objective met in {n} of the last {n} periods, with little headroom "
            f"(worst period spent {_pct(best.worst or 0)} of its budget)",
        )
    # Below the ladder: the loosest objective, to 0.1 %, that the worst period meets with
    # the same headroom — the service's own level, not a wish.
    worst = min(p.achieved for p in usable if p.achieved is not None)
    level = 100.0 - (100.0 - worst) / HEADROOM
    floor = max(Decimal(f"{level:.6f}").quantize(Decimal("0.1"), ROUND_FLOOR), Decimal("0.1"))
    return Recommendation(
        floor,
        f"no candidate objective was met in every period; the worst of the last {n} achieved "
        f"{worst:.3f} %, which spends {_pct((100 - worst) / (100 - float(floor)))} of a "
        f"{_percent(floor)} % budget",
    )


def warnings_for(
    current: Decimal,
    rungs: Sequence[Rung],
    recommendation: Recommendation | None,
    periods: Sequence[PeriodValue],
) -> list[AdviceWarning]:
    """Unattainable, missed or trivially loose current objectives; no data."""
    if recommendation is None:
        return [AdviceWarning("no_data", _no_data_message(periods))]
    rung = next(r for r in rungs if r.objective == current.normalize())
    achieved = [p.achieved for p in periods if p.usable and p.achieved is not None]
    low, high = min(achieved), max(achieved)
    spread = f"{low:.3f} %" if f"{low:.3f}" == f"{high:.3f}" else f"{low:.3f}–{high:.3f} %"
    if rung.violated and 2 * rung.violated >= rung.periods:
        return [
            AdviceWarning(
                "unattainable",
                f"the current objective {_percent(current)} % was missed in {rung.violated} of "
                f"{rung.periods} periods (achieved {spread})",
            )
        ]
    if rung.violated:
        return [
            AdviceWarning(
                "missed",
                f"the current objective {_percent(current)} % was missed in {rung.violated} of "
                f"{rung.periods} periods (achieved {spread})",
            )
        ]
    if rung.worst is not None and rung.worst < LOOSE and recommendation.objective > current:
        return [
            AdviceWarning(
                "loose",
                f"the current objective {_percent(current)} % is trivially loose: at worst "
                f"{rung.worst * 100:.1f} % of its budget was spent (achieved {spread}); "
                f"{_percent(recommendation.objective)} % would still have held",
            )
        ]
    return []


def _no_data_message(periods: Sequence[PeriodValue]) -> str:
    if not periods:
        return "not enough history: shorter than one period — no objective can be judged"
    with_data = [p for p in periods if p.total > 0]
    if not with_data:
        return "no data: no events in the history — no objective can be judged"
    best = max(p.coverage for p in periods)
    return (
        f"not enough data: no period has events at ≥ {MIN_COVERAGE:.0%} of its steps "
        f"(best: {best:.0%}) — "
        "no objective can be judged"
    )


def ladder(current: Decimal, periods: Sequence[PeriodValue]) -> LadderResult:
    rungs = build_rungs(candidates(current), periods)
    recommendation = recommend(rungs, periods)
    return LadderResult(
        rungs, recommendation, warnings_for(current, rungs, recommendation, periods)
    )
