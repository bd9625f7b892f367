"""The running daemon's state and its one cycle: the object the scheduler drives and the HTTP
API reads (the contract is in docs/readme/daemon.md, "The Runtime").

One cycle:

    specs changed? → reload (an invalid set is reported, the last good one kept)
    evaluate (source batches behind a circuit breaker) → anomalies (services with
    `anomaly.enabled`; failures contained) → alerts (+ "evaluation blind", + anomaly alerts)
    → IncidentEngine.observe → store.apply (one transaction, outbox included)
    → deliver the outbox → sync state-syncing receivers (Alertmanager)

Each step is a span of the cycle's trace; logs inside carry its trace id. Thread-safety: the
scheduler's threads run cycles, deliveries and timer ticks; uvicorn's threads read results and
mutate incidents. Engine calls and their store writes happen under one lock, so a decision
is always applied to the state it was computed from; results are swapped in as a whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.trace import Status, StatusCode

from engine.alerting.alerts import Alert
from engine.alerting.cycle import Blindness
from engine.alerting.links import slo_dashboard_url
from engine.daemon.anomaly import DaemonAnomalies
from engine.daemon.config import DaemonConfig, read_headers_file
from engine.daemon.metrics import DaemonMetrics
from engine.daemon.source_guard import GuardedSource
from engine.daemon.specs import SpecWatcher
from engine.evaluation.evaluator import Evaluator, sparse_fine_steps_message
from engine.evaluation.resolution import ResolutionError
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource
from engine.incidents.cycle import CycleOutcome, observe_cycle
from engine.incidents.engine import IncidentEngine, IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity, iso
from engine.incidents.silences import Matcher, MatcherError
from engine.incidents.state import Decision
from engine.notify.base import Notifier, build_notifiers
from engine.notify.delivery import Deliverer, DeliveryReport
from engine.retry import CircuitBreaker
from engine.spec.models import SLO
from engine.store.base import StaleStateError, StoreError
from engine.store.sqlite import SQLiteStore
from engine.telemetry import Telemetry, setup_telemetry

log = logging.getLogger(__name__)

# A decision refused as stale is recomputed from the reloaded state this many times.
_STALE_RETRIES = 3


class SpecsInvalid(RuntimeError):
    """The specs at start-up are invalid: there is no last good set to run on."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


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


def _error_results(slos: Sequence[SLO], evaluated_at: float, message: str) -> list[SLOEvaluation]:
    return [
        SLOEvaluation(slo=slo, evaluated_at=evaluated_at, status="error", error=message)
        for slo in slos
    ]


def _matcher(obj: dict[str, Any]) -> Matcher:
    """A matcher from the API: {name, op, value} or Alertmanager's {name, value, isRegex,
    isEqual}."""
    try:
        name, value = str(obj["name"]), str(obj["value"])
    except (KeyError, TypeError):
        raise ValueError("a matcher needs `name` and `value`") from None
    op = obj.get("op")
    if op is None:
        regex, equal = bool(obj.get("isRegex", False)), bool(obj.get("isEqual", True))
        op = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
    try:
        return Matcher(name, op, value)
    except MatcherError as exc:
        raise ValueError(str(exc)) from None


class Runtime:
    """Everything a running daemon holds. Build with a config; `close()` when done."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        clock: Callable[[], float] = time.time,
        source: EventSource | None = None,
        telemetry: Telemetry | None = None,
        notifiers: dict[str, Notifier] | None = None,
        config_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.interval = config.interval.seconds
        if telemetry is None:
            telemetry = telemetry_from_config(config)
        self.telemetry = telemetry
        self._tracer = telemetry.tracer
        self._lock = threading.RLock()  # engine + store writes
        self._cycle_lock = threading.Lock()
        self._delivery_lock = threading.Lock()

        self._specs = SpecWatcher(config.specs)
        loaded = self._specs.load()
        if loaded.errors:
            raise SpecsInvalid([str(e) for e in loaded.errors])
        if not loaded.slos:
            raise SpecsInvalid([f"no SLOs found in {', '.join(map(str, config.specs))}"])
        for warning in loaded.warnings:
            log.warning("%s", warning)
        now = clock()
        self._spec_status: dict[str, Any] = {
            "loaded_at": now,
            "checked_at": now,
            "slos": len(loaded.slos),
            "files": len(loaded.files),
            "last_error": None,
            "errors": [],
        }

        self.metrics = DaemonMetrics(telemetry.meter)
        self.metrics_registry = self.metrics.registry
        if source is None:
            from engine.source.prometheus import PrometheusSource

            source = PrometheusSource(
                config.prometheus_url,
                timeout=config.query_timeout.seconds,
                retries=config.query_retries,
                bearer_token_file=_str(config.bearer_token_file),
                basic_auth_user=config.basic_auth_user,
                basic_auth_password_file=_str(config.basic_auth_password_file),
                ca_bundle=_str(config.ca_bundle),
                client_cert=_str(config.client_cert),
                client_key=_str(config.client_key),
                batch_size=config.batch_size,
                concurrency=config.concurrency,
            )
        breaker = CircuitBreaker(
            config.source_breaker.failures,
            config.source_breaker.cooldown.seconds,
            clock=clock,
        )
        self.source = GuardedSource(source, breaker, self._tracer, self.metrics)
        try:
            self._evaluator = Evaluator(
                loaded.slos, self.source, scrape_interval=config.scrape_interval
            )
        except ResolutionError as exc:
            # The specs' windows cannot be measured at this scrape interval: nothing to run.
            raise SpecsInvalid([str(exc)]) from None
        # SLOs whose fine steps are mostly empty (scrape interval longer than assumed),
        # each logged once until it recovers; see `_check_sampling`.
        self._sparse_fine: dict[str, float] = {}
        self._spec_status["sampling"] = self._sampling_status()
        self.metrics.fine_step_seconds.set(self._evaluator.resolution.fine_step.seconds)
        # The raw source: anomaly fetches stay off the burn-rate path's breaker (see there).
        self.anomalies = DaemonAnomalies(source, loaded.slos, self._tracer, self.metrics)

        self.state_dir = Path(config.state_dir)
        self.store = SQLiteStore.in_state_dir(self.state_dir)
        self.engine = IncidentEngine(config.incident_config(), state=self.store.load_state(now))
        template_errors = self.engine.renderer.check()
        if template_errors:
            # Overrides fall back to the built-in templates at render time; say so now.
            for problem in template_errors:
                log.warning("template override: %s", problem)
        if notifiers is None:
            notifiers = build_notifiers(config.all_notifiers(), base_dir=config_dir, clock=clock)
        self.notifiers = notifiers
        self.deliverer = Deliverer(self.store, notifiers, clock=clock)

        self._results: list[SLOEvaluation] = []
        self._last_cycle_at: float | None = None
        self._last_cycle_finished: float | None = None
        self._source_error: str | None = None
        self._store_error: str | None = None
        self._failed_cycles = 0
        self._blind_since: float | None = None
        self.metrics.attach(
            self.slo_results, self._open_counts, self._outbox_counts, telemetry.meter
        )
        self.metrics.attach_anomalies(self.anomalies.states, telemetry.meter)
        self.metrics.slos.set(len(loaded.slos))
        self.metrics.specs_valid.set(1)
        log.info(
            "runtime ready: %d SLOs from %d files, %d receivers, state in %s",
            len(loaded.slos),
            len(loaded.files),
            len(notifiers),
            self.store.path,
        )

    # ------------------------------------------------------------------ the cycle

    def run_cycle(self, now: float | None = None) -> CycleReport:
        """One evaluation cycle at `now` (default: the clock). Never raises for a failing
        source, receiver or spec file; those are reported (logs, metrics, readiness)."""
        with self._cycle_lock:
            now = self.clock() if now is None else float(now)
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
            self.metrics.cycle(report.duration, outcome, self.clock())
            return report

    def _cycle(self, now: float) -> CycleReport:
        notes = self._reload_specs_if_changed(now)
        self.source.begin_cycle()
        with self._tracer.start_as_current_span("evaluate") as span:
            results = self._evaluator.evaluate(now)
            self.source.probe(now)
            source_error = self.source.cycle_failure()
            if source_error is not None:
                # Whatever the cache could still compose, the source does not answer now:
                # report every SLO as an error instead of a stale answer.
                instant = float(self._evaluator.cache.instant(now))
                results = _error_results(
                    self._evaluator.slos, instant, f"source unavailable: {source_error}"
                )
                span.set_status(Status(StatusCode.ERROR, source_error))
            span.set_attribute("slo_engine.results", len(results))
        self._results = results
        if source_error is None:
            self._check_sampling()
        self._source_error = source_error
        self.metrics.circuit_open.set(1 if self.source.circuit_open else 0)

        if source_error is None:
            if self._blind_since is not None:
                log.info("metrics source answers again after %d failed cycles", self._failed_cycles)
            self._failed_cycles, self._blind_since = 0, None
        else:
            self._failed_cycles += 1
            if self._blind_since is None:
                self._blind_since = now
            log.warning(
                "metrics source failed (%d consecutive cycles): %s",
                self._failed_cycles,
                source_error,
            )
        blind = self._failed_cycles >= self.config.blind_after_cycles
        self.metrics.blind.set(1 if blind else 0)
        self.metrics.failed_cycles.set(self._failed_cycles)
        source_ok = source_error is None and not self.source.circuit_open
        anomaly_states = self.anomalies.run(now, source_ok)

        blindness = (
            Blindness(self._blind_since, self._failed_cycles, source_error)
            if blind and self._blind_since is not None
            else None
        )
        outcomes: list[CycleOutcome] = []

        def observe(at: float) -> Decision:
            with self._tracer.start_as_current_span("policy") as span:
                outcome = observe_cycle(
                    self.engine, at, results, anomaly_states, blindness, self._dashboard
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
                for incident in decision.incidents:
                    if any(
                        r.incident_id == incident.id and r.entry.kind == "opened"
                        for r in decision.timeline
                    ):
                        log.warning(
                            "incident %s opened: %s %s — %s",
                            incident.id,
                            incident.severity.value,
                            incident.service,
                            incident.summary,
                        )

        delivery = self.deliver(now)
        self._sync(now)
        self._last_cycle_at = now
        self._last_cycle_finished = self.clock()
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

    def _dashboard(self, slo: SLO) -> str | None:
        if self.config.dashboard_url is None:
            return None
        return slo_dashboard_url(self.config.dashboard_url, slo.service, slo.id)

    def _decide(
        self, origin: str, call: Callable[[float], Decision], now: float | None = None
    ) -> Decision | None:
        """Run an engine call and persist its decision; recompute on a stale state.

        A store that cannot be written is reported (readiness) and the engine reloads what
        the store has, so the next cycle recomputes the same decision — nothing is lost,
        notifications included (their ids are deterministic).
        """
        with self._lock:
            for _ in range(_STALE_RETRIES):
                at = self.clock() if now is None else now
                decision = call(at)
                try:
                    with self._tracer.start_as_current_span("store.apply"):
                        self.store.apply(decision)
                except StaleStateError:
                    log.info("incident state changed underneath (CLI?): reloading and retrying")
                    self.engine.reset(self.store.load_state(self.clock()))
                    continue
                except Exception as exc:  # sqlite3/OS errors: report and keep running
                    self._store_error = f"{type(exc).__name__}: {exc}"
                    log.error("cannot write the incident store: %s", self._store_error)
                    # Readiness already says why if even reading fails.
                    with contextlib.suppress(Exception):
                        self.engine.reset(self.store.load_state(self.clock()))
                    return None
                self._store_error = None
                if decision.changed:
                    self.metrics.decision(origin)
                return decision
            raise StoreError("the incident state kept changing underneath; try again")

    # ------------------------------------------------------------------ jobs

    def deliver(self, now: float | None = None) -> DeliveryReport:
        """Deliver due outbox items (the delivery job; also the end of every cycle)."""
        with self._delivery_lock, self._tracer.start_as_current_span("notifications") as span:
            try:
                report = self.deliverer.run_once(now)
            except Exception as exc:  # a store hiccup must not kill the job
                log.error("outbox delivery failed: %s", exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return DeliveryReport()
            span.set_attribute("slo_engine.sent", report.sent)
            span.set_attribute("slo_engine.failed", report.retrying + report.dead)
            self.metrics.delivered(report.sent, report.retrying, report.dead)
            return report

    def _sync(self, now: float) -> None:
        if not any(hasattr(n, "sync") for n in self.notifiers.values()):
            return
        with self._delivery_lock, self._tracer.start_as_current_span("notifications.sync"):
            try:
                self.deliverer.sync(list(self.engine.state.incidents.values()), now)
            except Exception as exc:
                log.error("receiver sync failed: %s", exc)

    def tick(self, now: float | None = None) -> Decision | None:
        """Incident timers between cycles: escalation, repeats, clear-timer resolution."""
        with self._tracer.start_as_current_span("incidents.tick"):
            return self._decide("tick", self.engine.tick, now)

    def flush(self, timeout: float) -> DeliveryReport:
        """Deliver what is queued until nothing is due or `timeout` seconds pass (shutdown)."""
        with self._delivery_lock, self._tracer.start_as_current_span("notifications.flush"):
            report = self.deliverer.flush(self.clock() + timeout)
        self.metrics.delivered(report.sent, report.retrying, report.dead)
        return report

    def close(self) -> None:
        try:
            self.telemetry.tracer_provider.force_flush(5_000)
            self.telemetry.shutdown()
        finally:
            self.store.close()

    # ------------------------------------------------------------------ specs

    def _reload_specs_if_changed(self, now: float) -> list[str]:
        if not self._specs.changed():
            return []
        with self._tracer.start_as_current_span("specs.reload") as span:
            loaded = self._specs.load()
            self._spec_status["checked_at"] = now
            if loaded.errors or not loaded.slos:
                errors = [str(e) for e in loaded.errors] or ["no SLOs found in the spec files"]
                self._spec_status["last_error"] = errors[0] + (
                    f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                )
                self._spec_status["errors"] = errors
                self.metrics.spec_reload_errors.inc()
                self.metrics.specs_valid.set(0)
                span.set_status(Status(StatusCode.ERROR, errors[0]))
                for error in errors:
                    log.error("spec reload rejected, keeping the last good specs: %s", error)
                return errors
            try:
                self._evaluator.set_slos(loaded.slos)
            except ResolutionError as exc:
                # Valid specs whose windows cannot be measured at the scrape interval: same
                # treatment as invalid specs — keep evaluating the last good set.
                self._spec_status["last_error"] = str(exc)
                self._spec_status["errors"] = [str(exc)]
                self.metrics.spec_reload_errors.inc()
                self.metrics.specs_valid.set(0)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.error("spec reload rejected, keeping the last good specs: %s", exc)
                return [str(exc)]
            self._spec_status["sampling"] = self._sampling_status()
            self.metrics.fine_step_seconds.set(self._evaluator.resolution.fine_step.seconds)
            self.anomalies.set_slos(loaded.slos)
            self._spec_status.update(
                loaded_at=now,
                slos=len(loaded.slos),
                files=len(loaded.files),
                last_error=None,
                errors=[],
            )
            self.metrics.spec_reloads.inc()
            self.metrics.specs_valid.set(1)
            self.metrics.slos.set(len(loaded.slos))
            log.info("specs reloaded: %d SLOs from %d files", len(loaded.slos), len(loaded.files))
            return []

    def spec_status(self) -> dict[str, Any]:
        return dict(self._spec_status, errors=list(self._spec_status["errors"]))

    # ------------------------------------------------------------------ sampling

    def _sampling_status(self) -> dict[str, Any]:
        sparse = getattr(self, "_sparse_fine", {})
        return {
            **self._evaluator.resolution.describe(),
            "sparse_fine_steps": {k: round(v, 3) for k, v in sorted(sparse.items())},
        }

    def _check_sampling(self) -> None:
        """The safety net for a wrong `scrape_interval`: fine steps without data where the
        coarse tier has data. Reported (log once per SLO, metric, spec status), never turned
        into numbers: those windows stay "no data". Not a readiness failure — the daemon
        still evaluates everything it can, and taking it out of service would blind more."""
        sparse = self._evaluator.sparse_fine_steps()
        for slo_id in sorted(sparse.keys() - self._sparse_fine.keys()):
            log.warning(
                "%s",
                sparse_fine_steps_message(
                    slo_id, sparse[slo_id], self._evaluator.resolution, "`scrape_interval:`"
                ),
            )
        for slo_id in sorted(self._sparse_fine.keys() - sparse.keys()):
            log.info("%s: its fine evaluation steps have data again", slo_id)
        self._sparse_fine = sparse
        self.metrics.sparse_fine_steps(sparse)
        self._spec_status["sampling"] = self._sampling_status()

    # ------------------------------------------------------------------ reads (API)

    def slo_results(self) -> list[SLOEvaluation]:
        return list(self._results)

    def slo_result(self, slo_id: str) -> SLOEvaluation | None:
        return next((r for r in self._results if r.slo.id == slo_id), None)

    def list_incidents(
        self, status: str | None = None, severity: str | None = None
    ) -> list[Incident]:
        """Newest first. `status` is investigating|mitigating|resolved, or `open` (any but
        resolved); raises ValueError for an unknown status or severity."""
        if severity is not None:
            try:
                severity = Severity(severity)
            except ValueError:
                raise ValueError(f"unknown severity {severity!r}: use SEV1…SEV4") from None
        if status == "open":
            found = self.store.list_incidents(None, severity)
            return [i for i in found if i.status is not IncidentStatus.resolved]
        if status is not None:
            try:
                status = IncidentStatus(status)
            except ValueError:
                raise ValueError(
                    f"unknown status {status!r}: use open, investigating, mitigating or resolved"
                ) from None
        return self.store.list_incidents(status, severity)

    def get_incident(self, incident_id: str) -> Incident | None:
        return self.store.get_incident(incident_id)

    def customer_notice(self, incident: Incident) -> str:
        return self.engine.renderer.customer_notice(incident)

    def list_silences(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.store.list_silences(now=self.clock())]

    def _open_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for incident in list(self.engine.state.incidents.values()):
            counts[incident.severity.value] = counts.get(incident.severity.value, 0) + 1
        return counts

    def _outbox_counts(self) -> dict[str, int]:
        try:
            return self.store.counts()
        except Exception:  # a scrape must not fail on a busy store
            return {}

    def readiness(self) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        now = self.clock()
        if self._last_cycle_finished is None:
            reasons.append("no evaluation cycle has completed yet")
        else:
            age = now - self._last_cycle_finished
            if age > 3 * self.interval:
                reasons.append(
                    f"last evaluation cycle finished {age:.0f}s ago (more than 3 intervals of "
                    f"{self.config.interval})"
                )
        if self._source_error is not None:
            reasons.append(f"source unreachable: {self._source_error}")
        if self._store_error is not None:
            reasons.append(f"store not writable: {self._store_error}")
        elif not os.access(self.state_dir, os.W_OK):
            reasons.append(f"store not writable: {self.state_dir} is not writable")
        if self._spec_status["last_error"] is not None:
            reasons.append(
                f"specs invalid (still evaluating the last good set): {self._spec_status['last_error']}"
            )
        return (not reasons, reasons)

    # ------------------------------------------------------------------ mutations (API)

    def _existing_open(self, incident_id: str) -> None:
        incident = self.store.get_incident(incident_id)
        if incident is None:
            raise KeyError(f"no incident {incident_id}")
        if incident.status is IncidentStatus.resolved:
            raise ValueError(f"{incident_id} is already resolved")

    def _mutate(self, what: str, incident_id: str, call: Callable[[float], Decision]) -> Incident:
        with self._tracer.start_as_current_span(
            f"incident.{what}", attributes={"slo_engine.incident": incident_id}
        ):
            with self._lock:
                self._existing_open(incident_id)
                try:
                    decision = self._decide(what, call)
                except IncidentError as exc:
                    raise ValueError(str(exc)) from None
                if decision is None:
                    raise StoreError(f"could not record the {what}: {self._store_error}")
            incident = self.store.get_incident(incident_id)
            assert incident is not None
            log.info("%s %s", what, incident_id)
            return incident

    def acknowledge(self, incident_id: str, by: str) -> Incident:
        return self._mutate(
            "acknowledge", incident_id, lambda now: self.engine.acknowledge(now, incident_id, by)
        )

    def resolve(self, incident_id: str, by: str, note: str | None = None) -> Incident:
        return self._mutate(
            "resolve",
            incident_id,
            lambda now: self.engine.resolve(now, incident_id, by, note or ""),
        )

    def comment(self, incident_id: str, by: str, text: str) -> Incident:
        if not text or not text.strip():
            raise ValueError("a comment needs text")
        return self._mutate(
            "comment", incident_id, lambda now: self.engine.comment(now, incident_id, by, text)
        )

    def add_silence(
        self,
        matchers: list[dict[str, Any]],
        ends_at: float,
        created_by: str,
        comment: str,
        starts_at: float | None = None,
    ) -> dict[str, Any]:
        parsed = [_matcher(m) for m in matchers]
        if not parsed:
            raise ValueError("a silence needs at least one matcher (it would mute everything)")
        with self._tracer.start_as_current_span("silence.add"):
            try:
                decision = self._decide(
                    "silence",
                    lambda now: self.engine.add_silence(
                        now,
                        parsed,
                        now if starts_at is None else starts_at,
                        ends_at,
                        created_by,
                        comment,
                    ),
                )
            except (IncidentError, MatcherError) as exc:
                raise ValueError(str(exc)) from None
            if decision is None or not decision.silences_upserted:
                raise StoreError(f"could not record the silence: {self._store_error}")
            silence = decision.silences_upserted[-1]
            log.info("silence %s added by %s until %s", silence.id, created_by, iso(ends_at))
            return silence.to_json()

    def delete_silence(self, silence_id: str) -> bool:
        with self._tracer.start_as_current_span("silence.delete"):
            try:
                decision = self._decide(
                    "silence", lambda now: self.engine.expire_silence(now, silence_id)
                )
            except IncidentError:
                return False
            return decision is not None


def telemetry_from_config(config: DaemonConfig) -> Telemetry:
    t = config.telemetry
    headers = read_headers_file(t.headers_file) if t.headers_file else None
    return setup_telemetry(
        endpoint=t.otlp_endpoint,
        protocol=t.otlp_protocol,
        headers=headers,
        service_name=t.service_name,
        export_interval_s=t.export_interval.seconds,
    )


def _status_summary(results: Sequence[SLOEvaluation]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
