"""A cycle handed to the incident engine: alerts built once (engine.alerting.cycle), then
observed together with the evaluations that tell which SLOs had no data.

Daemon and backtest both go through `observe_cycle`, so "evaluations → alerts → incidents"
exists once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.alerting.alerts import Alert
from engine.alerting.cycle import Blindness, InvalidSpecs, cycle_alerts
from engine.anomaly.live import AnomalyState
from engine.evaluation.result import SLOEvaluation
from engine.incidents.engine import IncidentEngine
from engine.incidents.state import Decision
from engine.spec.models import SLO


@dataclass(frozen=True)
class CycleOutcome:
    alerts: list[Alert]
    decision: Decision


def observe_cycle(
    engine: IncidentEngine,
    now: float,
    evaluations: Sequence[SLOEvaluation],
    anomalies: Sequence[AnomalyState] = (),
    blind: Blindness | None = None,
    dashboard: Callable[[SLO], str | None] | None = None,
    invalid_specs: InvalidSpecs | None = None,
) -> CycleOutcome:
    """Build the cycle's alerts and let the engine decide on them at `now`."""
    alerts = cycle_alerts(now, evaluations, anomalies, blind, dashboard, invalid_specs)
    return CycleOutcome(alerts, engine.observe(now, alerts, evaluations))
