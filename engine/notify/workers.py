"""Delivery off the evaluation path: one worker thread per receiver.

The evaluation cycle only writes notifications into the outbox (in the transaction of its
decision) and wakes the workers; it never waits for a receiver. Each receiver has its own
worker, which delivers only that receiver's outbox items and, for a state-syncing receiver
(Alertmanager), re-posts the open incidents. So a receiver that hangs costs its own worker
and nothing else: the cycle keeps its interval and the other receivers keep delivering.

- Each receiver's queue is its rows in the outbox — durable, so nothing is lost to a crash
  or a restart. A pass takes at most the deliverer's `batch_size` (100) of them, in order,
  so memory stays bounded whatever a receiver does; the rest waits for the next pass.
- Wake-ups coalesce: waking a busy worker makes it run one more pass when it is done, never
  a backlog of passes.
- Each request has a total deadline (engine/notify/exchange.py), a failed one is retried
  with backoff, and the receiver's circuit breaker stops a dead receiver from eating its
  worker's time — all as for any delivery (engine/notify/delivery.py).
- A receiver is only ever delivered by one thread at a time (its worker, or the shutdown
  flush once the worker is done), which is what keeps a notification to exactly one send
  per receiver.

A pass is traced as `notifications` (with the receiver); when a cycle woke the workers, the
pass continues that cycle's trace, so a page's decision and its delivery are one trace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.notify.base import StateSyncingNotifier
from engine.notify.delivery import Deliverer, DeliveryReport
from engine.redact import redact

log = logging.getLogger(__name__)


class _Worker:
    def __init__(self, name: str, syncs: bool) -> None:
        self.name = name
        self.syncs = syncs
        # Held for a pass (or the shutdown flush): one sender per receiver at a time.
        self.busy = threading.Lock()
        self.done = 0  # the wake-up generation the last finished pass started at
        # The trace the next pass continues (a waking cycle's); taken by that pass.
        self.context: otel_context.Context | None = None
        self.thread: threading.Thread | None = None


class ReceiverWorkers:
    """The delivery workers of one deliverer. `start()`, `wake()` after enqueuing, `flush()`
    at shutdown, `stop()` when done."""

    def __init__(
        self,
        deliverer: Deliverer,
        *,
        tracer: trace.Tracer,
        open_incidents: Callable[[], Sequence[Any]],
        on_report: Callable[[DeliveryReport], None],
    ) -> None:
        self._deliverer = deliverer
        self._tracer = tracer
        self._open_incidents = open_incidents
        self._on_report = on_report
        self._cond = threading.Condition()
        self._generation = 0
        self._stopping = False
        self._workers = {
            name: _Worker(name, isinstance(notifier, StateSyncingNotifier))
            for name, notifier in deliverer.notifiers.items()
        }

    def start(self) -> None:
        """Start the workers; each begins with a pass (what a previous run left queued)."""
        self.wake()
        for worker in self._workers.values():
            worker.thread = threading.Thread(
                target=self._loop, args=(worker,), name=f"deliver-{worker.name}", daemon=True
            )
            worker.thread.start()

    def wake(self, context: otel_context.Context | None = None) -> int:
        """Ask every worker for a pass (now, or right after its current one). Returns a
        ticket for `wait`. `context`: the trace the passes continue (the waking cycle's); a
        wake-up without one leaves a pending one in place."""
        with self._cond:
            self._generation += 1
            if context is not None:
                for worker in self._workers.values():
                    worker.context = context
            self._cond.notify_all()
            return self._generation

    def wait(self, ticket: int, timeout: float) -> bool:
        """Whether every worker finished a pass begun after `wake()` returned `ticket`,
        within `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopping or all(w.done >= ticket for w in self._workers.values()),
                timeout,
            )

    def stop(self, timeout: float = 0.0) -> None:
        """No more passes; wait up to `timeout` seconds for the running ones."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        until = time.monotonic() + timeout
        for worker in self._workers.values():
            if worker.thread is not None:
                worker.thread.join(max(0.0, until - time.monotonic()))

    # -- a worker -------------------------------------------------------------------------

    def _loop(self, worker: _Worker) -> None:
        seen = 0
        while True:
            with self._cond:
                while not self._stopping and self._generation <= seen:
                    self._cond.wait()
                if self._stopping:
                    return
                seen, context, worker.context = self._generation, worker.context, None
            with worker.busy:
                self._pass(worker, context)
            with self._cond:
                worker.done = seen
                self._cond.notify_all()

    def _pass(self, worker: _Worker, context: otel_context.Context | None) -> None:
        with self._tracer.start_as_current_span(
            "notifications", context=context, attributes={"slo_engine.receiver": worker.name}
        ) as span:
            try:
                report = self._deliverer.run_once(receiver=worker.name)
            except Exception as exc:  # a store hiccup must not kill the worker
                log.error("outbox delivery to %r failed: %s", worker.name, redact(str(exc)))
                span.set_status(Status(StatusCode.ERROR, redact(str(exc))))
                return
            span.set_attribute("slo_engine.sent", report.sent)
            span.set_attribute("slo_engine.failed", report.retrying + report.dead)
            self._on_report(report)
            if worker.syncs:
                self._sync(worker.name)

    def _sync(self, name: str) -> None:
        with self._tracer.start_as_current_span("notifications.sync"):
            try:
                self._deliverer.sync(self._open_incidents(), receiver=name)
            except Exception as exc:
                log.error("receiver sync of %r failed: %s", name, redact(str(exc)))

    # -- shutdown -------------------------------------------------------------------------

    def flush(self, timeout: float) -> tuple[DeliveryReport, list[str]]:
        """Stop the workers and deliver what is due, every receiver in parallel, for at most
        `timeout` seconds. Returns what was delivered and the receivers still busy at the
        deadline (a hung request is abandoned; its item stays queued for the next start)."""
        self.stop()
        until = time.monotonic() + timeout
        deadline = self._deliverer.clock() + timeout
        reports: dict[str, DeliveryReport] = {}  # receivers whose flush finished in time
        threads = [
            threading.Thread(
                target=self._flush_one,
                args=(worker, deadline, until, reports),
                name=f"flush-{worker.name}",
                daemon=True,
            )
            for worker in self._workers.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, until - time.monotonic()))
        total = DeliveryReport()
        done = dict(reports)
        for report in done.values():
            total.add(report)
        return total, [name for name in self._workers if name not in done]

    def _flush_one(
        self, worker: _Worker, deadline: float, until: float, reports: dict[str, DeliveryReport]
    ) -> None:
        # The worker may be in the middle of a request: wait for it, not beside it.
        if not worker.busy.acquire(timeout=max(0.0, until - time.monotonic())):
            return
        try:
            report = self._deliverer.flush(deadline, receiver=worker.name)
            if time.monotonic() <= until:
                reports[worker.name] = report
        except Exception as exc:  # the store may be closing under an abandoned flush
            log.debug("flush of %r stopped: %s", worker.name, redact(str(exc)))
        finally:
            worker.busy.release()
