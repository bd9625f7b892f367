"""One evaluation cycle of the daemon:

    specs changed? → reload (an invalid set is reported, the last good one kept)
    evaluate (source batches behind a circuit breaker) → anomalies (services with
    `anomaly.enabled`; failures contained) → alerts (+ "evaluation blind", + anomaly alerts)
    → IncidentEngine.observe → store.apply (one transaction, outbox included)
    → deliver the outbox → sync state-syncing receivers (Alertmanager)

Each step is a span of the cycle's trace (`slo_engine.cycle` the root); logs inside carry
its trace id. The incident side (the store write under the Runtime's lock, delivery, sync)
is the Runtime's and handed in as functions, because API mutations and timer ticks share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.alerting.alerts import Alert
from engine.alerting.cycle import Blindness
from engine.alerting.links import slo_dashboard_url
from engine.anomaly.live import AnomalyState
from engine.daemon.anomaly import DaemonAnomalies
from engine.daemon.config import DaemonConfig
from engine.daemon.metrics import DaemonMetrics
from engine.daemon.source_guard import GuardedSource
from engine.daemon.specs import DaemonSpecs
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.result import SLOEvaluation
from engine.incidents.cycle import CycleOutcome, observe_cycle
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import iso
from engine.incidents.state import Decision
from engine.notify.delivery import DeliveryReport
from engine.spec.models import SLO

# These lines logged under the Runtime's name before it was split; operators filter on it.
log = logging.getLogger("engine.daemon.runtime")

# The Runtime's `_decide(origin, call, now)`: apply an engine call's decision to the store.
Decide = Callable[[str, Callable[[float], Decision], float | None], Decision | None]


@dataclass
class CycleReport:
    """What one cycle did (returned to tests and logged)."""

    at: float
    results: list[SLOEvaluation]
    alerts: list[Alert]
    decision: Decision | None
    delivery: DeliveryReport
    source_error: str | None
    blind: bool
    duration: float = 0.0
    notes: list[str] = field(default_factory=list)


class SourceHealth:
    """Consecutive cycles without the metrics source, and since when: after
    `blind_after_cycles` of them the daemon is "evaluation blind" and says so (a meta-alert)."""

    def __init__(self, blind_after_cycles: int, metrics: DaemonMetrics) -> None:
        self._blind_after = blind_after_cycles
        self._metrics = metrics
        self.failed_cycles = 0
        self.blind_since: float | None = None

    def record(self, now: float, source_error: str | None) -> bool:
        """Count this cycle's outcome; whether the daemon is now blind."""
        if source_error is None:
            if self.blind_since is not None:
                log.info("metrics source answers again after %d failed cycles", self.failed_cycles)
            self.failed_cycles, self.blind_since = 0, None
        else:
            self.failed_cycles += 1
            if self.blind_since is None:
                self.blind_since = now
            log.warning(
                "metrics source failed (%d consecutive cycles): %s",
                self.failed_cycles,
                source_error,
            )
        blind = self.failed_cycles >= self._blind_after
        self._metrics.blind.set(1 if blind else 0)
        self._metrics.failed_cycles.set(self.failed_cycles)
        return blind

    def blindness(self, blind: bool, source_error: str | None) -> Blindness | None:
        if blind and self.blind_since is not None:
            return Blindness(self.blind_since, self.failed_cycles, source_error)
        return None


class EvaluationCycle:
    """Runs cycles (one at a time) and keeps what the last one found for the API to read."""

    def __init__(
        self,
        config: DaemonConfig,
        clock: Callable[[], float],
        tracer: trace.Tracer,
        metrics: DaemonMetrics,
        *,
        specs: DaemonSpecs,
        source: GuardedSource,
        evaluator: Evaluator,
        anomalies: DaemonAnomalies,
        engine: IncidentEngine,
        decide: Decide,
        deliver: Callable[[float], DeliveryReport],
        sync: Callable[[float], None],
    ) -> None:
        self._config = config
        self._clock = clock
        self._tracer = tracer
        self._metrics = metrics
        self._specs = specs
        self._source = source
        self._evaluator = evaluator
        self._anomalies = anomalies
        self._engine = engine
        self._decide = decide
        self._deliver = deliver
        self._sync = sync
        self._lock = threading.Lock()
        self.health = SourceHealth(config.blind_after_cycles, metrics)
        # Swapped in as a whole: readers on other threads see one cycle's results or the next.
        self.results: list[SLOEvaluation] = []
        self.source_error: str | None = None
        self.last_at: float | None = None
        self.last_finished: float | None = None

    def run(self, now: float | None = None) -> CycleReport:
        """One evaluation cycle at `now` (default: the clock). Never raises for a failing
        source, receiver or spec file; those are reported (logs, metrics, readiness)."""
        with self._lock:
            now = self._clock() if now is None else float(now)
            started = time.perf_counter()
            with self._tracer.start_as_current_span(
                "slo_engine.cycle", attributes={"slo_engine.at": now}
            ) as span:
                report = self._cycle(now)
                report.duration = time.perf_counter() - started
                span.set_attribute("slo_engine.slos", len(report.results))
                span.set_attribute("slo_engine.alerts", len(report.alerts))
                span.set_attribute("slo_engine.blind", report.blind)
                if report.source_error:
                    span.set_status(Status(StatusCode.ERROR, report.source_error))
                log.info(
                    "cycle at %s: %d SLOs (%s), %d alerts, %d notifications sent in %.3fs%s",
                    iso(now),
                    len(report.results),
                    _status_summary(report.results),
                    len(report.alerts),
                    report.delivery.sent,
                    report.duration,
                    f"; source failed: {report.source_error}" if report.source_error else "",
                )
            outcome = "ok" if report.source_error is None else "source_failed"
            self._metrics.cycle(report.duration, outcome, self._clock())
            return report

    def _cycle(self, now: float) -> CycleReport:
        notes = self._specs.reload_if_changed(now)
        results, source_error = self._evaluate(now)
        self.results = results
        if source_error is None:
            self._specs.check_sampling()
        self.source_error = source_error
        self._metrics.circuit_open.set(1 if self._source.circuit_open else 0)

        blind = self.health.record(now, source_error)
        source_ok = source_error is None and not self._source.circuit_open
        anomaly_states = self._anomalies.run(now, source_ok)
        blindness = self.health.blindness(blind, source_error)
        decision, alerts = self._incidents(now, results, anomaly_states, blindness)

        delivery = self._deliver(now)
        self._sync(now)
        self.last_at = now
        self.last_finished = self._clock()
        return CycleReport(
            at=now,
            results=results,
            alerts=alerts,
            decision=decision,
            delivery=delivery,
            source_error=source_error,
            blind=blind,
            notes=notes,
        )

    def _evaluate(self, now: float) -> tuple[list[SLOEvaluation], str | None]:
        """Every SLO's evaluation at `now`, and why the source failed this cycle (if it did)."""
        self._source.begin_cycle()
        with self._tracer.start_as_current_span("evaluate") as span:
            results = self._evaluator.evaluate(now)
            self._source.probe(now)
            source_error = self._source.cycle_failure()
            if source_error is not None:
                # Whatever the cache could still compose, the source does not answer now:
                # report every SLO as an error instead of a stale answer.
                instant = float(self._evaluator.cache.instant(now))
                results = _error_results(
                    self._evaluator.slos, instant, f"source unavailable: {source_error}"
                )
                span.set_status(Status(StatusCode.ERROR, source_error))
            span.set_attribute("slo_engine.results", len(results))
        return results, source_error

    def _incidents(
        self,
        now: float,
        results: list[SLOEvaluation],
        anomaly_states: list[AnomalyState],
        blindness: Blindness | None,
    ) -> tuple[Decision | None, list[Alert]]:
        """Alerts → incident engine → store; the decision (None if the store failed)."""
        outcomes: list[CycleOutcome] = []

        def observe(at: float) -> Decision:
            with self._tracer.start_as_current_span("policy") as span:
                outcome = observe_cycle(
                    self._engine, at, results, anomaly_states, blindness, self._dashboard
                )
                span.set_attribute("slo_engine.alerts", len(outcome.alerts))
            outcomes.append(outcome)
            return outcome.decision

        with self._tracer.start_as_current_span("incidents") as span:
            decision = self._decide("cycle", observe, now)
            alerts = outcomes[-1].alerts if outcomes else []
            if decision is not None:
                span.set_attribute("slo_engine.notifications", len(decision.notifications))
                span.set_attribute("slo_engine.incidents_changed", len(decision.incidents))
                _log_opened(decision)
        return decision, alerts

    def _dashboard(self, slo: SLO) -> str | None:
        if self._config.dashboard_url is None:
            return None
        return slo_dashboard_url(self._config.dashboard_url, slo.service, slo.id)


def _log_opened(decision: Decision) -> None:
    for incident in decision.incidents:
        if any(
            r.incident_id == incident.id and r.entry.kind == "opened" for r in decision.timeline
        ):
            log.warning(
                "incident %s opened: %s %s — %s",
                incident.id,
                incident.severity.value,
                incident.service,
                incident.summary,
            )


def _error_results(slos: Sequence[SLO], evaluated_at: float, message: str) -> list[SLOEvaluation]:
    return [
        SLOEvaluation(slo=slo, evaluated_at=evaluated_at, status="error", error=message)
        for slo in slos
    ]


def _status_summary(results: Sequence[SLOEvaluation]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
