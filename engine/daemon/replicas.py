"""Several `slo-engine run` replicas on one PostgreSQL: membership, shards and the incident
leader (the design and its guarantees: docs/replicas.md).

Each replica heartbeats every `interval / 3` (at most 5 s). One heartbeat, one transaction
(engine.store.coordination): refresh its `members` row, read the live members (heartbeat
younger than `member_ttl`, 1.5 × interval, on the database's clock), and renew — or try to
acquire — the `incidents` lease. From the members it derives its shard of the SLOs
(engine.daemon.shards); from the lease whether it is the incident leader.

Leadership is a lease with a fencing token:
- The database decides who holds it; the token grows with every acquisition. Every write
  the leader makes for incidents carries the token and is refused (`FencedOut`) once
  another replica has acquired the lease, so a deposed leader cannot write stale decisions.
- Locally, the replica counts itself leader only until `sent + lease_ttl − margin` by its
  monotonic clock, where `sent` is when the renewing heartbeat was *sent*: the database
  measured the expiry from a later instant, so the local deadline always comes first. Past
  it, the replica stops deciding and delivering (`leading()` is False) even if it cannot
  reach the database to learn anything — a replica cut from the database stops paging
  instead of paging on stale state.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.daemon.shards import Assignment
from engine.store.leases import Fence

if TYPE_CHECKING:  # the runtime imports this module; SQLite daemons never load psycopg
    from engine.store.coordination import Beat, Lease, PostgreSQLCoordination

log = logging.getLogger(__name__)

# Engine calls only the incident leader makes (fenced); API changes are made by any replica.
LEADER_ORIGINS = frozenset({"cycle", "tick", "takeover", "publication"})
MAX_HEARTBEAT_SECONDS = 5.0
MEMBER_TTL_INTERVALS = 1.5
# Of the lease: the part of its time-to-live the local clock gives up early. Covers clock
# rate drift between the replica and the database (parts per million) many times over.
LEASE_MARGIN = 0.25


def default_replica_id() -> str:
    """hostname-pid-random: unique per process, readable in logs and the members table."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Timings:
    """Heartbeat period, member and lease time-to-live, all from the evaluation interval."""

    def __init__(self, interval: float) -> None:
        self.interval = float(interval)
        self.heartbeat = min(self.interval / 3, MAX_HEARTBEAT_SECONDS)
        self.member_ttl = MEMBER_TTL_INTERVALS * self.interval
        # One interval: a dead leader's lease expires at most one interval after its last
        # renewal, and a follower's next heartbeat (≤ interval / 3) takes over — so the new
        # leader decides within 4/3 of an interval, inside the promised two.
        self.lease_ttl = self.interval
        self.margin = LEASE_MARGIN * self.lease_ttl
        # A published SLO state older than this counts as "no data" (never as cleared).
        self.stale_after = 2 * self.interval


class ReplicaSet:
    """This replica's view of the fleet: members, its shard, and the incident lease."""

    def __init__(
        self,
        coordination: PostgreSQLCoordination,
        replica_id: str,
        interval: float,
        *,
        on_assignment: Callable[[Assignment], None] = lambda _: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coordination = coordination
        self.replica_id = replica_id
        self.timings = Timings(interval)
        self._on_assignment = on_assignment
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token: int | None = None
        self._valid_until = 0.0  # monotonic; the local end of leadership
        self.members: tuple[str, ...] = ()
        self.lease: Lease | None = None
        # When a live member last published its states (database clock): news for the leader.
        self.latest_publication: float | None = None
        self.last_beat: float | None = None  # monotonic, of the last successful heartbeat
        self.beat_error: str | None = None

    # ------------------------------------------------------------------ heartbeat

    def beat(self) -> bool:
        """One heartbeat; True when this replica has just become the incident leader."""
        sent = self._monotonic()
        with self._lock:
            token = self._token
        try:
            beat = self.coordination.beat(
                self.replica_id, self.timings.member_ttl, self.timings.lease_ttl, token
            )
        except Exception as exc:
            self._beat_failed(exc)
            return False
        if self.beat_error is not None:
            log.info("replica %s reaches the store again", self.replica_id)
        self.beat_error, self.last_beat = None, sent
        return self._adopt(beat, sent)

    def _adopt(self, beat: Beat, sent: float) -> bool:
        if beat.members != self.members:
            log.info(
                "replica %s: %d live members: %s",
                self.replica_id,
                len(beat.members),
                ", ".join(beat.members),
            )
            self.members = beat.members
            self._on_assignment(Assignment(beat.members, self.replica_id))
        self.lease = beat.lease
        self.latest_publication = beat.latest_publication
        with self._lock:
            previous = self._token
            self._token = beat.token
            self._valid_until = (
                0.0 if beat.token is None else sent + self.timings.lease_ttl - self.timings.margin
            )
        if beat.token is not None and beat.token != previous:
            log.warning(
                "replica %s is the incident leader now (lease token %d)",
                self.replica_id,
                beat.token,
            )
            return True
        if beat.token is None and previous is not None:
            log.warning(
                "replica %s lost the incident lease (now %s, token %d): no longer deciding "
                "or delivering",
                self.replica_id,
                beat.lease.holder,
                beat.lease.token,
            )
        return False

    def _beat_failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self.beat_error is None:
            log.error(
                "replica %s cannot heartbeat (its lease lapses by itself if this lasts): %s",
                self.replica_id,
                message,
            )
        self.beat_error = message

    # ------------------------------------------------------------------ leadership

    def leading(self) -> bool:
        """Whether this replica may decide and deliver now (its local lease deadline)."""
        with self._lock:
            return self._token is not None and self._monotonic() < self._valid_until

    def fence(self) -> Fence | None:
        """The token to write with, while leading; None otherwise."""
        with self._lock:
            if self._token is None or self._monotonic() >= self._valid_until:
                return None
            return Fence(self._token)

    def deposed(self, why: str) -> None:
        """A write was fenced out: someone else leads. Stop at once."""
        with self._lock:
            was, self._token, self._valid_until = self._token, None, 0.0
        if was is not None:
            log.warning("replica %s was deposed as incident leader: %s", self.replica_id, why)

    def leave(self) -> None:
        """Clean shutdown: hand the lease and the shard over now, not after the TTLs."""
        with self._lock:
            token, self._token, self._valid_until = self._token, None, 0.0
        try:
            if token is not None:
                self.coordination.release(self.replica_id, token)
            self.coordination.leave(self.replica_id)
        except Exception as exc:  # the others take over when the TTLs run out
            log.warning("replica %s could not sign off cleanly: %s", self.replica_id, exc)

    # ------------------------------------------------------------------ reporting

    def store_reachable(self) -> bool:
        """False while heartbeats fail: reads for the API then answer from memory."""
        return self.beat_error is None

    def problems(self) -> list[str]:
        """Readiness reasons: a heartbeat failing for longer than a member's time-to-live."""
        if self.beat_error is None:
            return []
        since = self.last_beat
        if since is not None and self._monotonic() - since <= self.timings.member_ttl:
            return []
        return [f"replica heartbeat failing: {self.beat_error}"]

    def status(self) -> dict[str, Any]:
        lease = self.lease
        return {
            "replica_id": self.replica_id,
            "leader": self.leading(),
            "members": list(self.members),
            "lease_holder": None if lease is None else lease.holder,
            "lease_token": None if lease is None else lease.token,
            "heartbeat_error": self.beat_error,
        }

    def attach_metrics(self, registry: CollectorRegistry, owned: Callable[[], int]) -> None:
        registry.register(_ReplicaCollector(self, owned))


class _ReplicaCollector(Collector):
    def __init__(self, replicas: ReplicaSet, owned: Callable[[], int]) -> None:
        self._replicas = replicas
        self._owned = owned

    def collect(self) -> Iterator[GaugeMetricFamily]:
        r = self._replicas
        lease = r.lease
        facts = (
            (
                "slo_engine_replica_leader",
                "1 while this replica is the incident leader.",
                float(r.leading()),
            ),
            (
                "slo_engine_replica_members",
                "Live replicas as this one last saw them.",
                float(len(r.members)),
            ),
            (
                "slo_engine_replica_slos_owned",
                "SLOs this replica evaluates (its shard).",
                float(self._owned()),
            ),
            (
                "slo_engine_replica_lease_token",
                "The incident lease's current fencing token.",
                float(lease.token if lease else 0),
            ),
        )
        for name, doc, value in facts:
            family = GaugeMetricFamily(name, doc, labels=["replica"])
            family.add_metric([r.replica_id], value)
            yield family
