"""What several replicas on one PostgreSQL share besides incidents: who is alive (members),
who leads (leases), and what each evaluated (slo_states) — the tables of migration 2.

Every time that decides liveness or expiry is the database's `clock_timestamp()`, never a
replica's clock: replicas may disagree about the time, the database is one clock. `now()`
would not do either: it is frozen at the start of a transaction. Ages and expiries go back
to the replicas as durations ("published 3.2 s ago"), which mean the same on every host.

The policy (heartbeat period, time-to-live, what stale means) belongs to the daemon
(engine.daemon.replicas); this module only runs the statements, each group in one
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.store.leases import INCIDENTS_LEASE, Fence, check_fence
from engine.store.postgresql import PostgreSQLStore

DB_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
# Rows of members silent for this many time-to-lives are deleted (they only cost reads).
FORGET_AFTER_TTLS = 10

_HEARTBEAT = f"""
    INSERT INTO members (replica_id, started_at, heartbeat_at)
    VALUES (%(me)s, {DB_NOW}, {DB_NOW})
    ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"""
_LIVE = f"""
    SELECT replica_id, published_at FROM members WHERE heartbeat_at > {DB_NOW} - %(ttl)s
    ORDER BY replica_id"""
# Acquire: only an expired lease, or our own (a restart under the same replica_id). The token
# grows on every acquisition, so whoever held it before is fenced out from now on.
_ACQUIRE = f"""
    UPDATE leases SET holder = %(me)s, token = token + 1,
        expires_at = {DB_NOW} + %(ttl)s, acquired_at = {DB_NOW}
    WHERE name = %(name)s AND (expires_at < {DB_NOW} OR holder = %(me)s)
    RETURNING token"""
# Renew: the same token. Still ours if nobody acquired it meanwhile, even if it expired: the
# unchanged token proves no other leader decided in between.
_RENEW = f"""
    UPDATE leases SET expires_at = {DB_NOW} + %(ttl)s
    WHERE name = %(name)s AND holder = %(me)s AND token = %(token)s
    RETURNING token"""
_LEASE = f"""
    SELECT holder, token, expires_at - {DB_NOW} AS expires_in FROM leases WHERE name = %(name)s"""
_PUBLISH = f"""
    INSERT INTO slo_states (slo_id, replica_id, published_at, evaluated_at, status,
        evaluation, alerts)
    VALUES (%s, %s, {DB_NOW}, %s, %s, %s, %s)
    ON CONFLICT (slo_id) DO UPDATE SET replica_id = excluded.replica_id,
        published_at = excluded.published_at, evaluated_at = excluded.evaluated_at,
        status = excluded.status, evaluation = excluded.evaluation, alerts = excluded.alerts"""


@dataclass(frozen=True)
class Lease:
    holder: str | None
    token: int
    expires_in: float  # seconds on the database clock; negative once expired


@dataclass(frozen=True)
class Beat:
    """One heartbeat's answer: the live members (sorted), our token if we hold the lease
    now, the lease as the database sees it, and when a live member last published."""

    members: tuple[str, ...]
    token: int | None
    lease: Lease
    latest_publication: float | None = None


@dataclass(frozen=True)
class StateRow:
    """One SLO's published state, as written (JSON as text, like every JSON column)."""

    slo_id: str
    evaluated_at: float
    status: str
    evaluation: str
    alerts: str


@dataclass(frozen=True)
class PublishedState:
    slo_id: str
    replica_id: str
    age: float  # seconds since it was published, on the database clock
    evaluated_at: float
    status: str
    evaluation: str
    alerts: str


@dataclass(frozen=True)
class Published:
    states: list[PublishedState]
    member_alerts: list[str]  # JSON lists, one per live member
    latest: float | None  # when a live member last published (database clock)


def _latest(members: Sequence[Any]) -> float | None:
    times = [float(r["published_at"]) for r in members if r["published_at"] is not None]
    return max(times, default=None)


class PostgreSQLCoordination:
    """Members, leases and published SLO states on the store's database (its pool)."""

    def __init__(self, store: PostgreSQLStore) -> None:
        self.store = store

    def beat(
        self,
        replica_id: str,
        member_ttl: float,
        lease_ttl: float,
        token: int | None,
        lease: str = INCIDENTS_LEASE,
    ) -> Beat:
        """Heartbeat `replica_id`; list the live members; renew the lease with `token` (or
        acquire it when `token` is None or no longer ours). One transaction, given up after
        `lease_ttl` (a heartbeat that late is of no use to the lease)."""
        params: dict[str, Any] = {"me": replica_id, "name": lease, "token": token}
        with self.store.transaction(wait=lease_ttl) as cur:
            cur.execute(f"SET LOCAL statement_timeout = {max(1, int(lease_ttl * 1000))}")
            cur.execute(_HEARTBEAT, params)
            cur.execute(
                f"DELETE FROM members WHERE heartbeat_at < {DB_NOW} - %(forget)s",
                {"forget": FORGET_AFTER_TTLS * member_ttl},
            )
            live = cur.execute(_LIVE, {"ttl": member_ttl}).fetchall()
            held = None
            if token is not None:
                held = cur.execute(_RENEW, {**params, "ttl": lease_ttl}).fetchone()
            if held is None:
                held = cur.execute(_ACQUIRE, {**params, "ttl": lease_ttl}).fetchone()
            row = cur.execute(_LEASE, params).fetchone()
        return Beat(
            members=tuple(r["replica_id"] for r in live),
            token=None if held is None else int(held["token"]),
            lease=Lease(row["holder"], int(row["token"]), float(row["expires_in"])),
            latest_publication=_latest(live),
        )

    def lease(self, name: str = INCIDENTS_LEASE) -> Lease:
        with self.store.transaction() as cur:
            row = cur.execute(_LEASE, {"name": name}).fetchone()
        return Lease(row["holder"], int(row["token"]), float(row["expires_in"]))

    def release(self, replica_id: str, token: int, lease: str = INCIDENTS_LEASE) -> bool:
        """Let the lease expire now (a clean shutdown): the next replica need not wait out
        the time-to-live. The token stays, so it still only grows."""
        with self.store.transaction() as cur:
            released = cur.execute(
                f"UPDATE leases SET expires_at = {DB_NOW} - 1 "
                "WHERE name = %s AND holder = %s AND token = %s",
                (lease, replica_id, token),
            ).rowcount
        return bool(released)

    def leave(self, replica_id: str) -> None:
        """Drop out of the members at once, so the others take over its SLOs now."""
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM members WHERE replica_id = %s", (replica_id,))

    def publish(self, replica_id: str, states: Sequence[StateRow], replica_alerts: str) -> None:
        """Upsert the states of the SLOs `replica_id` evaluated, and its replica-wide alerts
        (evaluation blind), in one transaction."""
        with self.store.transaction() as cur:
            cur.executemany(  # an empty shard publishes nothing but its replica-wide alerts
                _PUBLISH,
                [
                    (s.slo_id, replica_id, s.evaluated_at, s.status, s.evaluation, s.alerts)
                    for s in states
                ],
            )
            cur.execute(
                f"UPDATE members SET alerts = %s, published_at = {DB_NOW} WHERE replica_id = %s",
                (replica_alerts, replica_id),
            )

    def published(self, member_ttl: float) -> Published:
        """Every published SLO state with its age, and the replica-wide alerts (JSON) of the
        live members — one consistent snapshot."""
        with self.store.snapshot() as cur:
            states = [
                PublishedState(
                    slo_id=r["slo_id"],
                    replica_id=r["replica_id"],
                    age=float(r["age"]),
                    evaluated_at=float(r["evaluated_at"]),
                    status=r["status"],
                    evaluation=r["evaluation"],
                    alerts=r["alerts"],
                )
                for r in cur.execute(
                    f"SELECT slo_id, replica_id, {DB_NOW} - published_at AS age, evaluated_at, "
                    "status, evaluation, alerts FROM slo_states"
                )
            ]
            live = cur.execute(
                f"SELECT alerts, published_at FROM members WHERE heartbeat_at > {DB_NOW} - %s "
                "ORDER BY replica_id",
                (member_ttl,),
            ).fetchall()
        return Published(states, [r["alerts"] for r in live], _latest(live))

    def forget_states(self, slo_ids: Sequence[str]) -> None:
        """Delete the published states of SLOs that no longer exist (a spec reload)."""
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM slo_states WHERE slo_id = ANY(%s)", (list(slo_ids),))

    def adopt_outbox(self, fence: Fence) -> int:
        """A new leader releases the outbox claims of the previous deliverer (fenced): that
        one has stopped sending (its lease lapsed first, by its own clock), and waiting out
        the claims' time-to-live would delay pages past the takeover."""
        with self.store.transaction() as cur:
            check_fence(cur, fence)
            return cur.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE status = 'pending' AND claimed_by IS NOT NULL AND claimed_by <> %s",
                (self.store.claimer,),
            ).rowcount
