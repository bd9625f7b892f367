"""The daemon's view of its metrics source: a circuit breaker, a health probe and telemetry.

Why a breaker: when Prometheus is down, every cycle would otherwise spend its retries and
timeouts on it (and add load the moment it comes back). After `failures` consecutive failed
calls the breaker opens: calls fail at once with `SourceUnavailable` for `cooldown`, then one
half-open call probes; success closes it.

Why a probe: the evaluation cache fetches only when a new step completes (once a minute
with the default tiers), so a cycle may not touch the source at all. The probe (an instant
`vector(1)` query) tells, every cycle, whether the source still answers — readiness and the
"evaluation blind" meta-incident must not lag a minute behind reality.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.evaluation.source import EventSource, SourceUnavailable, StepRates
from engine.retry import BreakerState, CircuitBreaker
from engine.spec.durations import Duration
from engine.spec.models import SLO

log = logging.getLogger(__name__)
# A fetch this many steps long is history (a cold start, a gap after downtime), not the
# cycle's few new steps: it gets a log line, one per chunk, so a slow start shows progress.
HISTORY_STEPS = 100


def fetch_attributes(
    slos: Sequence[SLO], step: Duration, start: float, end: float
) -> dict[str, Any]:
    """Span attributes describing one source fetch."""
    return {
        "slo_engine.slos": len(slos),
        "slo_engine.step": str(step),
        "slo_engine.start": start,
        "slo_engine.end": end,
    }


@contextmanager
def counting_requests(source: object, span: trace.Span, metrics: Any) -> Iterator[None]:
    """Record the HTTP requests `source` made inside the block, on the span and in the
    metrics, whether the block succeeds or raises (sources count them in `http_requests`)."""
    before = _http_requests(source)
    histories = _history_slos(source)
    try:
        yield
    finally:
        after = _http_requests(source)
        if before is not None and after is not None:
            span.set_attribute("slo_engine.http_requests", after - before)
            if metrics is not None:
                metrics.source_requests(after - before)
        if metrics is not None:
            # Long fetches: remote read or its query_range fallback (engine.source.remote_read).
            for method, n in _history_slos(source).items():
                metrics.history_slos(method, n - histories.get(method, 0))


def _http_requests(source: object) -> int | None:
    value = getattr(source, "http_requests", None)
    return value if isinstance(value, int) else None


def _history_slos(source: object) -> dict[str, int]:
    value = getattr(source, "history_slos", None)
    return dict(value) if isinstance(value, dict) else {}


class GuardedSource:
    """An `EventSource` wrapper; the Runtime resets its per-cycle view with `begin_cycle()`."""

    def __init__(
        self,
        inner: EventSource,
        breaker: CircuitBreaker,
        tracer: trace.Tracer,
        metrics: Any = None,
    ) -> None:
        self.inner = inner
        self.breaker = breaker
        self._tracer = tracer
        self._metrics = metrics
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self._cycle_ok = False
        self._cycle_error: str | None = None

    # -- per cycle -----------------------------------------------------------------------

    def begin_cycle(self) -> None:
        with self._lock:
            self._cycle_ok = False
            self._cycle_error = None

    @property
    def touched(self) -> bool:
        """Whether this cycle has already talked to (or been refused by) the source."""
        return self._cycle_ok or self._cycle_error is not None

    def cycle_failure(self) -> str | None:
        """Why the source failed this cycle, or None when it answered (or was not asked)."""
        with self._lock:
            return None if self._cycle_ok else self._cycle_error

    # -- calls ---------------------------------------------------------------------------

    def _refused(self) -> SourceUnavailable:
        return SourceUnavailable(
            f"circuit breaker open after {self.breaker.consecutive_failures} consecutive "
            f"failures (probing again every {self.breaker.cooldown:g}s); last error: "
            f"{self.last_error}"
        )

    def _failed(self, message: str) -> None:
        self.breaker.record_failure()
        with self._lock:
            self.last_error = message
            self._cycle_error = message
        if self._metrics is not None:
            self._metrics.source_failure()

    def _succeeded(self) -> None:
        self.breaker.record_success()
        with self._lock:
            self._cycle_ok = True

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        with self._tracer.start_as_current_span(
            "source.batch", attributes=fetch_attributes(slos, step, start, end)
        ) as span:
            if not self.breaker.allow():
                error = self._refused()
                with self._lock:
                    self._cycle_error = str(error)
                span.set_attribute("slo_engine.circuit", "open")
                span.set_status(Status(StatusCode.ERROR, "circuit breaker open"))
                raise error
            began = time.monotonic()
            try:
                with counting_requests(self.inner, span, self._metrics):
                    rates = self.inner.fetch(slos, step, start, end)
            except SourceUnavailable as exc:
                self._failed(str(exc))
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise
            self._succeeded()
            if (end - start) >= HISTORY_STEPS * step.seconds:
                log.info(
                    "history fetched: %d SLOs, %.1f days at %s steps, in %.1fs",
                    len(slos),
                    (end - start) / 86_400,
                    step,
                    time.monotonic() - began,
                )
            span.set_attribute("slo_engine.query_errors", len(rates.errors))
            if self._metrics is not None and rates.errors:
                self._metrics.query_errors(len(rates.errors))
            return rates

    def probe(self, at: float) -> None:
        """Ask the source whether it answers (only if this cycle has not already)."""
        if self.touched:
            return
        query = getattr(self.inner, "query_instant", None)
        if query is None:
            return  # a source without a cheap probe (offline file): nothing to learn
        with self._tracer.start_as_current_span("source.probe") as span:
            if not self.breaker.allow():
                with self._lock:
                    self._cycle_error = str(self._refused())
                span.set_attribute("slo_engine.circuit", "open")
                return
            try:
                with counting_requests(self.inner, span, self._metrics):
                    query("vector(1)", at)
            except Exception as exc:  # the source's own errors are private classes
                message = str(exc) or type(exc).__name__
                self._failed(message)
                span.set_status(Status(StatusCode.ERROR, message))
            else:
                self._succeeded()

    @property
    def circuit_open(self) -> bool:
        return self.breaker.state is BreakerState.open
