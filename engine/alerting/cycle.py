"""One cycle's alerts: the single path from what a cycle saw to the alerts it raises.

The daemon calls it every cycle and backtest at every replayed step, so both raise exactly
the same alerts from the same evaluations, anomaly states and blindness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.alerting.alerts import Alert, alerts_from_evaluation, anomaly_alerts, blind_alert
from engine.anomaly.live import AnomalyState
from engine.evaluation.result import SLOEvaluation
from engine.spec.models import SLO


@dataclass(frozen=True)
class Blindness:
    """The engine has not seen its metrics source for `cycles` cycles since `since`."""

    since: float
    cycles: int
    error: str | None


def cycle_alerts(
    now: float,
    evaluations: Iterable[SLOEvaluation],
    anomalies: Iterable[AnomalyState] = (),
    blind: Blindness | None = None,
    dashboard: Callable[[SLO], str | None] | None = None,
) -> list[Alert]:
    """Burn-rate alerts of every evaluation, then active anomalies, then blindness."""
    alerts = [
        alert
        for evaluation in evaluations
        for alert in alerts_from_evaluation(
            evaluation, None if dashboard is None else dashboard(evaluation.slo)
        )
    ]
    alerts.extend(anomaly_alerts(anomalies, now, dashboard))
    if blind is not None:
        alerts.append(blind_alert(blind.since, blind.cycles, blind.error))
    return alerts
