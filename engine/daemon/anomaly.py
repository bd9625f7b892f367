"""Anomaly detection inside the daemon's cycle, fenced off from the burn-rate path.

The tracker (`engine.anomaly.live`) does the work; this wrapper decides when it may
run and what happens when it fails, because anomaly work must never cost a burn-rate alert:

- It reads the *unguarded* source, and only in a cycle whose evaluation reached the source
  with the circuit breaker closed. Its failures (a five-week fill timing out, say) therefore
  never count towards the breaker, readiness or "evaluation blind", which belong to the
  burn-rate path; and it never hammers a source that path has found down.
- Any exception is logged, counted (`slo_engine_anomaly_failures_total`) and marked on the
  `anomalies` span; the cycle goes on.
- While it cannot run (source down, or its own failure) the last known active anomalies are
  passed on unchanged: missing data must not resolve an anomaly incident, the same rule the
  incident engine applies to SLOs without data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.anomaly.live import AnomalyState, LiveAnomalyTracker, fetch_step
from engine.daemon.source_guard import counting_requests, fetch_attributes
from engine.evaluation.resolution import DEFAULT_SCRAPE_INTERVAL
from engine.evaluation.source import EventSource, StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

log = logging.getLogger(__name__)


class _TracedSource:
    """The raw source with a span per call and its HTTP requests counted in the metrics."""

    def __init__(self, inner: EventSource, tracer: trace.Tracer, metrics: Any) -> None:
        self.inner = inner
        self._tracer = tracer
        self._metrics = metrics

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        with self._tracer.start_as_current_span(
            "anomalies.fetch", attributes=fetch_attributes(slos, step, start, end)
        ) as span:
            with counting_requests(self.inner, span, self._metrics):
                rates = self.inner.fetch(slos, step, start, end)
            span.set_attribute("slo_engine.query_errors", len(rates.errors))
            return rates


class DaemonAnomalies:
    """The Runtime's anomaly step: `run(now, source_ok)` → this cycle's active anomalies."""

    def __init__(
        self,
        source: EventSource,
        slos: Sequence[SLO],
        tracer: trace.Tracer,
        metrics: Any,
        scrape_interval: Duration = DEFAULT_SCRAPE_INTERVAL,
    ) -> None:
        self._tracer = tracer
        self._metrics = metrics
        # The finest step two scrapes fill (1m up to 30 s scrapes): a scrape gap then never
        # reads as a traffic drop (engine.anomaly.scoring.to_slots).
        self.tracker = LiveAnomalyTracker(
            _TracedSource(source, tracer, metrics), step=fetch_step(scrape_interval)
        )
        self._active: list[AnomalyState] = []
        self._states: tuple[AnomalyState, ...] = ()
        self.last_error: str | None = None
        self._reported: dict[str, str] = {}
        self.set_slos(slos)

    def states(self) -> tuple[AnomalyState, ...]:
        """The latest state of every watched series (read by /metrics at scrape time)."""
        return self._states

    def set_slos(self, slos: Sequence[SLO]) -> None:
        try:
            self.tracker.set_slos(slos)
        except Exception as exc:  # never let anomaly config break a reload of the SLOs
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        # Series that a reload removed stop being reported or held at once.
        keys = {s.key for s in self.tracker.series}
        self._states = tuple(s for s in self._states if s.series.key in keys)
        self._active = [a for a in self._active if a.series.key in keys]
        self._metrics.anomaly_history_bytes.set(self.tracker.nbytes)

    def run(self, now: float, source_ok: bool) -> list[AnomalyState]:
        if not self.tracker.series:
            return []
        with self._tracer.start_as_current_span("anomalies") as span:
            span.set_attribute("slo_engine.anomaly_series", len(self.tracker.series))
            if not source_ok:
                span.set_attribute("slo_engine.anomaly_skipped", "source unavailable")
                return list(self._active)
            try:
                update = self.tracker.update(now)
                active = [s for s in update.states if s.active]
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                self._failed(message)
                span.set_status(Status(StatusCode.ERROR, message))
                return list(self._active)
            self.last_error = None
            self._states, self._active = update.states, active
            self._report_query_errors(update.errors)
            self._metrics.anomaly_history_bytes.set(self.tracker.nbytes)
            span.set_attribute("slo_engine.anomaly_requests", update.requests)
            span.set_attribute("slo_engine.anomaly_warming", update.warming)
            span.set_attribute("slo_engine.anomalies_firing", len(active))
            return list(active)

    def _failed(self, message: str) -> None:
        self.last_error = message
        self._metrics.anomaly_failure()
        log.error(
            "anomaly detection failed, keeping its last state (burn-rate evaluation is "
            "unaffected): %s",
            message,
        )

    def _report_query_errors(self, errors: dict[str, str]) -> None:
        # Once per SLO and message: a broken query is retried every cycle.
        for slo_id, message in errors.items():
            if self._reported.get(slo_id) != message:
                log.warning("anomaly history query failed for %s: %s", slo_id, message)
        self._reported = dict(errors)
