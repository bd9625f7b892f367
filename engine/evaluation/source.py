"""The interface between a metrics backend and the evaluation core.

A source answers one question: for these SLOs, how many bad and total events per second
happened in each step interval of a grid? Everything else (windows, budgets, alerts) is
computed by the pure core from those per-step rates, so a cycle's cost does not depend on
how long the windows are and a second backend (remote read, a file) slots in unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.spec.durations import Duration
from engine.spec.models import SLO


@dataclass(frozen=True)
class StepRates:
    """Per-step event rates for S SLOs over T grid points.

    Row s follows the `slos` argument of `EventSource.fetch`. Step t covers the interval
    (times[t] − step, times[t]]; multiply a rate by `step.seconds` to get an event count.
    NaN means "no data" for that step and is never read as zero traffic.
    """

    step: Duration
    # float64[T]: END time (unix seconds) of each step interval, ascending, spaced by step.
    times: np.ndarray
    # float64[S, T]: bad events per second averaged over (times[t] − step, times[t]].
    # NaN with a known total means "no bad series" and counts as 0 bad events; a source
    # reports a step of an SLI whose bad events are total − good and whose good series is
    # missing as NaN in both arrays instead (engine.spec.sli.derives_bad), never as 0 bad.
    bad: np.ndarray
    # float64[S, T]: total events per second over the same intervals.
    total: np.ndarray
    # slo_id -> error message for SLOs whose query failed; their rows are all NaN.
    errors: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bad.shape != self.total.shape or self.bad.ndim != 2:
            raise ValueError(
                f"bad {self.bad.shape} and total {self.total.shape} must both be [S, T] arrays"
            )
        if self.times.shape != (self.bad.shape[1],):
            raise ValueError(
                f"times {self.times.shape} must have one entry per step (T={self.bad.shape[1]})"
            )


class EventSource(Protocol):
    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        """Rates for each step interval ending at start, start+step, ..., end (inclusive).

        Rows follow `slos`. `start` and `end` are multiples of `step` (epoch-aligned grid).
        A query that fails for one SLO goes to `errors` with NaN rows; it never becomes 0.
        Raises `SourceUnavailable` when the backend cannot be reached at all.
        """
        ...


class SourceUnavailable(Exception):
    """The whole source could not be reached (after retries)."""
