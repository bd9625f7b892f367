"""The outbox deliverer against real local HTTP receivers on a fake clock: retries with
backoff, dead letters, Retry-After, the circuit breaker, per-incident ordering, flush."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from test_notify_receiver import always, notification, receiver_fixture, snapshot  # noqa: F401

from engine.incidents.incident import Notification
from engine.incidents.state import Decision, EngineState
from engine.notify.delivery import Deliverer
from engine.notify.factory import build_notifiers
from engine.retry import Backoff, BreakerState, CircuitBreaker
from engine.store.base import OutboxItem
from engine.store.sqlite import SQLiteStore

T0 = 1_740_830_400.0


class FakeClock:
    def __init__(self, now: float = T0 + 1000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Row:
    item: OutboxItem
    status: str = "pending"  # pending | sent | dead


class MemoryOutbox:
    """The Outbox protocol kept in a dict, for driving the deliverer in isolation."""

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}

    def enqueue(self, n: Notification) -> None:
        self.rows[n.id] = _Row(OutboxItem(n.id, n.receiver, n, 0, n.created_at, n.created_at))

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        pending = [r.item for r in self.rows.values() if r.status == "pending"]
        due = [i for i in pending if i.next_attempt_at <= now]
        return sorted(due, key=lambda i: i.created_at)[:limit]

    def mark_sent(self, item_id: str, now: float) -> None:
        self.rows[item_id].status = "sent"

    def mark_failed(
        self, item_id: str, now: float, next_attempt_at: float | None, error: str
    ) -> None:
        row = self.rows[item_id]
        row.item = replace(
            row.item,
            attempts=row.item.attempts + 1,
            next_attempt_at=next_attempt_at
            if next_attempt_at is not None
            else row.item.next_attempt_at,
            last_error=error,
        )
        if next_attempt_at is None:
            row.status = "dead"

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "sent": 0, "dead": 0}
        for row in self.rows.values():
            counts[row.status] += 1
        return counts


def webhook(receiver_url: str) -> dict:
    return build_notifiers({"oncall": {"type": "webhook", "url": receiver_url + "/in"}})


def two_events_per_incident(count: int, receiver: str = "oncall") -> list[Notification]:
    out = []
    for k in range(count):
        incident = snapshot(id=f"INC-2025-{k + 1:04d}")
        out.append(
            notification("triggered", receiver=receiver, incident=incident, created_at=T0 + k)
        )
        resolved = {**incident, "status": "resolved"}
        out.append(
            notification("resolved", receiver=receiver, incident=resolved, created_at=T0 + 100 + k)
        )
    return out


def drain(
    deliverer: Deliverer, outbox, clock: FakeClock, step: float = 5, limit: int = 1000
) -> int:
    for rounds in range(limit):
        if outbox.counts()["pending"] == 0:
            return rounds
        deliverer.run_once(clock())
        clock.advance(step)
    raise AssertionError(f"outbox not drained: {outbox.counts()}")


def sqlite_outbox(path: Path, notifications: list[Notification]) -> SQLiteStore:
    """The real store, filled the way the daemon fills it: one applied decision."""
    store = SQLiteStore(path)
    store.apply(Decision(base_version=0, state=EngineState(version=1), notifications=notifications))
    return store


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_receiver_failing_for_a_while_gets_everything_exactly_once(
    tmp_path, receiver, store, request
) -> None:
    r = receiver(lambda i, _req: (500, {}, b"down") if i < 20 else (200, {}, b""))
    clock = FakeClock()
    notifications = two_events_per_incident(8)
    if store == "sqlite":
        outbox = sqlite_outbox(tmp_path / "outbox.sqlite3", notifications)
        request.addfinalizer(outbox.close)
    else:
        outbox = MemoryOutbox()
        for n in notifications:
            outbox.enqueue(n)
    deliverer = Deliverer(
        outbox, webhook(r.url), clock, Backoff(base_delay=5, max_delay=60, rng=random.Random(3))
    )
    drain(deliverer, outbox, clock)

    assert len([q for q in r.requests if q.path == "/in"]) >= 20 + len(notifications)
    keys = [q.headers["idempotency-key"] for q in r.accepted]
    assert sorted(keys) == sorted(n.id for n in notifications)  # each accepted exactly once
    assert outbox.counts() == {"pending": 0, "sent": 16, "dead": 0}
    # A resolve never overtook its trigger at the receiver.
    for k in range(8):
        events = [
            q.json()["event"]
            for q in r.accepted
            if q.json()["dedup_key"] == f"INC-2025-{k + 1:04d}"
        ]
        assert events == ["triggered", "resolved"]


def test_400_is_dead_lettered_after_one_attempt(receiver) -> None:
    r = receiver(always(400, b'{"status":"invalid event"}'))
    clock = FakeClock()
    outbox = MemoryOutbox()
    outbox.enqueue(notification())
    deliverer = Deliverer(outbox, webhook(r.url), clock, Backoff(rng=random.Random(0)))
    report = deliverer.run_once()
    assert (report.sent, report.retrying, report.dead) == (0, 0, 1)
    row = outbox.rows[notification().id]
    assert (row.status, row.item.attempts) == ("dead", 1)
    assert "HTTP 400" in (row.item.last_error or "")
    for _ in range(5):
        clock.advance(3600)
        deliverer.run_once()
    assert len(r.requests) == 1


def test_429_retry_after_is_honoured(receiver) -> None:
    r = receiver(lambda i, _req: (429, {"Retry-After": "120"}, b"") if i == 0 else (202, {}, b""))
    clock = FakeClock()
    outbox = MemoryOutbox()
    outbox.enqueue(notification())
    deliverer = Deliverer(
        outbox, webhook(r.url), clock, Backoff(base_delay=1, rng=random.Random(0))
    )
    assert deliverer.run_once().retrying == 1
    assert outbox.rows[notification().id].item.next_attempt_at == clock() + 120
    clock.advance(119)
    assert deliverer.run_once().attempted == 0
    clock.advance(1)
    assert deliverer.run_once().sent == 1
    assert len(r.requests) == 2


def test_retries_stop_at_max_attempts(receiver) -> None:
    r = receiver(always(503, b""))
    clock = FakeClock()
    outbox = MemoryOutbox()
    outbox.enqueue(notification())
    backoff = Backoff(base_delay=1, max_delay=2, max_attempts=4, rng=random.Random(0))
    deliverer = Deliverer(outbox, webhook(r.url), clock, backoff, breaker_threshold=100)
    drain(deliverer, outbox, clock, step=2)
    assert outbox.counts() == {"pending": 0, "sent": 0, "dead": 1}
    assert len(r.requests) == 4


def test_circuit_breaker_opens_defers_without_spending_attempts_and_half_opens(receiver) -> None:
    up = {"ok": False}
    r = receiver(lambda _i, _req: (200, {}, b"") if up["ok"] else (500, {}, b""))
    clock = FakeClock()
    outbox = MemoryOutbox()
    items = [
        notification(incident=snapshot(id=f"INC-2025-{k:04d}"), created_at=T0 + k) for k in range(5)
    ]
    for n in items:
        outbox.enqueue(n)
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock)
    deliverer = Deliverer(
        outbox,
        webhook(r.url),
        clock,
        Backoff(base_delay=1, max_delay=1, rng=random.Random(0)),
        {"oncall": breaker},
    )
    report = deliverer.run_once()
    assert (report.retrying, report.deferred, len(r.requests)) == (2, 3, 2)
    assert breaker.state is BreakerState.open
    assert [outbox.rows[n.id].item.attempts for n in items] == [1, 1, 0, 0, 0]

    clock.advance(10)
    assert deliverer.run_once().deferred == 5 and len(r.requests) == 2

    clock.advance(20)  # cooldown over: one trial, which fails and re-opens
    report = deliverer.run_once()
    assert (report.retrying, report.deferred, len(r.requests)) == (1, 4, 3)
    assert breaker.state is BreakerState.open

    up["ok"] = True
    clock.advance(30)
    report = deliverer.run_once()  # the trial succeeds, the breaker closes, the rest flows
    assert (report.sent, report.deferred) == (5, 0)
    assert breaker.state is BreakerState.closed
    assert sorted(q.headers["idempotency-key"] for q in r.accepted) == sorted(n.id for n in items)


def test_a_later_event_waits_for_the_earlier_one_of_the_same_incident(receiver) -> None:
    r = receiver(lambda i, _req: (500, {}, b"") if i == 0 else (200, {}, b""))
    clock = FakeClock()
    outbox = MemoryOutbox()
    triggered, resolved = two_events_per_incident(1)
    outbox.enqueue(triggered)
    outbox.enqueue(replace(resolved, created_at=T0 + 1))
    backoff = Backoff(base_delay=60, max_delay=60, rng=random.Random(5))
    deliverer = Deliverer(outbox, webhook(r.url), clock, backoff)
    report = deliverer.run_once()
    assert (report.retrying, report.deferred) == (1, 1)
    next_at = outbox.rows[triggered.id].item.next_attempt_at
    assert next_at > clock() + 1
    clock.advance(1)  # the resolve is due, its trigger is not: it must wait
    assert deliverer.run_once().deferred == 1
    # … also for a fresh deliverer, as after a restart: the order lives in the outbox.
    deliverer = Deliverer(outbox, webhook(r.url), clock, backoff)
    assert deliverer.run_once().deferred == 1
    assert len(r.requests) == 1
    clock.now = next_at
    assert deliverer.run_once().sent == 2
    assert [q.json()["event"] for q in r.accepted] == ["triggered", "resolved"]


def test_unknown_receiver_is_dead_lettered(receiver) -> None:
    r = receiver()
    outbox = MemoryOutbox()
    outbox.enqueue(notification(receiver="nobody"))
    report = Deliverer(outbox, webhook(r.url), FakeClock()).run_once()
    assert report.dead == 1
    assert "no receiver named 'nobody'" in report.errors[0][2]
    assert r.requests == []


def test_never_sends_an_item_twice_even_if_mark_sent_was_lost(receiver) -> None:
    class LosingOutbox(MemoryOutbox):
        lose_next = True

        def mark_sent(self, item_id: str, now: float) -> None:
            if self.lose_next:  # as if the commit of mark_sent never happened
                self.lose_next = False
                return
            super().mark_sent(item_id, now)

    r = receiver()
    outbox = LosingOutbox()
    outbox.enqueue(notification())
    deliverer = Deliverer(outbox, webhook(r.url), FakeClock())
    assert deliverer.run_once().sent == 1
    assert outbox.counts()["pending"] == 1
    deliverer.run_once()
    assert outbox.counts() == {"pending": 0, "sent": 1, "dead": 0}
    assert len(r.requests) == 1


def test_a_crashing_notifier_keeps_the_item(caplog) -> None:
    class Broken:
        def send(self, notification: Notification) -> None:
            raise KeyError("token=SECRET123")

    outbox = MemoryOutbox()
    outbox.enqueue(notification(receiver="hook"))
    clock = FakeClock()
    with caplog.at_level(logging.DEBUG):
        report = Deliverer(outbox, {"hook": Broken()}, clock).run_once()
    assert report.retrying == 1
    assert (
        outbox.rows[notification(receiver="hook").id].item.last_error == "internal error: KeyError"
    )
    assert "SECRET123" not in caplog.text


def test_flush_delivers_what_is_due_and_leaves_backoff_for_the_next_start(receiver) -> None:
    bad = receiver(always(503, b""))
    good = receiver(always(202, b""))
    notifiers = {
        **build_notifiers({"good": {"type": "webhook", "url": good.url}}),
        **build_notifiers({"bad": {"type": "webhook", "url": bad.url}}),
    }
    outbox = MemoryOutbox()
    for k in range(3):
        outbox.enqueue(notification(receiver="good", seq=k))
        outbox.enqueue(
            notification(receiver="bad", seq=k, incident=snapshot(id=f"INC-2025-01{k:02d}"))
        )
    clock = FakeClock()
    deliverer = Deliverer(outbox, notifiers, clock, Backoff(base_delay=30, rng=random.Random(1)))
    report = deliverer.flush(deadline=clock() + 10)
    assert report.sent == 3
    assert report.retrying == 3
    assert outbox.counts() == {"pending": 3, "sent": 3, "dead": 0}


def test_delivery_logs_never_show_secrets(tmp_path: Path, receiver, caplog) -> None:
    key = "PD-ROUTING-KEY-abcdef123456"
    path = tmp_path / "pd.key"
    path.write_text(key)
    path.chmod(0o600)
    r = receiver(lambda _i, req: (400, {}, req.body))  # echoes the request, key included
    notifiers = build_notifiers(
        {"oncall": {"type": "pagerduty", "routing_key_file": str(path), "url": r.url}}
    )
    outbox = MemoryOutbox()
    outbox.enqueue(notification())
    with caplog.at_level(logging.DEBUG):
        report = Deliverer(outbox, notifiers, FakeClock()).run_once()
    assert report.dead == 1
    assert "dead-lettered" in caplog.text
    assert key not in caplog.text
    assert key not in (outbox.rows[notification().id].item.last_error or "")


def test_breaker_probes_rotate_so_no_single_item_absorbs_an_outage(receiver) -> None:
    # Down for 10 requests; each item may be tried only 3 times. If every half-open probe
    # went to the oldest item it would be dead-lettered on the third probe.
    r = receiver(lambda i, _req: (500, {}, b"") if i < 10 else (200, {}, b""))
    clock = FakeClock()
    outbox = MemoryOutbox()
    items = [
        notification(incident=snapshot(id=f"INC-2025-{k:04d}"), created_at=T0 + k) for k in range(5)
    ]
    for n in items:
        outbox.enqueue(n)
    deliverer = Deliverer(
        outbox,
        webhook(r.url),
        clock,
        Backoff(base_delay=1, max_delay=1, max_attempts=3, rng=random.Random(2)),
        {"oncall": CircuitBreaker(failure_threshold=1, cooldown=10, clock=clock)},
    )
    drain(deliverer, outbox, clock, step=10)
    assert outbox.counts() == {"pending": 0, "sent": 5, "dead": 0}
    assert len(r.requests) == 15
