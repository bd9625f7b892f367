"""One cycle's alerts: the single path from what a cycle saw to the alerts it raises.

The daemon calls it every cycle and backtest at every replayed step, so both raise exactly
the same alerts from the same evaluations, anomaly states and blindness. The daemon's own
meta-alerts (evaluation blind, specs invalid) join here too, so they take the normal
incident path: routing, notifications, escalation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.alerting.alerts import (
    Alert,
    CycleFailure,
    alerts_from_evaluation,
    anomaly_alerts,
    blind_alert,
    specs_invalid_alert,
)
from engine.anomaly.live import AnomalyState
from engine.evaluation.result import SLOEvaluation
from engine.spec.models import SLO


@dataclass(frozen=True)
class Blindness:
    """The engine has evaluated nothing for `cycles` cycles since `since`; `failure` is
    the latest cycle's reason (the source, or the evaluation itself)."""

    since: float
    cycles: int
    failure: CycleFailure | None


@dataclass(frozen=True)
class InvalidSpecs:
    """The spec files have been invalid since `since` (the last good set still evaluated),
    for longer than `grace`; `first_error` is `file:line:col: message`."""

    since: float
    first_error: str
    errors: int
    grace: str


def cycle_alerts(
    now: float,
    evaluations: Iterable[SLOEvaluation],
    anomalies: Iterable[AnomalyState] = (),
    blind: Blindness | None = None,
    dashboard: Callable[[SLO], str | None] | None = None,
    invalid_specs: InvalidSpecs | None = None,
) -> list[Alert]:
    """Burn-rate alerts of every evaluation, then active anomalies, then the meta-alerts."""
    alerts = [
        alert
        for evaluation in evaluations
        for alert in alerts_from_evaluation(
            evaluation, None if dashboard is None else dashboard(evaluation.slo)
        )
    ]
    alerts.extend(anomaly_alerts(anomalies, now, dashboard))
    if blind is not None:
        alerts.append(blind_alert(blind.since, blind.cycles, blind.failure))
    if invalid_specs is not None:
        alerts.append(
            specs_invalid_alert(
                invalid_specs.since,
                invalid_specs.first_error,
                invalid_specs.errors,
                invalid_specs.grace,
            )
        )
    return alerts
