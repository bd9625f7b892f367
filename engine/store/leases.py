"""Fencing tokens: how a store refuses the writes of an incident leader that was deposed.

Several replicas share one PostgreSQL; one of them, the holder of the `incidents` lease,
decides incidents (engine.daemon.replicas). A lease alone cannot stop a leader that paused
(GC, a stalled VM, a network partition) past its expiry and then writes as if nothing
happened. So every lease acquisition increments a token that only grows, the leader hands
its token to each write (`Fence`), and the store checks it inside the write's own
transaction: `SELECT token FROM leases WHERE name = ... FOR SHARE` must still equal it, or
the write raises `FencedOut` and nothing is written. FOR SHARE also makes a takeover (an
UPDATE of that row) wait until a fenced write in flight has committed or rolled back, so a
write is either entirely before the new token or refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.store.base import StoreError

# The one lease there is: who runs the incident engine, its timers and the outbox.
INCIDENTS_LEASE = "incidents"


class FencedOut(StoreError):
    """The writer's lease token is no longer the current one: another replica leads now.
    Nothing was written; the writer must stop deciding and delivering."""


@dataclass(frozen=True)
class Fence:
    """The token a leader held when it decided; stores compare it with the current one."""

    token: int
    name: str = INCIDENTS_LEASE


def check_fence(cur: Any, fence: Fence) -> None:
    """Raise `FencedOut` unless `fence` is still the lease's current token (PostgreSQL,
    inside the caller's transaction; the shared row lock lasts until it ends)."""
    row = cur.execute(
        "SELECT token FROM leases WHERE name = %s FOR SHARE", (fence.name,)
    ).fetchone()
    current = None if row is None else int(row["token"])
    if current != fence.token:
        raise FencedOut(
            f"lease {fence.name!r} token {fence.token} is stale (current: {current}): "
            "another replica took over; this write was refused"
        )
