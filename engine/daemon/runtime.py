"""The running daemon: the object the scheduler drives and the HTTP API reads (the contract
is in docs/daemon.md, "The Runtime").

It holds what a running daemon is made of (wired by `engine.daemon.builder`), runs its cycles
(`engine.daemon.cycle`), its jobs (delivery, timer ticks, shutdown flush) and the API's
reads and incident/silence mutations.

Thread-safety: the scheduler's threads run cycles, deliveries and timer ticks; uvicorn's
threads read results and mutate incidents. Engine calls and their store writes happen under
one lock, so a decision is always applied to the state it was computed from; results are
swapped in as a whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.trace import Status, StatusCode

from engine.daemon.builder import build_runtime, telemetry_from_config
from engine.daemon.config import DaemonConfig
from engine.daemon.cycle import CycleReport, EvaluationCycle
from engine.daemon.specs import SpecsInvalid
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource
from engine.incidents.engine import IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity, iso
from engine.incidents.silences import Matcher, MatcherError
from engine.incidents.state import Decision
from engine.notify.base import Notifier
from engine.notify.delivery import DeliveryReport
from engine.store.apply import apply_with_retry
from engine.store.base import StaleStateError, StoreError
from engine.telemetry import Telemetry

__all__ = ["CycleReport", "Runtime", "SpecsInvalid", "telemetry_from_config"]

log = logging.getLogger(__name__)

# A decision refused as stale is recomputed from the reloaded state this many times.
_STALE_RETRIES = 3


class _WriteFailed(Exception):
    """The store refused a decision for another reason than a stale state (sqlite3/OS)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


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
        self._lock = threading.RLock()  # engine + store writes
        self._delivery_lock = threading.Lock()
        parts = build_runtime(
            config,
            clock=clock,
            source=source,
            telemetry=telemetry,
            notifiers=notifiers,
            config_dir=config_dir,
        )
        self.telemetry = parts.telemetry
        self._tracer = parts.tracer
        self.metrics = parts.metrics
        self.metrics_registry = self.metrics.registry
        self.source = parts.source
        self.anomalies = parts.anomalies
        self._specs = parts.specs
        self.state_dir = Path(config.state_dir)
        self.store = parts.store
        self.engine = parts.engine
        self.notifiers = parts.notifiers
        self.deliverer = parts.deliverer
        self._store_error: str | None = None
        self._cycle = EvaluationCycle(
            config,
            clock,
            self._tracer,
            self.metrics,
            specs=parts.specs,
            source=parts.source,
            evaluator=parts.evaluator,
            anomalies=parts.anomalies,
            engine=parts.engine,
            decide=self._decide,
            deliver=self.deliver,
            sync=self._sync,
        )

        meter = self.telemetry.meter
        self.metrics.attach(self.slo_results, self._open_counts, self._outbox_counts, meter)
        self.metrics.attach_anomalies(self.anomalies.states, meter)
        self.metrics.slos.set(len(parts.loaded.slos))
        self.metrics.specs_valid.set(1)
        log.info(
            "runtime ready: %d SLOs from %d files, %d receivers, state in %s",
            len(parts.loaded.slos),
            len(parts.loaded.files),
            len(self.notifiers),
            self.store.path,
        )

    # ------------------------------------------------------------------ the cycle

    def run_cycle(self, now: float | None = None) -> CycleReport:
        """One evaluation cycle at `now` (default: the clock). Never raises for a failing
        source, receiver or spec file; those are reported (logs, metrics, readiness)."""
        return self._cycle.run(now)

    def _decide(
        self, origin: str, call: Callable[[float], Decision], now: float | None = None
    ) -> Decision | None:
        """Run an engine call and persist its decision; recompute on a stale state.

        A store that cannot be written is reported (readiness) and the engine reloads what
        the store has, so the next cycle recomputes the same decision — nothing is lost,
        notifications included (their ids are deterministic).
        """
        with self._lock:
            try:
                decision = apply_with_retry(
                    self.store,
                    self.engine,
                    lambda _engine, at: call(at),
                    self.clock,
                    at=now,
                    retries=_STALE_RETRIES,
                    apply=self._write,
                    on_stale=lambda: log.info(
                        "incident state changed underneath (CLI?): reloading and retrying"
                    ),
                )
            except _WriteFailed as failed:  # sqlite3/OS errors: report and keep running
                exc = failed.error
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

    def _write(self, decision: Decision) -> None:
        """`store.apply` in its span; a failure other than a stale state is `_WriteFailed`."""
        try:
            with self._tracer.start_as_current_span("store.apply"):
                self.store.apply(decision)
        except StaleStateError:
            raise
        except Exception as exc:
            raise _WriteFailed(exc) from exc

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

    def spec_status(self) -> dict[str, Any]:
        return self._specs.status()

    # ------------------------------------------------------------------ reads (API)

    def slo_results(self) -> list[SLOEvaluation]:
        return list(self._cycle.results)

    def slo_result(self, slo_id: str) -> SLOEvaluation | None:
        return next((r for r in self._cycle.results if r.slo.id == slo_id), None)

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
        finished = self._cycle.last_finished
        if finished is None:
            reasons.append("no evaluation cycle has completed yet")
        else:
            age = now - finished
            if age > 3 * self.interval:
                reasons.append(
                    f"last evaluation cycle finished {age:.0f}s ago (more than 3 intervals of "
                    f"{self.config.interval})"
                )
        if self._cycle.source_error is not None:
            reasons.append(f"source unreachable: {self._cycle.source_error}")
        if self._store_error is not None:
            reasons.append(f"store not writable: {self._store_error}")
        elif not os.access(self.state_dir, os.W_OK):
            reasons.append(f"store not writable: {self.state_dir} is not writable")
        if self._specs.last_error is not None:
            reasons.append(
                f"specs invalid (still evaluating the last good set): {self._specs.last_error}"
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
