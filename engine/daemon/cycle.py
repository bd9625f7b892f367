"""One evaluation cycle of the daemon:

    specs changed? → reload (an invalid set is reported, the last good one kept)
    evaluate (source batches behind a circuit breaker) → anomalies (services with
    `anomaly.enabled`; failures contained) → alerts (+ anomaly alerts, + the meta-alerts
    "evaluation blind" and "specs invalid") → IncidentEngine.observe → store.apply (one
    transaction, outbox included)

and that is all: the cycle never talks to a receiver. Notifications wait in the outbox for
the receivers' delivery workers (engine/notify/workers.py), which the Runtime wakes when a
decision enqueued some — so a slow or hanging receiver can never hold up evaluation.

Each step is a span of the cycle's trace (`slo_engine.cycle` the root); logs inside carry
its trace id. The incident side (the store write under the Runtime's lock) is the Runtime's
and handed in as a function, because API mutations and timer ticks share it.

Error texts from the source go through `redact()` here, where they enter the daemon: the
same text reaches logs, `/readyz`, the API's SLO errors and the spans.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.alerting.alerts import Alert, CycleFailure
from engine.alerting.cycle import Blindness, InvalidSpecs
from engine.alerting.links import slo_dashboard_url
from engine.anomaly.live import AnomalyState
from engine.daemon.anomaly import DaemonAnomalies
from engine.daemon.config import DaemonConfig
from engine.daemon.maintenance import DaemonMaintenance
from engine.daemon.metrics import DaemonMetrics
from engine.daemon.source_guard import GuardedSource
from engine.daemon.specs import DaemonSpecs, InvalidSpecsTimer
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.result import SLOEvaluation
from engine.incidents.cycle import CycleOutcome, observe_cycle
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import iso
from engine.incidents.state import Decision
from engine.redact import redact
from engine.spec.models import SLO
from engine.spec.yaml_safety import shown

if TYPE_CHECKING:  # imported lazily: a SQLite daemon never loads the replica machinery
    from engine.daemon.fleet import Fleet

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
    source_error: str | None  # the metrics source failed (`failure` says it all)
    blind: bool
    duration: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Why this cycle evaluated nothing: the source, or the evaluation itself.
    failure: CycleFailure | None = None

    @property
    def queued(self) -> int:
        """Notifications this cycle wrote into the outbox (delivered by the workers)."""
        return 0 if self.decision is None else len(self.decision.notifications)


class SourceHealth:
    """Consecutive failed cycles (the metrics source down, or the evaluation itself
    failing), and since when: after `blind_after_cycles` of them the daemon is "evaluation
    blind" and says so (a meta-alert naming what failed)."""

    def __init__(self, blind_after_cycles: int, metrics: DaemonMetrics) -> None:
        self._blind_after = blind_after_cycles
        self._metrics = metrics
        self.failed_cycles = 0
        self.blind_since: float | None = None

    def record(self, now: float, failure: CycleFailure | None) -> bool:
        """Count this cycle's outcome; whether the daemon is now blind."""
        if failure is None:
            if self.blind_since is not None:
                log.info("cycles evaluate again after %d failed cycles", self.failed_cycles)
            self.failed_cycles, self.blind_since = 0, None
        else:
            self.failed_cycles += 1
            if self.blind_since is None:
                self.blind_since = now
            log.warning(
                "%s (%d consecutive cycles): %s",
                "metrics source failed" if failure.kind == "source" else "evaluation failed",
                self.failed_cycles,
                failure.error if failure.kind == "source" else failure.reason,
            )
        blind = self.failed_cycles >= self._blind_after
        self._metrics.blind.set(1 if blind else 0)
        self._metrics.failed_cycles.set(self.failed_cycles)
        return blind

    def blindness(self, blind: bool, failure: CycleFailure | None) -> Blindness | None:
        if blind and self.blind_since is not None:
            return Blindness(self.blind_since, self.failed_cycles, failure)
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
        fleet: Fleet | None = None,
        maintenance: DaemonMaintenance | None = None,
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
        # One replica of several (engine.daemon.fleet): publish, and decide if leading.
        self._fleet = fleet
        # Windows declared through the API, merged into the SLOs before each evaluation.
        self._maintenance = maintenance
        self._lock = threading.Lock()
        self.health = SourceHealth(config.blind_after_cycles, metrics)
        self.invalid_specs = InvalidSpecsTimer(config.invalid_specs_grace)
        # Swapped in as a whole: readers on other threads see one cycle's results or the next.
        self.results: list[SLOEvaluation] = []
        self.failure: CycleFailure | None = None
        self.last_at: float | None = None
        self.last_finished: float | None = None

    def wait_idle(self, timeout: float) -> bool:
        """Whether no cycle is running, waiting up to `timeout` seconds for one to finish."""
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return False
        self._lock.release()
        return True

    def run(self, now: float | None = None) -> CycleReport:
        """One evaluation cycle at `now` (default: the clock). Never raises for a failing
        source or spec file; those are reported (logs, metrics, readiness)."""
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
                if report.failure is not None:
                    span.set_status(Status(StatusCode.ERROR, report.failure.reason))
                log.info(
                    "cycle at %s: %d SLOs (%s), %d alerts, %d notifications queued in %.3fs%s",
                    iso(now),
                    len(report.results),
                    _status_summary(report.results),
                    len(report.alerts),
                    report.queued,
                    report.duration,
                    f"; {report.failure.reason}" if report.failure else "",
                )
            outcome = "ok" if report.failure is None else f"{report.failure.kind}_failed"
            self._metrics.cycle(report.duration, outcome, self._clock())
            return report

    def _cycle(self, now: float) -> CycleReport:
        notes = self._specs.reload_if_changed(now)
        if self._specs.groups is not None:  # grouped SLOs: look for new groups when due
            self._specs.groups.refresh_if_due(now, not self._source.circuit_open)
        invalid_specs = self.invalid_specs.observe(now, self._specs.errors)
        if self._maintenance is not None:  # after reloads: fresh SLOs get the windows too
            self._maintenance.merge(now)
        results, failure = self._evaluate(now)
        self.results = results
        if failure is None:
            self._specs.check_sampling()
        self.failure = failure
        self._metrics.circuit_open.set(1 if self._source.circuit_open else 0)

        blind = self.health.record(now, failure)
        source_ok = failure is None and not self._source.circuit_open
        anomaly_states = self._anomalies.run(now, source_ok)
        blindness = self.health.blindness(blind, failure)
        decision, alerts = self._incidents(now, results, anomaly_states, blindness, invalid_specs)
        self.last_at = now
        self.last_finished = self._clock()
        return CycleReport(
            at=now,
            results=results,
            alerts=alerts,
            decision=decision,
            source_error=failure.error if failure and failure.kind == "source" else None,
            blind=blind,
            notes=notes,
            failure=failure,
        )

    def _evaluate(self, now: float) -> tuple[list[SLOEvaluation], CycleFailure | None]:
        """Every SLO's evaluation at `now`, and why this cycle failed (if it did)."""
        self._source.begin_cycle()
        with self._tracer.start_as_current_span("evaluate") as span:
            try:
                results = [_redacted(r) for r in self._evaluator.evaluate(now)]
            except Exception as exc:  # a bug or a value no bound caught: this cycle failed
                log.exception("evaluation failed")
                failure = CycleFailure("evaluation", redact(shown(str(exc))), type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, failure.reason))
                slos = (*self._evaluator.slos, *self._evaluator.undiscovered)
                return _error_results(slos, now, failure.reason), failure
            self._source.probe(now)
            source_error = self._source.cycle_failure()
            if source_error is None:
                span.set_attribute("slo_engine.results", len(results))
                return results, None
            failure = CycleFailure("source", redact(source_error))
            # Whatever the cache could still compose, the source does not answer now:
            # report every SLO as an error instead of a stale answer.
            instant = float(self._evaluator.cache.instant(now))
            results = _error_results(
                (*self._evaluator.slos, *self._evaluator.undiscovered),
                instant,
                f"source unavailable: {failure.error}",
            )
            span.set_status(Status(StatusCode.ERROR, failure.error))
            span.set_attribute("slo_engine.results", len(results))
        return results, failure

    def _incidents(
        self,
        now: float,
        results: list[SLOEvaluation],
        anomaly_states: list[AnomalyState],
        blindness: Blindness | None,
        invalid_specs: InvalidSpecs | None,
    ) -> tuple[Decision | None, list[Alert]]:
        """Alerts → incident engine → store; the decision (None if the store failed)."""
        outcomes: list[CycleOutcome] = []

        def observe(at: float) -> Decision:
            with self._tracer.start_as_current_span("policy") as span:
                outcome = observe_cycle(
                    self._engine,
                    at,
                    results,
                    anomaly_states,
                    blindness,
                    self._dashboard,
                    invalid_specs,
                )
                span.set_attribute("slo_engine.alerts", len(outcome.alerts))
            outcomes.append(outcome)
            return outcome.decision

        with self._tracer.start_as_current_span("incidents") as span:
            if self._fleet is not None:
                decision, alerts = self._fleet.cycle(
                    now,
                    results,
                    anomaly_states,
                    blindness,
                    self._dashboard,
                    self._decide,
                    invalid_specs,
                )
            else:
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
        return slo_dashboard_url(
            self._config.dashboard_url, slo.service, slo.base_id, slo.group_labels
        )


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


def _redacted(result: SLOEvaluation) -> SLOEvaluation:
    """The evaluation with its error text redacted (a source's message may quote a URL)."""
    if result.error is None:
        return result
    cleaned = redact(result.error)
    return result if cleaned == result.error else dataclasses.replace(result, error=cleaned)


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
