"""What replicas tell each other through the store after every cycle, and what the incident
leader and the API make of it.

Each replica publishes, per SLO of its shard, the evaluation and the alerts it raised
(burn-rate and anomaly alerts), in one transaction; replica-wide alerts ("evaluation blind")
go on its members row. The leader then reads every published state and calls
`IncidentEngine.observe` with the complete picture:

- the alerts of every SLO whose state is fresh (published within two intervals);
- as "no data" every SLO whose newest state is older than that, or was never published,
  and every SLO its owner reported as no data or error. Missing data never resolves
  anything: a dead replica's SLOs keep their incidents open until a new owner evaluates
  them.

The API of any replica answers for every SLO: its own shard from its own cycle, the others
from their published evaluations (the full evaluation — windows, budget, time to
exhaustion, alert rules — so `/api/v1/slos` and `/metrics` read the same on every replica),
refreshed at most once per interval.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.alerting.alerts import Alert
from engine.alerting.cycle import Blindness, InvalidSpecs, cycle_alerts
from engine.anomaly.live import AnomalyState
from engine.daemon.replicas import ReplicaSet
from engine.daemon.shards import ShardEvaluator
from engine.evaluation.result import AlertSignal, SLOEvaluation, WindowValue
from engine.incidents.engine import IncidentEngine
from engine.incidents.state import Decision
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.store.coordination import PostgreSQLCoordination, PublishedState, StateRow

log = logging.getLogger(__name__)

# The Runtime's `_decide(origin, call, now)`.
Decide = Callable[[str, Callable[[float], Decision], float | None], Decision | None]
_UNKNOWN = frozenset({"no_data", "error"})
_ALERT_FIELDS = tuple(f.name for f in dataclasses.fields(Alert) if f.name != "fingerprint")


# ---------------------------------------------------------------------- the wire forms


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _window(value: WindowValue) -> list[Any]:
    # Coverage last: a state published before it existed reads back as None (not judged).
    return [value.bad, value.total, value.error_ratio, value.burn_rate, value.coverage]


def _signal(a: AlertSignal) -> list[Any]:
    long, short = str(a.long_window), str(a.short_window)
    return [a.severity, long, short, str(a.factor), a.held, a.held_reason]


def evaluation_json(ev: SLOEvaluation) -> str:
    """Everything of an evaluation but its SLO (every replica has the specs)."""
    return _dumps(
        {
            "w": [[str(w), *_window(v)] for w, v in ev.windows.items()],
            "b": ev.error_budget_remaining,
            "x": ev.time_to_exhaustion,
            "a": [_signal(a) for a in ev.alerts],
            "e": ev.error,
            "rw": None if ev.recent_window is None else str(ev.recent_window),
            "r": None if ev.recent is None else _window(ev.recent),
        }
    )


def evaluation_from(slo: SLO, state: PublishedState) -> SLOEvaluation:
    data = json.loads(state.evaluation)
    return SLOEvaluation(
        slo=slo,
        evaluated_at=state.evaluated_at,
        status=state.status,  # type: ignore[arg-type]
        windows={Duration.parse(w): WindowValue(*v) for w, *v in data["w"]},
        error_budget_remaining=data["b"],
        time_to_exhaustion=data["x"],
        alerts=tuple(
            AlertSignal(sev, Duration.parse(long), Duration.parse(short), Decimal(f), held, why)
            for sev, long, short, f, held, why in data["a"]
        ),
        error=data["e"],
        recent_window=None if data["rw"] is None else Duration.parse(data["rw"]),
        recent=None if data["r"] is None else WindowValue(*data["r"]),
    )


def alerts_json(alerts: Sequence[Alert]) -> str:
    return _dumps(
        [
            {**{name: getattr(a, name) for name in _ALERT_FIELDS}, "depends_on": list(a.depends_on)}
            for a in alerts
        ]
    )


def alerts_from(text: str) -> list[Alert]:
    # Unknown fields are dropped: a newer replica may publish more during a rolling upgrade.
    return [
        Alert(
            **{k: v for k, v in item.items() if k in _ALERT_FIELDS and k != "depends_on"},
            depends_on=tuple(item.get("depends_on", ())),
        )
        for item in json.loads(text)
    ]


def _log_opened(decision: Decision) -> None:
    opened = {r.incident_id for r in decision.timeline if r.entry.kind == "opened"}
    for incident in decision.incidents:
        if incident.id in opened:
            # The cycle's line, under the Runtime's name (operators filter on it).
            logging.getLogger("engine.daemon.runtime").warning(
                "incident %s opened: %s %s — %s",
                incident.id,
                incident.severity.value,
                incident.service,
                incident.summary,
            )


# ---------------------------------------------------------------------- the leader's view


@dataclass(frozen=True)
class FleetView:
    """The input of the leader's `observe`: every fresh alert, and the SLOs without data."""

    alerts: list[Alert]
    unknown: list[SLOEvaluation]
    states: dict[str, PublishedState]


class Fleet:
    """Publishing this replica's states; the leader's decisions over everyone's."""

    def __init__(
        self,
        coordination: PostgreSQLCoordination,
        replicas: ReplicaSet,
        evaluator: ShardEvaluator,
        engine: IncidentEngine,
    ) -> None:
        self._coordination = coordination
        self._replicas = replicas
        self._evaluator = evaluator
        self._engine = engine
        self._timings = replicas.timings
        self._cache_lock = threading.Lock()
        self._states: dict[str, PublishedState] = {}
        self._states_read = -float("inf")  # monotonic
        self._restored: dict[str, tuple[PublishedState, SLOEvaluation]] = {}
        # The newest publication the leader's last decision saw (database clock).
        self._decided_upto: float | None = None

    @property
    def owned(self) -> int:
        return len(self._evaluator.slos)

    # -- every replica, every cycle ----------------------------------------------------------

    def cycle(
        self,
        now: float,
        results: list[SLOEvaluation],
        anomalies: list[AnomalyState],
        blindness: Blindness | None,
        dashboard: Callable[[SLO], str | None],
        decide: Decide,
        invalid_specs: InvalidSpecs | None = None,
    ) -> tuple[Decision | None, list[Alert]]:
        """Alerts of this shard → published; the leader then decides for everyone."""
        alerts = cycle_alerts(now, results, anomalies, blindness, dashboard, invalid_specs)
        self.publish(results, alerts)
        if not self._replicas.leading():
            return None, alerts
        return self.decide(now, decide, "cycle"), alerts

    def publish(self, results: Sequence[SLOEvaluation], alerts: Sequence[Alert]) -> bool:
        by_slo: dict[str, list[Alert]] = {}
        for alert in alerts:
            by_slo.setdefault(alert.slo_id, []).append(alert)
        rows = [
            StateRow(
                r.slo.id,
                r.evaluated_at,
                r.status,
                evaluation_json(r),
                alerts_json(by_slo.pop(r.slo.id, [])),
            )
            for r in results
        ]
        # What belongs to no SLO of the shard: the replica's own "evaluation blind".
        rest = [a for group in by_slo.values() for a in group]
        try:
            self._coordination.publish(self._replicas.replica_id, rows, alerts_json(rest))
        except Exception as exc:
            log.error("cannot publish this replica's SLO states: %s", exc)
            return False
        return True

    # -- the incident leader -----------------------------------------------------------------

    def view(self) -> FleetView:
        published = self._coordination.published(self._timings.member_ttl)
        states = published.states
        by_id = {s.slo_id: s for s in states}
        with self._cache_lock:
            self._states, self._states_read = by_id, time.monotonic()
        self._decided_upto = published.latest
        alerts: list[Alert] = []
        unknown: list[SLOEvaluation] = []
        fleet = self._evaluator.fleet
        for slo in fleet:
            state = by_id.get(slo.id)
            if state is None or state.age > self._timings.stale_after:
                unknown.append(self._stale(slo, state))
                continue
            if state.status in _UNKNOWN:
                unknown.append(SLOEvaluation(slo, state.evaluated_at, state.status))  # type: ignore[arg-type]
            if state.alerts != "[]":
                alerts.extend(alerts_from(state.alerts))
        for text in published.member_alerts:
            alerts.extend(alerts_from(text))
        known = {slo.id for slo in (*fleet, *self._evaluator.undiscovered)}
        self._forget_removed(states, known)
        return FleetView(alerts, unknown, by_id)

    def decide(self, now: float, decide: Decide, origin: str) -> Decision | None:
        """The leader's `observe` over every published state (fenced by `decide`)."""
        try:
            view = self.view()
        except Exception as exc:
            log.error("cannot read the published SLO states: %s", exc)
            return None
        decision = decide(
            origin, lambda at: self._engine.observe(at, view.alerts, view.unknown), now
        )
        if decision is not None and origin != "cycle":  # the cycle logs its own
            _log_opened(decision)
        return decision

    def heartbeat(
        self,
        clock: Callable[[], float],
        decide: Decide,
        reload: Callable[[], None],
        deliver: Callable[[], object],
    ) -> None:
        """One heartbeat of this replica, then the leader's decisions between its own
        cycles: at once after winning the lease, and whenever another replica has published
        since its last decision (so a page found by a follower waits at most one heartbeat,
        not one interval). Delivery is woken after either."""
        became_leader = self._replicas.beat()
        if self.after_heartbeat(became_leader, clock(), decide, reload):
            deliver()

    def after_heartbeat(
        self, became_leader: bool, now: float, decide: Decide, reload: Callable[[], None]
    ) -> bool:
        """Decide if there is reason to (see `heartbeat`); whether it decided."""
        if became_leader:
            self.take_over(now, decide, reload)
            return True
        latest = self._replicas.latest_publication
        if not self._replicas.leading() or latest is None:
            return False
        if self._decided_upto is not None and latest <= self._decided_upto:
            return False
        return self.decide(now, decide, "publication") is not None

    def take_over(self, now: float, decide: Decide, reload: Callable[[], None]) -> None:
        """Right after winning the lease: the engine state from the store, the outbox claims
        of the previous leader, and a decision over what everyone published — without
        waiting for this replica's next cycle."""
        started = time.monotonic()
        reload()
        fence = self._replicas.fence()
        if fence is None:
            return
        try:
            adopted = self._coordination.adopt_outbox(fence)
        except Exception as exc:
            log.error("cannot adopt the outbox: %s", exc)
            adopted = 0
        decision = self.decide(now, decide, "takeover")
        log.warning(
            "first decision as incident leader (token %d) at %.3f in %.3fs: %s; %d outbox "
            "claims adopted",
            fence.token,
            time.time(),
            time.monotonic() - started,
            "not written" if decision is None else f"{len(decision.notifications)} notifications",
            adopted,
        )

    def _stale(self, slo: SLO, state: PublishedState | None) -> SLOEvaluation:
        if state is None:
            return SLOEvaluation(slo, 0.0, "no_data", error="not evaluated by any replica yet")
        return SLOEvaluation(
            slo,
            state.evaluated_at,
            "no_data",
            error=f"no fresh evaluation: last published by replica {state.replica_id} "
            f"{state.age:.0f}s ago",
        )

    def _forget_removed(self, states: Sequence[PublishedState], known: set[str]) -> None:
        gone = [
            s.slo_id for s in states if s.slo_id not in known and s.age > self._timings.stale_after
        ]
        if gone:
            try:
                self._coordination.forget_states(gone)
            except Exception as exc:
                log.warning("cannot delete the states of removed SLOs: %s", exc)

    # -- the API -----------------------------------------------------------------------------

    def results(self, own: Sequence[SLOEvaluation]) -> list[SLOEvaluation]:
        """Every SLO's latest evaluation: this replica's own, else the published one (stale
        ones as no data), in spec order. SLOs nobody published yet are left out — except a
        grouped SLO without groups yet: it is in no shard (the fleet holds instances), so it
        is shown as `no_data`, as a single daemon shows it, never silently absent."""
        mine = {r.slo.id: r for r in own}
        states = self._published()
        found: list[SLOEvaluation] = []
        for slo in self._evaluator.fleet:
            result = mine.get(slo.id)
            if result is None:
                state = states.get(slo.id)
                if state is None:
                    continue
                result = self._restore(slo, state)
            found.append(result)
        for slo in self._evaluator.undiscovered:
            state = states.get(slo.id)
            placeholder = mine.get(slo.id)
            if placeholder is None:
                placeholder = self._stale(slo, None) if state is None else self._restore(slo, state)
            found.append(placeholder)
        return found

    def _published(self) -> dict[str, PublishedState]:
        with self._cache_lock:
            fresh = time.monotonic() - self._states_read < self._timings.interval
            if fresh or not self._replicas.store_reachable():
                return self._states
        try:
            states = self._coordination.published(self._timings.member_ttl).states
        except Exception as exc:
            log.warning("cannot read the published SLO states (answering from cache): %s", exc)
            with self._cache_lock:
                return self._states
        by_id = {s.slo_id: s for s in states}
        with self._cache_lock:
            self._states, self._states_read = by_id, time.monotonic()
        return by_id

    def _restore(self, slo: SLO, state: PublishedState) -> SLOEvaluation:
        if state.age > self._timings.stale_after:
            return self._stale(slo, state)
        cached = self._restored.get(slo.id)
        if cached is not None:
            seen, result = cached
            same = (seen.evaluation, seen.status, seen.evaluated_at) == (
                state.evaluation,
                state.status,
                state.evaluated_at,
            )
            if same and result.slo is slo:
                return result
        result = evaluation_from(slo, state)
        self._restored[slo.id] = (state, result)
        return result
