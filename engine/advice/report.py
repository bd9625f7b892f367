"""What `suggest` found: per SLO and for the fleet, and the documented JSON contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.advice.ladder import AdviceWarning, LadderResult, Recommendation
from engine.advice.latency import LatencyAdvice
from engine.advice.periods import PeriodValue
from engine.advice.policies import ALTERNATIVES
from engine.advice.scoring import PolicyChoice
from engine.backtest.plan import ReplayPlan
from engine.spec.models import SLO


@dataclass
class SLOAdvice:
    slo: SLO
    error: str | None = None  # the history could not be read
    periods: list[PeriodValue] = field(default_factory=list)  # rolling, newest first
    months: list[PeriodValue] = field(default_factory=list)
    distribution: dict[str, float | int] | None = None
    ladder: LadderResult | None = None
    latency: LatencyAdvice | str | None = None  # str: why there is no latency advice
    policy: PolicyChoice | None = None
    policy_objective: Decimal | None = None  # the objective the policies were compared at

    @property
    def recommendation(self) -> Recommendation | None:
        return None if self.ladder is None else self.ladder.recommendation

    @property
    def warnings(self) -> list[AdviceWarning]:
        if self.error is not None:
            return [AdviceWarning("error", f"the history could not be read: {self.error}")]
        return [] if self.ladder is None else self.ladder.warnings

    @property
    def objective_change(self) -> Decimal | None:
        """The recommended objective when it differs from the current one."""
        rec = self.recommendation
        if rec is None or rec.objective == self.slo.objective_percent.normalize():
            return None
        return rec.objective

    @property
    def policy_change(self) -> str | None:
        """The recommended policy when it is not the current one."""
        if self.policy is None or self.policy.best.policy == "current":
            return None
        return self.policy.best.policy

    def to_json(self) -> dict[str, object]:
        rec = self.recommendation
        latency: object = self.latency
        if isinstance(self.latency, LatencyAdvice):
            latency = self.latency.to_json()
        elif isinstance(self.latency, str):
            latency = {"error": self.latency}
        return {
            "slo_id": self.slo.id,
            "service": self.slo.service,
            # A grouped SLO's instance: its group's labels (advice shown, never written).
            "group": dict(self.slo.group) or None,
            "source": self.slo.source,
            "objective": float(self.slo.objective_percent),
            "period": str(self.slo.period),
            "sli": self.slo.sli.kind,
            "error": self.error,
            "periods": [p.to_json() for p in self.periods],
            "calendar_months": [p.to_json() for p in self.months],
            "distribution": self.distribution,
            "ladder": [] if self.ladder is None else [r.to_json() for r in self.ladder.rungs],
            "recommendation": None if rec is None else rec.to_json(),
            "warnings": [w.to_json() for w in self.warnings],
            "latency": latency,
            "policy": None
            if self.policy is None
            else {
                "objective": None
                if self.policy_objective is None
                else float(self.policy_objective),
                **self.policy.to_json(),
            },
        }


@dataclass
class Advice:
    plan: ReplayPlan
    days: int
    slos: list[SLOAdvice]
    reference: str  # "labels" or "incidents": what the policies were scored against
    fleet: PolicyChoice | None

    def to_json(self) -> dict[str, object]:
        """The documented `suggest --format json` contract."""
        return {
            "history": {
                "start": self.plan.fetch_start,
                "end": self.plan.end,
                "days": self.days,
                "step": str(self.plan.step),
                "replayed_from": self.plan.start,
            },
            "policies": [{"name": a.name, "description": a.description} for a in ALTERNATIVES],
            "reference": self.reference,
            "slos": [s.to_json() for s in self.slos],
            "fleet_policy": None if self.fleet is None else self.fleet.to_json(),
        }
