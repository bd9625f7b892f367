"""The incident engine: alerts in, incidents and notifications out. Pure and clock-injected.

Every public call takes `now` (Unix seconds), works on a copy of the state and returns a
`Decision`; the engine's own state advances only when the call completes. The daemon applies
each decision to the store in one transaction; `backtest` just keeps calling. No I/O, no
wall clock, no randomness: the same inputs give the same decisions, including notification
ids, which is what makes re-applying a decision after a crash harmless.

`observe(now, alerts)` is level-triggered: `alerts` is the complete set firing now. An alert
missing from the set is clear — unless its SLO's evaluation had no data this cycle (pass the
evaluations), in which case nothing about that SLO changes: missing data never resolves.

Fatigue controls, in the order an alert meets them (and the module that applies each):
1. silences — a matching active silence keeps the alert from opening an incident or
   notifying (`silencing`);
2. tier suppression — a page of an SLO supersedes its ticket (`correlation`);
3. one incident per fingerprint while open — a re-fire joins its incident, never pages
   (`intake`);
4. correlation — same SLO, then same service within `group_window`, then a `depends_on`
   service's open incident (as related): one incident, one page (`correlation`);
4b. dependency hold-down — a new incident on a service with dependencies holds its first
   page for `dependency_wait`; a dependency's incident opening meanwhile absorbs it (merged,
   never paged). Once a page went out, a root cause failing within
   `dependency_correlation_window` takes the incident over (re-rooted, an `updated`, no
   second page; `root_cause`); a later one is only linked. Chains follow the transitive
   graph of this cycle's specs, alerts and config (`dependencies`);
5. flap detection — a flapping incident stays open and sends no repeats (`flapping`);
6. resolve only after all alerts have been clear for `resolve_after` (`timers`);
7. repeats only every `repeat_interval` while unacknowledged (`timers`);
7b. on a tier whose tickets only notify (`ticket_incidents`), a ticket that would open a new
   incident sends a notice instead: silences, dedup, repeats and a resolve, no incident
   (`tickets`);
8. a per-receiver rate limit with one summary notification when it trips (`ratelimit`).

Incident response (issue 11) on top: declaring by hand (`declare`), the status workflow and
severity changes, the four roles (`roles`), escalation from minute 0 and recovery time
objectives (`escalation`, `rto`), updates on a clock (`updates`), runbook routing
(`runbooks`), action items and the post-incident review (`actions`, `review`).

This module is the facade: each public call opens a `Transaction`, runs the concern
modules in a fixed order and returns the `Decision`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engine.alerting.alerts import Alert
from engine.evaluation.result import SLOEvaluation
from engine.incidents import actions, intake, silencing, tickets, transitions
from engine.incidents.config import IncidentConfig
from engine.incidents.correlation import inhibit_tickets, processing_order
from engine.incidents.declare import Declaration, declare
from engine.incidents.dependencies import DependencyGraph, cycle_graph, merge_edges
from engine.incidents.flapping import percent_state_change, update_flapping
from engine.incidents.holddown import fold_held
from engine.incidents.incident import OPEN_STATUSES, Incident, IncidentStatus, Severity
from engine.incidents.render import TemplateRenderer
from engine.incidents.response import ActionStatus, Role, UpdateContent
from engine.incidents.roles import assign_role
from engine.incidents.root_cause import consolidate
from engine.incidents.settings import Settings
from engine.incidents.silences import Matcher
from engine.incidents.state import Decision, EngineState
from engine.incidents.timers import run_timers
from engine.incidents.transaction import Transaction
from engine.incidents.updates import post_update, restart_clock

__all__ = ["Declaration", "IncidentEngine", "IncidentError", "percent_state_change"]

_UNKNOWN_STATUSES = frozenset({"no_data", "error"})


class IncidentError(ValueError):
    """An operation that does not apply (unknown or already resolved incident, bad input)."""


class IncidentEngine:
    def __init__(
        self,
        config: IncidentConfig | None = None,
        state: EngineState | None = None,
        renderer: TemplateRenderer | None = None,
        dependencies: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """`dependencies`: every spec's `service → depends_on`, for a caller that does not
        hand every SLO's evaluation to each `observe` (backtest passes only those that
        fired); the config's `depends_on` edges are added to it."""
        self.config = config or IncidentConfig()
        self.state = state or EngineState()
        self._settings = Settings.of(self.config, renderer)
        self.renderer = self._settings.renderer
        self._graph = DependencyGraph(merge_edges(dependencies or {}, self._settings.depends_on))

    def reset(self, state: EngineState) -> None:
        """Adopt a freshly loaded state (after the store reported a stale version)."""
        self.state = state

    # ---------------------------------------------------------------- public operations

    def observe(
        self,
        now: float,
        alerts: Sequence[Alert],
        evaluations: Iterable[SLOEvaluation] = (),
    ) -> Decision:
        """Take the complete set of alerts firing at `now`; run the timers too (`tick`)."""
        settings = self._settings
        tx = self._begin()
        now = float(now)
        evaluations = tuple(evaluations)
        unknown = {ev.slo.id for ev in evaluations if ev.status in _UNKNOWN_STATUSES}

        firing: dict[str, Alert] = {}
        for alert in alerts:
            firing.setdefault(alert.fingerprint, alert)
        inhibited = inhibit_tickets(tx, firing)

        silencing.expire_silences(tx, now)
        tx.graph = cycle_graph(
            self._graph, evaluations, firing.values(), tx.state.incidents.values()
        )
        for alert in processing_order(settings, firing.values(), tx.graph):
            intake.process_firing(settings, tx, now, alert)
        fold_held(settings, tx, now)
        consolidate(settings, tx, now)
        touched = intake.clear_missing(tx, now, firing, inhibited, unknown)

        update_flapping(settings, tx, now, firing, unknown)
        intake.reclassify_changed(settings, tx, now, touched)
        intake.prune(tx)
        run_timers(settings, tx, now)
        tickets.notice_timers(settings, tx, now)
        return self._commit(tx)

    def tick(self, now: float) -> Decision:
        """Timers only: clear-timer resolution, held pages whose `dependency_wait` is over,
        escalation, repeats, silence expiry."""
        tx = self._begin()
        now = float(now)
        silencing.expire_silences(tx, now)
        run_timers(self._settings, tx, now)
        tickets.notice_timers(self._settings, tx, now)
        return self._commit(tx)

    def acknowledge(
        self, now: float, incident_id: str, by: str, commander: str | None = None
    ) -> Decision:
        """Stops escalation and repeats. The first responder commands unless named otherwise."""
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        transitions.acknowledge(self._settings, tx, now, incident, by, commander)
        return self._commit(tx)

    def resolve(self, now: float, incident_id: str, by: str, note: str = "") -> Decision:
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        transitions.resolve(self._settings, tx, now, incident, by, note or f"resolved by {by}")
        return self._commit(tx)

    def comment(self, now: float, incident_id: str, by: str, text: str) -> Decision:
        if not text.strip():
            raise IncidentError("a comment needs text")
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        restart_clock(incident, now)  # comments reach the status page: an update
        tx.log(incident, now, "commented", text, actor=by)
        return self._commit(tx)

    def set_status(
        self, now: float, incident_id: str, status: IncidentStatus | str, by: str, note: str = ""
    ) -> Decision:
        status = IncidentStatus(status)
        if status is IncidentStatus.resolved:
            return self.resolve(now, incident_id, by, note)
        if status not in OPEN_STATUSES:
            raise IncidentError(
                f"{status.value} is not set by hand: resolve the incident, then close its review"
            )
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        transitions.change_status(self._settings, tx, now, incident, status, by, note)
        return self._commit(tx)

    def set_commander(self, now: float, incident_id: str, commander: str, by: str) -> Decision:
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        incident.commander = commander
        tx.log(incident, now, "commented", f"incident commander is now {commander}", actor=by)
        return self._commit(tx)

    def set_severity(
        self, now: float, incident_id: str, severity: Severity | str, by: str, reason: str = ""
    ) -> Decision:
        """A person's severity change — the only way severity falls."""
        severity = Severity(severity)
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        if severity is not incident.severity:
            transitions.change_severity(
                self._settings, tx, now, incident, severity, reason or "set manually", actor=by
            )
        return self._commit(tx)

    # ---------------------------------------------------------------- incident response

    def declare(self, now: float, declaration: Declaration, by: str) -> Decision:
        """Open an incident by hand (no alert needed); the decision's first incident is it."""
        if not declaration.title.strip():
            raise IncidentError("a declared incident needs a title")
        tx = self._begin()
        incident = declare(self._settings, tx, float(now), declaration, by)
        tx.incidents = {incident.id: incident, **tx.incidents}
        return self._commit(tx)

    def assign_role(
        self, now: float, incident_id: str, role: Role | str, person: str, by: str
    ) -> Decision:
        """Assign a role, or hand it over from whoever held it."""
        role = role if isinstance(role, Role) else Role.parse(role)
        if not person.strip():
            raise IncidentError("a role needs a person")
        tx = self._begin()
        incident = self._open_incident(tx, incident_id)
        assign_role(self._settings, tx, float(now), incident, role, person, by)
        return self._commit(tx)

    def post_update(
        self, now: float, incident_id: str, by: str, content: UpdateContent
    ) -> Decision:
        """A stakeholder update: to the receivers, and to the status page when public."""
        tx = self._begin()
        incident = self._open_incident(tx, incident_id)
        post_update(self._settings, tx, float(now), incident, by, content)
        return self._commit(tx)

    def add_action_item(
        self,
        now: float,
        incident_id: str,
        text: str,
        owner: str | None,
        by: str,
        stored: Incident | None = None,
    ) -> Decision:
        """`stored`: the incident as the store has it, for one that is no longer open."""
        if not text.strip():
            raise IncidentError("an action item needs text")
        tx = self._begin()
        incident = self._any_incident(tx, incident_id, stored)
        actions.add_action_item(tx, float(now), incident, text, owner, by)
        return self._commit(tx)

    def change_action_item(
        self,
        now: float,
        incident_id: str,
        item_id: str,
        by: str,
        status: ActionStatus | None = None,
        owner: str | None = actions.KEEP,
        stored: Incident | None = None,
    ) -> Decision:
        tx = self._begin()
        incident = self._any_incident(tx, incident_id, stored)
        try:
            actions.change_action_item(tx, float(now), incident, item_id, by, status, owner)
        except KeyError as exc:
            raise IncidentError(str(exc.args[0])) from None
        return self._commit(tx)

    def close_review(
        self, now: float, incident_id: str, by: str, note: str = "", stored: Incident | None = None
    ) -> Decision:
        tx = self._begin()
        incident = self._any_incident(tx, incident_id, stored)
        try:
            actions.close_review(tx, float(now), incident, by, note)
        except ValueError as exc:
            raise IncidentError(str(exc)) from None
        return self._commit(tx)

    def add_silence(
        self,
        now: float,
        matchers: Sequence[str | Matcher],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str = "",
    ) -> Decision:
        tx = self._begin()
        now = float(now)
        silencing.add_silence(tx, now, matchers, starts_at, ends_at, created_by, comment)
        return self._commit(tx)

    def expire_silence(self, now: float, silence_id: str) -> Decision:
        tx = self._begin()
        now = float(now)
        if not silencing.end_silence(tx, now, silence_id):
            raise IncidentError(f"no active silence {silence_id}")
        return self._commit(tx)

    # ---------------------------------------------------------------- transaction plumbing

    def _begin(self) -> Transaction:
        return Transaction.begin(self.state)

    def _commit(self, tx: Transaction) -> Decision:
        decision = tx.decision()
        self.state = tx.state
        return decision

    def _open_incident(self, tx: Transaction, incident_id: str) -> Incident:
        incident = tx.state.incidents.get(incident_id)
        if incident is None:
            raise IncidentError(f"{incident_id} is not an open incident (unknown or resolved)")
        return incident

    def _any_incident(self, tx: Transaction, incident_id: str, stored: Incident | None) -> Incident:
        """An open incident from the state, else the closed one the caller loaded (with its
        full timeline: new entries are numbered after it)."""
        incident = tx.state.incidents.get(incident_id)
        if incident is not None:
            return incident
        if stored is None or stored.id != incident_id or stored.is_open:
            raise IncidentError(f"no incident {incident_id}")
        return stored.clone()
