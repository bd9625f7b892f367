"""A replica delivers only while it leads, checked before every single send: a leader whose
lease lapses (cut from the database, paused) stops in the middle of a batch, spends no
attempt and writes nothing for what it did not send, and syncs nothing to Alertmanager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.incidents import T0, make_alert

from engine.daemon.leader_delivery import LeaderDeliverer
from engine.daemon.replicas import ReplicaSet
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import Notification
from engine.store.sqlite import SQLiteStore


class Lease:
    def __init__(self) -> None:
        self.valid = True

    def __call__(self) -> bool:
        return self.valid


class Receiver:
    """Records what it is sent; the lease lapses during the first send (a pause)."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.sent: list[Notification] = []
        self.synced = 0

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)
        self.lease.valid = False

    def sync(self, incidents: Any, now: float) -> None:
        self.synced += 1


def _two_pages(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore.in_state_dir(tmp_path / "state")
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}], escalation=[]))
    alerts = [make_alert("api", "availability", "page"), make_alert("web", "availability", "page")]
    store.apply(engine.observe(T0, alerts))
    assert store.counts()["pending"] == 2
    return store


def test_the_lease_is_checked_before_every_send(tmp_path: Path) -> None:
    store, lease = _two_pages(tmp_path), Lease()
    receiver = Receiver(lease)
    deliverer = LeaderDeliverer(store, {"oncall": receiver}, clock=lambda: T0, leading=lease)
    report = deliverer.run_once(T0)
    assert len(receiver.sent) == 1 and report.sent == 1 and report.deferred == 1
    (left,) = store.due(T0)
    assert left.attempts == 0 and left.last_error is None  # untouched for the next leader
    assert deliverer.sync([], T0) == {} and receiver.synced == 0
    assert deliverer.run_once(T0).attempted == 0 and len(receiver.sent) == 1
    lease.valid = True  # leading again (renewed): it goes on where it stopped
    assert deliverer.run_once(T0).sent == 1 and store.counts()["sent"] == 2
    store.close()


class Coordination:
    """A store that answers, then is cut off."""

    def __init__(self) -> None:
        self.cut = False

    def beat(self, replica_id: str, member_ttl: float, lease_ttl: float, token: Any) -> Any:
        from engine.store.coordination import Beat, Lease

        if self.cut:
            raise ConnectionError("connection refused (scripted)")
        return Beat((replica_id,), 7, Lease(replica_id, 7, lease_ttl), None)


def test_a_leader_cut_from_the_store_stops_before_its_lease_can_expire() -> None:
    now = [100.0]
    coordination = Coordination()
    replicas = ReplicaSet(coordination, "a", 2.0, monotonic=lambda: now[0])  # type: ignore[arg-type]
    assert replicas.beat() and replicas.leading()
    coordination.cut = True
    now[0] += 0.5
    assert not replicas.beat()  # fails; the last good renewal still counts
    assert replicas.leading() and replicas.problems() == []
    # The database expires the lease 2 s after it saw the renewal, which was sent at 100.0:
    # the replica gives up a margin earlier by its own clock, whatever the database does.
    now[0] = 100.0 + 2.0 - replicas.timings.margin
    assert not replicas.leading() and replicas.fence() is None
    now[0] = 100.0 + 3.1  # a member's time-to-live without a heartbeat: not ready
    assert replicas.problems() == [
        "replica heartbeat failing: ConnectionError: connection refused (scripted)"
    ]
