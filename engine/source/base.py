"""The interface between evaluation and wherever events come from.

A source answers one question: for these SLOs, what were the bad and total event rates
in each `step`-long interval between `start` and `end`? Everything downstream (windows,
budgets, alerts) is pure arithmetic on those arrays, so any backend (Prometheus HTTP, an
OpenMetrics file, remote read) slots in behind `fetch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.spec.durations import Duration
from engine.spec.models import SLO


@dataclass(frozen=True)
class StepRates:
    step: Duration
    # END time (unix s) of each step interval, ascending, spaced by step.
    times: np.ndarray  # float64[T]
    # Bad events per second averaged over (times[t] - step, times[t]]; NaN = no data.
    bad: np.ndarray  # float64[S, T]
    total: np.ndarray  # float64[S, T]
    # slo_id -> error message for SLOs whose query failed (their rows are NaN).
    errors: dict[str, str]


class EventSource(Protocol):
    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates: ...


class SourceUnavailable(Exception):
    """The source cannot be reached at all (connection refused, retries exhausted)."""
