"""The outbox worker: moves queued notifications to their receivers, at least once.

The incident engine never talks to a receiver. It writes notifications into the outbox in
the same transaction as the incident change; this worker delivers them afterwards. So a
crash can cost a delay or a duplicate delivery, never a lost page:

- crash before the send → the row is still pending and goes out after restart;
- crash after the send but before `mark_sent` → it is sent again with the same
  notification id (Idempotency-Key) and the same dedup_key (= incident id), which
  PagerDuty, Alertmanager and well-behaved webhook receivers fold into what they have.

Within one (receiver, dedup_key) the order matters — a `resolve` overtaking its
`trigger` would re-open the page. While an item of a pair is pending, later items of that
pair are held (not attempted, no attempt spent) until it is delivered or dead-lettered.

Every method takes an optional `receiver`: the daemon runs one worker per receiver
(engine/notify/workers.py), each delivering only its own receiver's items, so a receiver
that hangs holds up nobody else. Two callers must never deliver the same receiver at once
(the workers make sure of it); different receivers in parallel are safe.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.notify.base import (
    Clock,
    DeliveryError,
    Notifier,
    PermanentDeliveryError,
    RetryableDeliveryError,
    StateSyncingNotifier,
)
from engine.retry import Backoff, CircuitBreaker
from engine.store.base import Outbox, OutboxItem

log = logging.getLogger(__name__)

# Ids of items this process already delivered, remembered to refuse a second send even if a
# store hands one back (e.g. a mark_sent that failed to commit). Bounded: the store's
# `sent` state is the durable record; this is the in-process safety net.
_RECENTLY_SENT = 10_000


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0  # failed, rescheduled
    dead: int = 0  # failed for good (permanent error, retries exhausted, unknown receiver)
    deferred: int = 0  # not attempted: breaker open or an earlier item of the incident pending
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (item id, receiver, error)

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.dead

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        self.deferred += other.deferred
        self.errors.extend(other.errors)


class Deliverer:
    """Delivers due outbox items; one Deliverer per store (not safe across replicas)."""

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        clock: Clock = time.time,
        backoff: Backoff | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        *,
        batch_size: int = 100,
        scan_limit: int = 5000,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.breakers: dict[str, CircuitBreaker] = dict(breakers or {})
        for name in self.notifiers:
            self.breakers.setdefault(
                name, CircuitBreaker(breaker_threshold, breaker_cooldown, clock=clock)
            )
        self.batch_size = batch_size
        self.scan_limit = scan_limit
        self._recent: deque[str] = deque(maxlen=_RECENTLY_SENT)
        self._recent_set: set[str] = set()
        self._recent_lock = threading.Lock()  # receivers' workers share the memory

    def _remember_sent(self, item_id: str) -> None:
        with self._recent_lock:
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(item_id)
            self._recent_set.add(item_id)

    def _sent_already(self, item_id: str) -> bool:
        with self._recent_lock:
            return item_id in self._recent_set

    def run_once(
        self,
        now: float | None = None,
        *,
        deadline: float | None = None,
        receiver: str | None = None,
    ) -> DeliveryReport:
        """Try every due item (of `receiver`, or of all) once. Returns what happened; never
        raises for a receiver."""
        now = self.clock() if now is None else now
        report = DeliveryReport()
        held: set[tuple[str, str]] = set()
        for item in self._batch(now, report, receiver):
            if deadline is not None and self.clock() >= deadline:
                break
            pair = (item.receiver, item.notification.dedup_key)
            if pair in held:
                report.deferred += 1
                continue
            if self._sent_already(item.id):
                # Delivered by this process already; only the bookkeeping is missing.
                self.outbox.mark_sent(item.id, now)
                continue
            self._deliver(item, now, report, held, pair)
        return report

    def _batch(
        self, now: float, report: DeliveryReport, receiver: str | None = None
    ) -> list[OutboxItem]:
        """Due items (of `receiver`, or of all) whose (receiver, dedup_key) has no older item
        still pending.

        Reads every pending item (`due(inf)`), not just the due ones, because an older item
        waiting on backoff must hold back its successors — also right after a restart, so
        this is derived from the outbox each time rather than remembered in memory.
        """
        pending = self.outbox.due(math.inf, self.scan_limit)
        batch: list[OutboxItem] = []
        open_pairs: set[tuple[str, str]] = set()  # head due: successors may follow in order
        closed_pairs: set[tuple[str, str]] = set()  # head (or a predecessor) not due
        for item in pending:
            if receiver is not None and item.receiver != receiver:
                continue
            pair = (item.receiver, item.notification.dedup_key)
            if pair in closed_pairs:
                if item.next_attempt_at <= now:
                    report.deferred += 1
                continue
            if item.next_attempt_at > now:
                closed_pairs.add(pair)
                continue
            if pair not in open_pairs and len(batch) >= self.batch_size:
                continue
            open_pairs.add(pair)
            batch.append(item)
        return _fewest_attempts_first(batch)

    def _deliver(
        self,
        item: OutboxItem,
        now: float,
        report: DeliveryReport,
        held: set[tuple[str, str]],
        pair: tuple[str, str],
    ) -> None:
        notifier = self.notifiers.get(item.receiver)
        if notifier is None:
            error = f"no receiver named {item.receiver!r} is configured"
            self._dead(item, now, error, report)
            return
        breaker = self.breakers[item.receiver]
        if not breaker.allow():
            held.add(pair)
            report.deferred += 1
            return
        try:
            notifier.send(item.notification)
        except RetryableDeliveryError as exc:
            breaker.record_failure()
            held.add(pair)
            self._retry(item, now, str(exc), exc.retry_after, report)
        except PermanentDeliveryError as exc:
            # The receiver answered, so it is up: this says nothing against the breaker.
            breaker.record_success()
            self._dead(item, now, str(exc), report)
        except Exception as exc:
            # A bug in a notifier, not a receiver verdict. Keep the item and retry; log the
            # type only, since the message of an unknown exception may quote a secret.
            breaker.record_failure()
            held.add(pair)
            log.error("notifier %r crashed on %s: %s", item.receiver, item.id, type(exc).__name__)
            self._retry(item, now, f"internal error: {type(exc).__name__}", None, report)
        else:
            # Remembered first: should the mark_sent commit fail, this process still never
            # sends the item again (see _RECENTLY_SENT).
            self._remember_sent(item.id)
            self.outbox.mark_sent(item.id, now)
            breaker.record_success()
            report.sent += 1
            log.info(
                "delivered %s (%s %s) to %r after %d attempt(s)",
                item.id,
                item.notification.event,
                item.notification.dedup_key,
                item.receiver,
                item.attempts + 1,
            )

    def _retry(
        self,
        item: OutboxItem,
        now: float,
        error: str,
        retry_after: float | None,
        report: DeliveryReport,
    ) -> None:
        attempts = item.attempts + 1
        next_at = self.backoff.next_attempt_at(attempts, now, item.created_at, retry_after)
        self.outbox.mark_failed(item.id, now, next_at, error)
        report.errors.append((item.id, item.receiver, error))
        if next_at is None:
            report.dead += 1
            log.error(
                "giving up on %s to %r after %d attempt(s): %s",
                item.id,
                item.receiver,
                attempts,
                error,
            )
        else:
            report.retrying += 1
            log.warning(
                "delivery of %s to %r failed (attempt %d), retrying in %.1fs: %s",
                item.id,
                item.receiver,
                attempts,
                next_at - now,
                error,
            )

    def _dead(self, item: OutboxItem, now: float, error: str, report: DeliveryReport) -> None:
        self.outbox.mark_failed(item.id, now, None, error)
        report.dead += 1
        report.errors.append((item.id, item.receiver, error))
        log.error("dead-lettered %s to %r: %s", item.id, item.receiver, error)

    def sync(
        self,
        open_incidents: Iterable[Any],
        now: float | None = None,
        *,
        receiver: str | None = None,
    ) -> dict[str, str]:
        """Give every state-syncing receiver (Alertmanager; or only `receiver`) the current
        open incidents; call regularly. Returns receiver → "ok" | "skipped" | the error; never
        raises for a receiver (its breaker is honoured and fed like for outbox deliveries)."""
        now = self.clock() if now is None else now
        incidents = list(open_incidents)
        outcome: dict[str, str] = {}
        for name, notifier in self.notifiers.items():
            if receiver is not None and name != receiver:
                continue
            if not isinstance(notifier, StateSyncingNotifier):
                continue
            breaker = self.breakers[name]
            if not breaker.allow():
                outcome[name] = "skipped"
                continue
            try:
                notifier.sync(incidents, now)
            except DeliveryError as exc:
                if isinstance(exc, PermanentDeliveryError):
                    breaker.record_success()  # it answered; the request was at fault
                else:
                    breaker.record_failure()
                outcome[name] = str(exc)
                log.warning("sync of %r failed: %s", name, exc)
            else:
                breaker.record_success()
                outcome[name] = "ok"
        return outcome

    def flush(self, deadline: float, *, receiver: str | None = None) -> DeliveryReport:
        """Deliver what is due (of `receiver`, or of all) until nothing is left to try or
        `deadline` (clock time) passes; for shutdown. Items waiting on backoff stay queued
        for the next start."""
        total = DeliveryReport()
        while self.clock() < deadline:
            report = self.run_once(deadline=deadline, receiver=receiver)
            total.add(report)
            if report.attempted == 0:
                break
        return total


def _fewest_attempts_first(items: list[OutboxItem]) -> list[OutboxItem]:
    """Order a batch so each (receiver, dedup_key) keeps its own order, but pairs whose
    head has been tried least go first.

    Why: while a receiver is down, the breaker lets one trial through per cool-down. If
    that were always the oldest item, one notification would absorb every failed probe
    and be dead-lettered after max_attempts while younger ones were never tried. It also
    puts fresh pages ahead of long-failing ones once the receiver recovers.
    """
    groups: dict[tuple[str, str], list[OutboxItem]] = {}
    for item in items:
        groups.setdefault((item.receiver, item.notification.dedup_key), []).append(item)
    ordered = sorted(groups.values(), key=lambda group: group[0].attempts)  # stable
    return [item for group in ordered for item in group]
