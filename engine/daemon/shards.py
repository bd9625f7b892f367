"""Which replica evaluates which SLO: rendezvous hashing over the live members.

Every SLO goes to the member with the highest weight `hash(member, slo.id)` (highest random
weight, Thaler & Ravishankar). Every replica computes the same answer from the same member
list without talking to the others, and the answer is stable: when a member leaves, only
the SLOs it owned move (each to its own runner-up); when one joins, it takes only the SLOs
it now wins. A consistent-hash ring gives the same property but needs virtual nodes to
spread evenly; with a few replicas and thousands of SLOs, HRW is simpler and even.

The evaluator and the anomaly step of a replica run on its shard only. Both still receive
the whole spec set on a reload (engine.daemon.specs does not know about shards) and keep
it as the fleet; a membership change arrives from the heartbeat thread and is applied by
the cycle's own thread at its next evaluation, never under a running one. The cache's
resolution is chosen for the whole fleet, so an SLO evaluates on the same steps whichever
replica owns it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry import trace

from engine.anomaly.live import AnomalyState
from engine.daemon.anomaly import DaemonAnomalies
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.resolution import DEFAULT_SCRAPE_INTERVAL, Resolution
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource
from engine.spec.durations import Duration
from engine.spec.models import SLO


def weight(member: str, slo_id: str) -> int:
    """The member's weight for one SLO: 64 bits of BLAKE2b, the same on every host."""
    digest = hashlib.blake2b(f"{member}\x00{slo_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(slo_id: str, members: Iterable[str]) -> str:
    """The member that evaluates `slo_id` (ties, which need a 64-bit collision, by name)."""
    return max(members, key=lambda member: (weight(member, slo_id), member))


@dataclass(frozen=True)
class Assignment:
    """The live members as one replica last saw them, and which of them it is."""

    members: tuple[str, ...]
    me: str

    def mine(self, slos: Sequence[SLO]) -> list[SLO]:
        members = self.members if self.me in self.members else (*self.members, self.me)
        return [slo for slo in slos if owner(slo.id, members) == self.me]


class _Sharded:
    """The fleet (every SLO of the specs), the assignment, and a pending reassignment."""

    def _init_shard(self, fleet: Sequence[SLO]) -> None:
        self._fleet: tuple[SLO, ...] = tuple(fleet)
        self._assignment: Assignment | None = None
        self._pending: Assignment | None = None
        self._shard_lock = threading.Lock()

    @property
    def fleet(self) -> tuple[SLO, ...]:
        return self._fleet

    def reassign(self, assignment: Assignment) -> None:
        """Take `assignment` at the next cycle (thread-safe; the heartbeat calls this)."""
        with self._shard_lock:
            self._pending = assignment

    def _take_pending(self) -> Assignment | None:
        with self._shard_lock:
            pending, self._pending = self._pending, None
        if pending is None or pending == self._assignment:
            return None
        return pending

    def _mine(self, fleet: Sequence[SLO], assignment: Assignment | None) -> list[SLO]:
        return [] if assignment is None else assignment.mine(fleet)


class ShardEvaluator(_Sharded, Evaluator):
    """An `Evaluator` over this replica's shard of the fleet."""

    def __init__(
        self, fleet: Sequence[SLO], source: EventSource, *, scrape_interval: Duration
    ) -> None:
        self._init_shard(fleet)
        # No shard before the first heartbeat: owning nothing is never wrong, only idle.
        super().__init__([], source, scrape_interval=scrape_interval)

    def _resolve(self, slos: Sequence[SLO]) -> Resolution:
        return super()._resolve(self._fleet)

    def set_slos(self, slos: Sequence[SLO]) -> None:
        """A spec reload: the new fleet, this replica's shard of it (unchanged on error)."""
        previous = self._fleet
        self._fleet = tuple(slos)
        try:
            self._own(self._mine(self._fleet, self._assignment))
        except Exception:
            self._fleet = previous
            raise

    def evaluate(self, at: float) -> list[SLOEvaluation]:
        pending = self._take_pending()
        if pending is not None:
            # Only newly owned SLOs cold-fill; the cache keeps the rest.
            self._own(self._mine(self._fleet, pending))
            self._assignment = pending
        return super().evaluate(at)

    def _own(self, slos: list[SLO]) -> None:
        if self.slos:
            super().set_slos(slos)
        else:
            # From an empty shard a fresh evaluator: the cache cannot re-index zero columns.
            Evaluator.__init__(self, slos, self._source, scrape_interval=self._scrape_interval)


class ShardAnomalies(_Sharded, DaemonAnomalies):
    """The anomaly step over this replica's shard (its alerts are published with the SLO)."""

    def __init__(
        self,
        source: EventSource,
        fleet: Sequence[SLO],
        tracer: trace.Tracer,
        metrics: object,
        scrape_interval: Duration = DEFAULT_SCRAPE_INTERVAL,
    ) -> None:
        self._init_shard(fleet)
        super().__init__(source, fleet, tracer, metrics, scrape_interval)

    def set_slos(self, slos: Sequence[SLO]) -> None:
        self._fleet = tuple(slos)
        super().set_slos(self._mine(self._fleet, self._assignment))

    def run(self, now: float, source_ok: bool) -> list[AnomalyState]:
        pending = self._take_pending()
        if pending is not None:
            self._assignment = pending
            super().set_slos(self._mine(self._fleet, pending))
        return super().run(now, source_ok)
