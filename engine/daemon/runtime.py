"""The running daemon: the object the scheduler drives and the HTTP API reads (the contract
is in docs/daemon.md, "The Runtime").

It holds what a running daemon is made of (wired by `engine.daemon.builder`), runs its cycles
(`engine.daemon.cycle`), its jobs (timer ticks, waking delivery, shutdown flush) and the
API's reads and incident/silence mutations.

Thread-safety: the scheduler's threads run cycles and timer ticks; one worker thread per
receiver delivers the outbox (`engine.notify.workers`), woken right after a cycle or tick
that enqueued notifications and by the delivery job; uvicorn's threads read results and
mutate incidents. Engine calls and their store writes happen under one lock, so a decision
is always applied to the state it was computed from; results are swapped in as a whole.
No receiver is ever called under that lock or from a cycle.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context

from engine.daemon.budgets import DaemonBudgets
from engine.daemon.builder import build_runtime, telemetry_from_config
from engine.daemon.config import DaemonConfig
from engine.daemon.cycle import CycleReport, EvaluationCycle
from engine.daemon.replicas import LEADER_ORIGINS
from engine.daemon.response import IncidentResponse
from engine.daemon.specs import SpecsInvalid
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource
from engine.incidents.engine import IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity, iso
from engine.incidents.silences import Matcher, MatcherError
from engine.incidents.state import Decision
from engine.notify.base import Notifier
from engine.notify.delivery import DeliveryReport
from engine.notify.workers import ReceiverWorkers
from engine.redact import redact
from engine.store.apply import apply_with_retry
from engine.store.base import StaleStateError, StoreError
from engine.store.leases import Fence, FencedOut
from engine.telemetry import Telemetry

__all__ = ["CycleReport", "Runtime", "SpecsInvalid", "telemetry_from_config"]

log = logging.getLogger(__name__)

# A decision refused as stale is recomputed from the reloaded state this many times.
_STALE_RETRIES = 3
# Decisions of these origins wake the delivery workers at once (pages must not wait for the
# delivery job); API changes (acks, comments) go out with the next delivery job.
_WAKING_ORIGINS = frozenset({"cycle", "tick"})


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


class Runtime(IncidentResponse):
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
        # Replicas on PostgreSQL (docs/replicas.md); None for SQLite.
        self.replicas, self._fleet = parts.replicas, parts.fleet
        # API changes keep their Idempotency-Keys in the store (shared with other replicas).
        self.idempotency_keys = self.store.idempotency_keys()
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
            fleet=parts.fleet,
            maintenance=parts.maintenance,
        )
        self.maintenance = parts.maintenance  # the API's windows (engine/api/routers)
        self._delivery = ReceiverWorkers(
            self.deliverer,
            tracer=self._tracer,
            open_incidents=self._open_incidents,
            on_report=self._delivered,
        )
        self._delivery.start()

        meter = self.telemetry.meter
        self.metrics.attach(self.slo_results, self._open_counts, self._outbox_counts, meter)
        self.metrics.attach_anomalies(self.anomalies.states, meter)
        self.metrics.slos.set(len(parts.loaded.slos))
        self.metrics.specs_valid.set(1)
        self._attach_response_metrics()
        self.budgets = DaemonBudgets(self)  # policies and compliance history
        log.info(
            "runtime ready: %d SLOs from %d files, %d receivers, state in %s",
            len(parts.loaded.slos),
            len(parts.loaded.files),
            len(self.notifiers),
            getattr(self.store, "path", self.store),
        )
        if self.replicas is not None:
            self.replicas.attach_metrics(self.metrics_registry, lambda: len(parts.evaluator.slos))
            self.heartbeat()

    # ------------------------------------------------------------------ the cycle

    def run_cycle(self, now: float | None = None) -> CycleReport:
        """One evaluation cycle at `now` (default: the clock). Never raises for a failing
        source, receiver or spec file; those are reported (logs, metrics, readiness)."""
        report = self._cycle.run(now)
        self.budgets.after_cycle(report)  # policy notices (engine/daemon/budgets.py)
        return report

    def _decide(
        self, origin: str, call: Callable[[float], Decision], now: float | None = None
    ) -> Decision | None:
        """Run an engine call and persist its decision; recompute on a stale state.

        A store that cannot be written is reported (readiness) and the engine reloads what
        the store has, so the next cycle recomputes the same decision — nothing is lost,
        notifications included (their ids are deterministic). With replicas, only the
        incident leader makes the calls of `LEADER_ORIGINS`, each write fenced by its token.
        """
        fence = None
        if self.replicas is not None and origin in LEADER_ORIGINS:
            fence = self.replicas.fence()
            if fence is None:
                return None  # not the incident leader (any more)
        with self._lock:
            try:
                decision = apply_with_retry(
                    self.store,
                    self.engine,
                    lambda _engine, at: call(at),
                    self.clock,
                    at=now,
                    retries=_STALE_RETRIES,
                    apply=functools.partial(self._write, fence=fence),
                    on_stale=lambda: log.info(
                        "incident state changed underneath (CLI?): reloading and retrying"
                    ),
                )
            except FencedOut as exc:  # another replica leads now: stop, write nothing more
                assert self.replicas is not None
                self.replicas.deposed(str(exc))
                with contextlib.suppress(Exception):
                    self.engine.reset(self.store.load_state(self.clock()))
                return None
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
                self._observe_response(decision)
            if decision.notifications and origin in _WAKING_ORIGINS:
                # The current trace (a cycle's) continues in the workers' delivery spans.
                self._delivery.wake(otel_context.get_current())
            return decision

    def _write(self, decision: Decision, fence: Fence | None = None) -> None:
        """`store.apply` in its span; a failure other than a stale state (or a fenced-out
        leader) is `_WriteFailed`."""
        try:
            with self._tracer.start_as_current_span("store.apply"):
                if fence is None:
                    self.store.apply(decision)
                else:  # PostgreSQL: checked against the lease in the same transaction
                    self.store.apply(decision, fence=fence)  # type: ignore[call-arg]
        except (StaleStateError, FencedOut):
            raise
        except Exception as exc:
            raise _WriteFailed(exc) from exc

    # ------------------------------------------------------------------ jobs

    def deliver(self, now: float | None = None) -> None:
        """The delivery job: wake every receiver's worker (never waits for a receiver).
        `now` is accepted for the job signature; workers deliver at the clock's time."""
        self._delivery.wake()

    def wait_for_delivery(self, timeout: float = 10.0) -> bool:
        """Wake the workers and wait until each has finished a pass begun after this call
        (tests, tools); False if `timeout` seconds passed first."""
        return self._delivery.wait(self._delivery.wake(), timeout)

    def _delivered(self, report: DeliveryReport) -> None:
        self.metrics.delivered(report.sent, report.retrying, report.dead)

    def _open_incidents(self) -> list[Incident]:
        """For state-syncing receivers: the open incidents, read under the engine's lock."""
        with self._lock:
            return list(self.engine.state.incidents.values())

    def tick(self, now: float | None = None) -> Decision | None:
        """Incident timers between cycles: escalation, repeats, clear-timer resolution."""
        with self._tracer.start_as_current_span("incidents.tick"):
            return self._decide("tick", self.engine.tick, now)

    def flush(self, timeout: float) -> DeliveryReport:
        """Shutdown: stop the workers and deliver what is due, all receivers in parallel,
        for at most `timeout` seconds. A receiver still busy then is abandoned (its items
        stay queued for the next start)."""
        with self._tracer.start_as_current_span("notifications.flush"):
            report, busy = self._delivery.flush(timeout)
        self.metrics.delivered(report.sent, report.retrying, report.dead)
        for name in busy:
            log.warning(
                "receiver %r still busy after %.1fs: its queued notifications are delivered "
                "after restart",
                name,
                timeout,
            )
        return report

    def wait_idle(self, timeout: float) -> bool:
        """Whether no cycle is running, waiting up to `timeout` seconds for one to end."""
        return self._cycle.wait_idle(timeout)

    def heartbeat(self) -> None:
        """Replicas (the heartbeat job): membership, shard, the incident lease (fleet.py)."""
        if self._fleet is not None:
            self._fleet.heartbeat(self.clock, self._decide, self._reload_engine, self.deliver)

    def _reload_engine(self) -> None:
        with self._lock:
            self.engine.reset(self.store.load_state(self.clock()))

    def close(self, wait: float = 1.0) -> None:
        """Stop the delivery workers (waiting up to `wait` seconds for a delivery in progress:
        a hung request is abandoned), then telemetry and the store."""
        self._delivery.stop(timeout=wait)
        if self.replicas is not None:
            self.replicas.leave()  # the lease and the shard go to the others at once
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
        """This daemon's own results; with replicas, the others' published ones too."""
        results = list(self._cycle.results)
        return results if self._fleet is None else self._fleet.results(results)

    def slo_result(self, slo_id: str) -> SLOEvaluation | None:
        return next((r for r in self.slo_results() if r.slo.id == slo_id), None)

    def list_incidents(
        self, status: str | None = None, severity: str | None = None
    ) -> list[Incident]:
        """Newest first. `status` is investigating|mitigating|monitoring|resolved|review, or
        `open` (not resolved nor in review); raises ValueError for an unknown status or
        severity."""
        if severity is not None:
            try:
                severity = Severity(severity)
            except ValueError:
                raise ValueError(f"unknown severity {severity!r}: use SEV1…SEV4") from None
        if status == "open":
            found = self.store.list_incidents(None, severity)
            return [i for i in found if i.is_open]
        if status is not None:
            try:
                status = IncidentStatus(status)
            except ValueError:
                raise ValueError(
                    f"unknown status {status!r}: use open, "
                    + ", ".join(s.value for s in IncidentStatus)
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
        incidents = list(self.engine.state.incidents.values())
        replicas = self.replicas
        if replicas is not None and not replicas.leading() and replicas.store_reachable():
            # A follower's engine memory is as old as its last decision: ask the store.
            incidents = self.list_incidents("open")
        for incident in incidents:
            counts[incident.severity.value] = counts.get(incident.severity.value, 0) + 1
        return counts

    def _outbox_counts(self) -> dict[str, int]:
        if self.replicas is not None and not self.replicas.store_reachable():
            return {}  # a scrape must not wait on a store the heartbeat cannot reach
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
        if self._cycle.failure is not None:  # `source unreachable: …`, `evaluation failed: …`
            reasons.append(redact(self._cycle.failure.reason))
        if self._store_error is not None:
            reasons.append(f"store not writable: {redact(self._store_error)}")
        elif self.replicas is None and not os.access(self.state_dir, os.W_OK):
            reasons.append(f"store not writable: {self.state_dir} is not writable")
        if self.replicas is not None:
            reasons.extend(self.replicas.problems())
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
        if not incident.is_open:  # resolved, or resolved and in review
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
