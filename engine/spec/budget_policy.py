"""Error-budget policies: what an organisation does when an SLO's budget is being spent.

    budget_policy:
      thresholds:
        - consumed: 50          # percent of the period's error budget consumed
          action: notify
          receivers: [slack-sre]
        - consumed: 100
          action: freeze        # the release gate (GET /api/v1/gates/{service}) closes

Declared on a service (the default of its SLOs) or on one SLO (which replaces the
service's). The state it implies is computed from each evaluation by
`engine.evaluation.budget_policy`; docs/budgets.md says what each action does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BudgetAction = Literal["notify", "freeze"]


class BudgetThreshold(BaseModel):
    """One step of a policy: at `consumed` percent of the budget spent, do `action`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Above 100 is an overspent budget (e.g. 150: half a budget more than allowed).
    consumed: float = Field(gt=0, le=1000)
    action: BudgetAction
    # Who hears of it (names under the daemon's `receivers:`); `notify` needs at least one.
    receivers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _receivers(self) -> BudgetThreshold:
        if self.action == "notify" and not self.receivers:
            raise ValueError(
                "a `notify` threshold needs `receivers:` (names of the daemon's receivers), "
                "e.g. receivers: [slack-sre]"
            )
        return self


class BudgetPolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: tuple[BudgetThreshold, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> BudgetPolicySpec:
        seen: set[tuple[float, str]] = set()
        for step in self.thresholds:
            key = (step.consumed, step.action)
            if key in seen:
                raise ValueError(f"threshold {step.consumed}% {step.action} is listed twice")
            seen.add(key)
        return self

    @property
    def freezes(self) -> bool:
        """Whether any threshold freezes releases (the gate only reads such SLOs)."""
        return any(step.action == "freeze" for step in self.thresholds)
