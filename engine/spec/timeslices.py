"""Time-slice SLOs ("good minutes"): the objective counts slices, not events.

    slos:
      - name: availability-minutes
        objective: 99.9                          # share of good slices over the period
        timeslices: {slice: 1m, slice_target: 99}

A slice is good when its own good/total ratio reaches `slice_target` percent; a slice without
events is not judged (neither good nor bad). The budget and every burn rate are then counted
in slices: bad slices / judged slices per window (engine.evaluation.timeslices; the rules in
engine.generate.timeslice_rules; semantics in docs/budgets.md).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, field_validator

from engine.spec.bounds import objective_places
from engine.spec.durations import Duration
from engine.spec.fields import DecimalField, DurationField

# Slices the rules can record exactly (one recording group per length, evaluated once per
# slice) and the evaluation cache can count without rounding: its fine steps are 1m or 2m30s,
# and a 5m slice ends on a 1m grid and in exactly one coarser step.
SLICES: tuple[Duration, ...] = (Duration.parse("1m"), Duration.parse("5m"))


class TimeSlices(BaseModel):
    """`timeslices:` of one SLO."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slice: DurationField
    slice_target: DecimalField

    @field_validator("slice")
    @classmethod
    def _slice(cls, value: Duration) -> Duration:
        if value not in SLICES:
            raise ValueError(
                f"slice {value} is not supported — use 1m or 5m (a slice is judged from its "
                "own good/total ratio, so it needs several scrapes)"
            )
        return value

    @field_validator("slice_target")
    @classmethod
    def _target(cls, value: Decimal) -> Decimal:
        if not (0 < value < 100):
            raise ValueError(
                f"slice_target {value} is out of range — it is a percentage of good events "
                "within one slice, 0 < slice_target < 100 (write 99, not 0.99)"
            )
        return objective_places(value)

    @property
    def target(self) -> float:
        """The slice target as a ratio: 99 -> 0.99."""
        return float(self.slice_target / 100)
