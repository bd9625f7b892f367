"""The daemon's own metrics: Prometheus exposition (/metrics) and the same facts over OTel.

Per-SLO series are produced at scrape time from the latest cycle's results by a custom
collector, so an SLO removed by a spec reload disappears from /metrics at once and a scrape
never sees a half-updated set. Counters and the cycle histogram are ordinary
prometheus_client metrics, mirrored to OTel instruments for the OTLP pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry import metrics as otel_metrics
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.anomaly.live import AnomalyState
from engine.daemon.anomaly_metrics import AnomalyCollector
from engine.evaluation.result import SLOEvaluation
from engine.telemetry import build_info

STATUSES = ("ok", "ticket", "page", "exhausted", "no_data", "error")
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
# Cycle durations: a warm cycle takes milliseconds, a cold start over 30 days seconds.
CYCLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _SLOCollector(Collector):
    """slo_engine_slo_* gauges from a snapshot of the latest results."""

    def __init__(
        self,
        results: Callable[[], Sequence[SLOEvaluation]],
        open_incidents: Callable[[], dict[str, int]],
        outbox: Callable[[], dict[str, int]],
    ) -> None:
        self._results = results
        self._open = open_incidents
        self._outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        results = list(self._results())
        burn = GaugeMetricFamily(
            "slo_engine_slo_burn_rate",
            "Error budget burn rate over each window (1 = on budget); absent when no data.",
            labels=["slo", "service", "window"],
        )
        ratio = GaugeMetricFamily(
            "slo_engine_slo_error_ratio",
            "Bad events / total events over each window; absent when no data.",
            labels=["slo", "service", "window"],
        )
        budget = GaugeMetricFamily(
            "slo_engine_slo_error_budget_remaining_ratio",
            "Share of the period's error budget left (1 = untouched, < 0 = overspent).",
            labels=["slo", "service"],
        )
        status = GaugeMetricFamily(
            "slo_engine_slo_status",
            "1 for the SLO's current status, 0 for the others.",
            labels=["slo", "service", "status"],
        )
        for result in results:
            slo = result.slo
            for window, value in sorted(result.windows.items()):
                if value.burn_rate is not None:
                    burn.add_metric([slo.id, slo.service, str(window)], value.burn_rate)
                if value.error_ratio is not None:
                    ratio.add_metric([slo.id, slo.service, str(window)], value.error_ratio)
            if result.error_budget_remaining is not None:
                budget.add_metric([slo.id, slo.service], result.error_budget_remaining)
            for name in STATUSES:
                status.add_metric(
                    [slo.id, slo.service, name], 1.0 if result.status == name else 0.0
                )
        yield burn
        yield ratio
        yield budget
        yield status

        incidents = GaugeMetricFamily(
            "slo_engine_open_incidents", "Open incidents by severity.", labels=["severity"]
        )
        counts = self._open()
        for severity in SEVERITIES:
            incidents.add_metric([severity], float(counts.get(severity, 0)))
        yield incidents

        outbox = GaugeMetricFamily(
            "slo_engine_notifications_queued",
            "Outbox rows by state: pending (to deliver), dead (given up).",
            labels=["state"],
        )
        queued = self._outbox()
        for state in ("pending", "dead"):
            outbox.add_metric([state], float(queued.get(state, 0)))
        yield outbox


class DaemonMetrics:
    """Every metric of the daemon; one instance per Runtime (own registry, own meter)."""

    def __init__(self, meter: otel_metrics.Meter) -> None:
        # No `*_created` series: they double every counter's series and no query reads them
        # (a process-wide switch of prometheus_client, read at scrape time).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        # Defined in exposition order (the order /metrics lists them), one concern at a time.
        self._build_metrics(self.registry)
        self._cycle_metrics(self.registry)
        self._source_metrics(self.registry)
        self._outcome_metrics(self.registry)
        self._evaluation_metrics(self.registry)
        self._otel_mirrors(meter)

    def _build_metrics(self, r: CollectorRegistry) -> None:
        """Which build runs (`slo_engine_build_info` 1, the labels say), and the process
        itself: process_* (memory, CPU, file descriptors, start time) and python_info —
        prometheus_client adds these to its default registry only, not to ours."""
        info = build_info()
        self.build_info = Gauge(
            "slo_engine_build_info",
            "Always 1; the labels name the running version, Python and source revision.",
            list(info),
            registry=r,
        )
        self.build_info.labels(**info).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def _cycle_metrics(self, r: CollectorRegistry) -> None:
        """How long cycles take, how they end, when the last one finished."""
        self.cycle_duration = Histogram(
            "slo_engine_cycle_duration_seconds",
            "Duration of one evaluation cycle (evaluate, decide, notify).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.cycles = Counter(
            "slo_engine_cycles", "Evaluation cycles by outcome.", ["outcome"], registry=r
        )
        self.last_cycle = Gauge(
            "slo_engine_last_cycle_timestamp_seconds",
            "When the last evaluation cycle finished.",
            registry=r,
        )

    def _source_metrics(self, r: CollectorRegistry) -> None:
        """The metrics source: requests, failures, rejected queries, the breaker, blindness."""
        self.source_requests_total = Counter(
            "slo_engine_source_requests",
            "HTTP requests sent to the metrics source (retries included).",
            registry=r,
        )
        self.source_failures_total = Counter(
            "slo_engine_source_failures",
            "Calls to the metrics source that failed as a whole.",
            registry=r,
        )
        self.history_slos_total = Counter(
            "slo_engine_source_history_slos",
            "SLO histories fetched over long spans (cold fill, gaps), by method: "
            "remote_read (raw samples) or query_range (its fallback).",
            ["method"],
            registry=r,
        )
        self.query_errors_total = Counter(
            "slo_engine_source_query_errors",
            "SLO queries the source rejected (PromQL errors), per SLO per call.",
            registry=r,
        )
        self.circuit_open = Gauge(
            "slo_engine_source_circuit_open",
            "1 while the circuit breaker keeps the daemon from calling the source.",
            registry=r,
        )
        self.blind = Gauge(
            "slo_engine_evaluation_blind",
            "1 while the source has failed for blind_after_cycles cycles or more.",
            registry=r,
        )
        self.failed_cycles = Gauge(
            "slo_engine_source_failed_cycles",
            "Consecutive cycles in which the source could not be read.",
            registry=r,
        )

    def _outcome_metrics(self, r: CollectorRegistry) -> None:
        """What cycles did and run on: deliveries, spec reloads and the specs in force,
        incident decisions, failed anomaly steps."""
        self.notifications = Counter(
            "slo_engine_notifications",
            "Delivery attempts by outcome: sent, failed (will retry), dead (given up).",
            ["outcome"],
            registry=r,
        )
        self.spec_reload_errors = Counter(
            "slo_engine_spec_reload_errors",
            "Spec reloads rejected because the new specs are invalid (last good set kept).",
            registry=r,
        )
        self.spec_reloads = Counter(
            "slo_engine_spec_reloads", "Spec reloads that took effect.", registry=r
        )
        self.specs_valid = Gauge(
            "slo_engine_specs_valid",
            "1 when the spec files on disk are valid and loaded, 0 when the last reload failed.",
            registry=r,
        )
        self.slos = Gauge("slo_engine_slos", "SLOs being evaluated.", registry=r)
        self.incident_decisions = Counter(
            "slo_engine_incident_decisions",
            "Incident engine decisions that changed something, by origin.",
            ["origin"],
            registry=r,
        )
        self.anomaly_failures = Counter(
            "slo_engine_anomaly_failures",
            "Anomaly detection steps that failed (last state kept; burn rates unaffected).",
            registry=r,
        )

    def _evaluation_metrics(self, r: CollectorRegistry) -> None:
        """What evaluation holds: its finest step, SLOs whose fine steps lack data, the
        anomaly history's memory."""
        self.fine_step_seconds = Gauge(
            "slo_engine_fine_step_seconds",
            "The finest evaluation step (set by scrape_interval: ≥ 2 scrapes per step).",
            registry=r,
        )
        self.fine_step_coverage = Gauge(
            "slo_engine_slo_fine_step_coverage_ratio",
            "Share of an SLO's fine evaluation steps with data where its coarse steps have "
            "data; only SLOs below 0.75 are listed (scrape interval longer than configured).",
            ["slo"],
            registry=r,
        )
        self.anomaly_history_bytes = Gauge(
            "slo_engine_anomaly_history_bytes",
            "Memory held by the anomaly detector's history windows.",
            registry=r,
        )

    def _otel_mirrors(self, meter: otel_metrics.Meter) -> None:
        """OTel mirrors of the same facts (exported via OTLP when configured)."""
        self._otel_cycle = meter.create_histogram(
            "slo_engine.cycle.duration", unit="s", description="Evaluation cycle duration"
        )
        self._otel_requests = meter.create_counter(
            "slo_engine.source.requests", description="HTTP requests to the metrics source"
        )
        self._otel_failures = meter.create_counter(
            "slo_engine.source.failures", description="Failed calls to the metrics source"
        )
        self._otel_notifications = meter.create_counter(
            "slo_engine.notifications", description="Delivery attempts by outcome"
        )
        self._otel_decisions = meter.create_counter(
            "slo_engine.incident.decisions", description="Incident engine decisions"
        )
        self._otel_anomaly_failures = meter.create_counter(
            "slo_engine.anomaly.failures", description="Failed anomaly detection steps"
        )

    def attach(
        self,
        results: Callable[[], Sequence[SLOEvaluation]],
        open_incidents: Callable[[], dict[str, int]],
        outbox: Callable[[], dict[str, int]],
        meter: otel_metrics.Meter,
    ) -> None:
        self.registry.register(_SLOCollector(results, open_incidents, outbox))

        def burn_rates(_: Any) -> Iterator[otel_metrics.Observation]:
            for result in results():
                for window, value in result.windows.items():
                    if value.burn_rate is not None:
                        yield otel_metrics.Observation(
                            value.burn_rate, {"slo": result.slo.id, "window": str(window)}
                        )

        def budgets(_: Any) -> Iterator[otel_metrics.Observation]:
            for result in results():
                if result.error_budget_remaining is not None:
                    yield otel_metrics.Observation(
                        result.error_budget_remaining, {"slo": result.slo.id}
                    )

        def incidents(_: Any) -> Iterator[otel_metrics.Observation]:
            counts = open_incidents()
            for severity in SEVERITIES:
                yield otel_metrics.Observation(counts.get(severity, 0), {"severity": severity})

        meter.create_observable_gauge("slo_engine.slo.burn_rate", callbacks=[burn_rates])
        meter.create_observable_gauge("slo_engine.slo.error_budget_remaining", callbacks=[budgets])
        meter.create_observable_gauge("slo_engine.incidents.open", callbacks=[incidents])

    def attach_anomalies(
        self, states: Callable[[], Sequence[AnomalyState]], meter: otel_metrics.Meter
    ) -> None:
        self.registry.register(AnomalyCollector(states))

        def scores(_: Any) -> Iterator[otel_metrics.Observation]:
            for state in states():
                if state.score is not None:
                    yield otel_metrics.Observation(
                        state.score, {"slo": state.series.slo.id, "signal": state.series.signal}
                    )

        def firing(_: Any) -> Iterator[otel_metrics.Observation]:
            yield otel_metrics.Observation(sum(1 for s in states() if s.active))

        meter.create_observable_gauge("slo_engine.anomaly.score", callbacks=[scores])
        meter.create_observable_gauge("slo_engine.anomalies.firing", callbacks=[firing])

    # -- recording helpers (called from the runtime and the guarded source) --------------

    def cycle(self, seconds: float, outcome: str, finished_at: float) -> None:
        self.cycle_duration.observe(seconds)
        self.cycles.labels(outcome).inc()
        self.last_cycle.set(finished_at)
        self._otel_cycle.record(seconds, {"outcome": outcome})

    def source_requests(self, n: int) -> None:
        if n > 0:
            self.source_requests_total.inc(n)
            self._otel_requests.add(n)

    def history_slos(self, method: str, n: int) -> None:
        if n > 0:
            self.history_slos_total.labels(method).inc(n)

    def source_failure(self) -> None:
        self.source_failures_total.inc()
        self._otel_failures.add(1)

    def query_errors(self, n: int) -> None:
        self.query_errors_total.inc(n)

    def delivered(self, sent: int, failed: int, dead: int) -> None:
        for outcome, n in (("sent", sent), ("failed", failed), ("dead", dead)):
            if n:
                self.notifications.labels(outcome).inc(n)
                self._otel_notifications.add(n, {"outcome": outcome})

    def sparse_fine_steps(self, coverage: dict[str, float]) -> None:
        """Replace the per-SLO fine-step coverage series with this cycle's flagged SLOs."""
        self.fine_step_coverage.clear()
        for slo_id, value in coverage.items():
            self.fine_step_coverage.labels(slo_id).set(value)

    def anomaly_failure(self) -> None:
        self.anomaly_failures.inc()
        self._otel_anomaly_failures.add(1)

    def decision(self, origin: str) -> None:
        self.incident_decisions.labels(origin).inc()
        self._otel_decisions.add(1, {"origin": origin})
