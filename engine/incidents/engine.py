"""The incident engine: alerts in, incidents and notifications out. Pure and clock-injected.

Every public call takes `now` (Unix seconds), works on a copy of the state and returns a
`Decision`; the engine's own state advances only when the call completes. The daemon applies
each decision to the store in one transaction; `backtest` just keeps calling. No I/O, no
wall clock, no randomness: the same inputs give the same decisions, including notification
ids, which is what makes re-applying a decision after a crash harmless.

`observe(now, alerts)` is level-triggered: `alerts` is the complete set firing now. An alert
missing from the set is clear — unless its SLO's evaluation had no data this cycle (pass the
evaluations), in which case nothing about that SLO changes: missing data never resolves.

Fatigue controls, in the order an alert meets them:
1. silences — a matching active silence keeps the alert from opening an incident or notifying;
2. tier suppression — a page of an SLO supersedes its ticket;
3. one incident per fingerprint while open — a re-fire joins its incident, never pages;
4. correlation — same SLO, then same service within `group_window`, then a `depends_on`
   service's open incident (as related): one incident, one page;
4b. dependency hold-down — a new incident on a service with dependencies holds its first
   page for `dependency_wait`; a dependency's incident opening meanwhile absorbs it (merged,
   never paged). Once a page went out, a later root cause is only linked (see `_open`);
5. flap detection — a flapping incident stays open and sends no repeats;
6. resolve only after all alerts have been clear for `resolve_after`;
7. repeats only every `repeat_interval` while unacknowledged;
8. a per-receiver rate limit with one summary notification when it trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from engine.alerting.alerts import Alert
from engine.evaluation.result import SLOEvaluation
from engine.incidents.classify import classify_alert
from engine.incidents.config import IncidentConfig, RateLimit
from engine.incidents.incident import (
    Incident,
    IncidentStatus,
    Notification,
    NotificationEvent,
    Severity,
    TimelineEntry,
    TimelineKind,
    iso,
)
from engine.incidents.render import TemplateRenderer
from engine.incidents.silences import Matcher, Silence, parse_matchers
from engine.incidents.state import (
    FLAP_HISTORY,
    AlertState,
    Decision,
    EngineState,
    FlapState,
    RateState,
    Suppression,
    SuppressionReason,
    TimelineRecord,
)

# Rate limits protect people from storms of *new* information; acknowledgements and
# resolutions close things at the receiver and always go out.
_PAGE_LIKE: frozenset[str] = frozenset({"triggered", "escalated", "updated"})
_UNKNOWN_STATUSES = frozenset({"no_data", "error"})
_NO_FLAP = FlapState()


class IncidentError(ValueError):
    """An operation that does not apply (unknown or already resolved incident, bad input)."""


def percent_state_change(states: Sequence[bool]) -> float:
    """Nagios' weighted percent state change over up to 21 states (oldest first).

    The 20 possible transitions are weighted linearly from 0.75 (oldest) to 1.25 (newest),
    so recent flapping counts more; the sum is scaled to a percentage of 20 transitions. A
    short history is treated as if padded with its oldest state (padding adds no changes).
    """
    n = len(states)
    slots = FLAP_HISTORY - 1
    offset = FLAP_HISTORY - n  # position of states[0] in a full window
    total = 0.0
    for i in range(1, n):
        if states[i] != states[i - 1]:
            x = offset + i  # 1..20 in a full window
            total += 0.75 + (x - 1) * 0.5 / (slots - 1)
    return total * 100.0 / slots


def _evolve(record: Any, **changes: Any) -> Any:
    """`dataclasses.replace` for the engine's frozen records, minus the re-validation that
    makes `replace` the hottest line of a backtest."""
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new


def incident_year(now: float) -> int:
    return datetime.fromtimestamp(now, tz=UTC).year


@dataclass
class _Tx:
    """One engine call in progress: a working copy of the state plus what changed."""

    state: EngineState
    base_version: int
    dirty: bool = False
    incidents: dict[str, Incident] = field(default_factory=dict)
    timeline: list[TimelineRecord] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    silences_upserted: list[Silence] = field(default_factory=list)
    silences_deleted: list[str] = field(default_factory=list)
    suppressed: list[Suppression] = field(default_factory=list)

    def touch(self, incident: Incident) -> None:
        self.dirty = True
        self.incidents[incident.id] = incident

    def log(
        self,
        incident: Incident,
        at: float,
        kind: TimelineKind,
        message: str,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        entry = TimelineEntry(at=at, kind=kind, message=message, actor=actor, data=data or {})
        incident.timeline.append(entry)
        self.timeline.append(TimelineRecord(incident.id, len(incident.timeline) - 1, entry))
        self.touch(incident)

    def suppress(self, reason: SuppressionReason, **kw: Any) -> None:
        self.suppressed.append(Suppression(reason=reason, **kw))


class IncidentEngine:
    def __init__(
        self,
        config: IncidentConfig | None = None,
        state: EngineState | None = None,
        renderer: TemplateRenderer | None = None,
    ) -> None:
        self.config = config or IncidentConfig()
        self.state = state or EngineState()
        self._targets = {s: d.seconds for s, d in self.config.response_targets.items()}
        self.renderer = renderer or TemplateRenderer(
            self.config.templates_dir,
            response_targets=self._targets,
            status_page_url=self.config.status_page_url,
        )
        self._chain = self.config.escalation_chain()
        self._group_window = self.config.group_window.seconds
        self._resolve_after = self.config.resolve_after.seconds
        self._repeat = self.config.repeat_interval.seconds
        self._depends_on = {k: tuple(v) for k, v in self.config.depends_on.items()}
        self._dependency_wait = self.config.dependency_wait.seconds
        self._hold_severities = frozenset(self.config.dependency_wait_severities)

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
        tx = self._begin()
        now = float(now)
        st = tx.state
        unknown = {ev.slo.id for ev in evaluations if ev.status in _UNKNOWN_STATUSES}

        firing: dict[str, Alert] = {}
        for alert in alerts:
            firing.setdefault(alert.fingerprint, alert)
        inhibited = self._inhibit_tickets(tx, firing)

        self._expire_silences(tx, now)
        for alert in self._processing_order(firing.values()):
            self._process_firing(tx, now, alert)
        self._fold_held(tx, now)

        touched: set[str] = set()
        for fp, ast in list(st.alerts.items()):
            if ast.slo_id in unknown and fp not in firing:
                # A clear must be *observed* for `resolve_after`: while the SLO has no data
                # the clear timer restarts, so missing data never resolves an incident.
                if ast.cleared_at is not None and ast.incident_id in st.incidents:
                    st.alerts[fp] = _evolve(ast, cleared_at=now)
                    tx.dirty = True
                continue
            if fp in firing:
                continue
            if ast.cleared_at is None:
                st.alerts[fp] = _evolve(ast, cleared_at=now, needs_clear=False, classified=None)
                tx.dirty = True
                incident = st.incidents.get(ast.incident_id or "")
                if incident is not None:
                    touched.add(incident.id)
                    if not incident.flapping:
                        why = " (superseded by the page)" if fp in inhibited else ""
                        tx.log(
                            incident,
                            now,
                            "alert_cleared",
                            f"{ast.severity} alert on {ast.slo_id} cleared{why}",
                            data={"fingerprint": fp},
                        )

        self._update_flapping(tx, now, firing, unknown)
        for incident in st.incidents.values():
            if incident.id in touched or any(
                st.alerts.get(fp) is not None and st.alerts[fp].last_seen == now
                for fp in incident.fingerprints
            ):
                self._reclassify(tx, now, incident)
        self._prune(tx)
        self._run_timers(tx, now)
        return self._commit(tx)

    def tick(self, now: float) -> Decision:
        """Timers only: clear-timer resolution, held pages whose `dependency_wait` is over,
        escalation, repeats, silence expiry."""
        tx = self._begin()
        now = float(now)
        self._expire_silences(tx, now)
        self._run_timers(tx, now)
        return self._commit(tx)

    def acknowledge(
        self, now: float, incident_id: str, by: str, commander: str | None = None
    ) -> Decision:
        """Stops escalation and repeats. The first responder commands unless named otherwise."""
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        if incident.acknowledged_at is not None:
            tx.log(incident, now, "acknowledged", f"acknowledged again by {by}", actor=by)
            return self._commit(tx)
        incident.acknowledged_at = now
        incident.acknowledged_by = by
        if commander or incident.commander is None:
            incident.commander = commander or by
        tx.log(
            incident,
            now,
            "acknowledged",
            f"acknowledged by {by}; incident commander {incident.commander}",
            actor=by,
        )
        if incident.held_until is not None:
            # Someone already handles it: no page is needed, and an incident a person took
            # is no longer folded away into another one (a later root cause only links).
            self._release(tx, now, incident, f"acknowledged by {by} before the page")
        self._notify(tx, now, incident, "acknowledged", incident.notified_receivers)
        return self._commit(tx)

    def resolve(self, now: float, incident_id: str, by: str, note: str = "") -> Decision:
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        self._resolve(tx, now, incident, by, note or f"resolved by {by}")
        return self._commit(tx)

    def comment(self, now: float, incident_id: str, by: str, text: str) -> Decision:
        if not text.strip():
            raise IncidentError("a comment needs text")
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        tx.log(incident, now, "commented", text, actor=by)
        return self._commit(tx)

    def set_status(
        self, now: float, incident_id: str, status: IncidentStatus | str, by: str, note: str = ""
    ) -> Decision:
        status = IncidentStatus(status)
        if status is IncidentStatus.resolved:
            return self.resolve(now, incident_id, by, note)
        tx = self._begin()
        now = float(now)
        incident = self._open_incident(tx, incident_id)
        if incident.status is not status:
            old = incident.status
            incident.status = status
            tx.log(
                incident,
                now,
                "status_changed",
                f"status {old.value} → {status.value}" + (f": {note}" if note else ""),
                actor=by,
                data={"from": old.value, "to": status.value},
            )
            self._refresh_customer_notice(incident)
            self._notify(tx, now, incident, "updated", incident.notified_receivers)
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
            self._change_severity(tx, now, incident, severity, reason or "set manually", actor=by)
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
        st = tx.state
        st.silence_seq += 1
        silence = Silence(
            id=f"SIL-{st.silence_seq:06d}",
            matchers=parse_matchers(matchers),
            starts_at=float(starts_at),
            ends_at=float(ends_at),
            created_by=created_by,
            comment=comment,
            created_at=now,
        )
        st.silences[silence.id] = silence
        tx.silences_upserted.append(silence)
        tx.dirty = True
        return self._commit(tx)

    def expire_silence(self, now: float, silence_id: str) -> Decision:
        tx = self._begin()
        now = float(now)
        silence = tx.state.silences.pop(silence_id, None)
        if silence is None:
            raise IncidentError(f"no active silence {silence_id}")
        tx.silences_upserted.append(replace(silence, ends_at=max(now, silence.starts_at + 0.001)))
        tx.dirty = True
        return self._commit(tx)

    # ---------------------------------------------------------------- transaction plumbing

    def _begin(self) -> _Tx:
        return _Tx(state=self.state.clone(), base_version=self.state.version)

    def _commit(self, tx: _Tx) -> Decision:
        if tx.dirty:
            tx.state.version = tx.base_version + 1
        self.state = tx.state
        return Decision(
            base_version=tx.base_version,
            state=tx.state,
            incidents=list(tx.incidents.values()),
            timeline=tx.timeline,
            notifications=tx.notifications,
            silences_upserted=tx.silences_upserted,
            silences_deleted=tx.silences_deleted,
            suppressed=tx.suppressed,
        )

    def _open_incident(self, tx: _Tx, incident_id: str) -> Incident:
        incident = tx.state.incidents.get(incident_id)
        if incident is None:
            raise IncidentError(f"{incident_id} is not an open incident (unknown or resolved)")
        return incident

    # ---------------------------------------------------------------- alerts → incidents

    def _inhibit_tickets(self, tx: _Tx, firing: dict[str, Alert]) -> set[str]:
        """A page supersedes the ticket of the same SLO: one problem, one (louder) alert."""
        paged = {a.slo_id for a in firing.values() if a.severity == "page"}
        inhibited = {fp for fp, a in firing.items() if a.severity == "ticket" and a.slo_id in paged}
        for fp in inhibited:
            del firing[fp]
            tx.suppress("inhibited_by_page", fingerprint=fp)
        return inhibited

    def _deps(self, alert: Alert) -> set[str]:
        return set(alert.depends_on) | set(self._depends_on.get(alert.service, ()))

    def _processing_order(self, alerts: Iterable[Alert]) -> list[Alert]:
        # Root causes before their victims, so a victim firing in the same cycle as the
        # service it depends on joins that incident instead of opening its own. Pages before
        # tickets so the incident starts at the right severity. Then a stable order.
        alerts = list(alerts)
        firing_services = {a.service for a in alerts}
        rank = {"page": 0, "ticket": 1, "anomaly": 2}
        return sorted(
            alerts,
            key=lambda a: (
                bool(self._deps(a) & firing_services),
                rank[a.severity],
                a.service,
                a.slo_id,
                a.fingerprint,
            ),
        )

    def _silenced(self, st: EngineState, alert: Alert, now: float) -> bool:
        return any(s.matches(alert.labels, now) for s in st.silences.values())

    def _process_firing(self, tx: _Tx, now: float, alert: Alert) -> None:
        st = tx.state
        fp = alert.fingerprint
        tx.dirty = True
        silenced = self._silenced(st, alert, now)
        classified = classify_alert(alert, self.config.severity_rules)
        prior = st.alerts.get(fp)
        incident = None if prior is None else st.incidents.get(prior.incident_id or "")

        if prior is not None and prior.needs_clear:
            st.alerts[fp] = _evolve(prior, last_seen=now, silenced=silenced)
            tx.suppress("resolved_while_firing", fingerprint=fp)
            return

        if incident is not None:
            assert prior is not None
            st.alerts[fp] = _evolve(
                prior,
                labels=dict(alert.labels),
                last_seen=now,
                cleared_at=None,
                silenced=silenced,
                classified=classified.severity.value,
            )
            if prior.cleared_at is not None and not incident.flapping:
                tx.log(
                    incident,
                    now,
                    "alert_joined",
                    f"{alert.severity} alert on {alert.slo_id} fired again",
                    data={"fingerprint": fp, "refire": True},
                )
            return

        state = AlertState(
            fingerprint=fp,
            labels=dict(alert.labels),
            slo_id=alert.slo_id,
            service=alert.service,
            severity=alert.severity,
            first_seen=now if prior is None or prior.cleared_at is not None else prior.first_seen,
            last_seen=now,
            silenced=silenced,
            classified=classified.severity.value,
        )
        if silenced:
            st.alerts[fp] = state
            tx.suppress("silenced", fingerprint=fp)
            return

        target, how = self._find_incident(st, now, alert)
        if target is None:
            incident = self._open(tx, now, alert, classified.severity, classified.reason)
            st.alerts[fp] = _evolve(state, incident_id=incident.id)
            return

        st.alerts[fp] = _evolve(state, incident_id=target.id)
        target.fingerprints.append(fp)
        if alert.service == target.service:
            for dep in sorted(self._deps(alert)):
                if dep not in target.depends_on:
                    target.depends_on.append(dep)
        if alert.slo_id not in target.slo_ids:
            target.slo_ids.append(alert.slo_id)
        if how == "dependency":
            if alert.service != target.service and alert.service not in target.related_services:
                target.related_services.append(alert.service)
            tx.log(
                target,
                now,
                "related",
                f"{alert.service} ({alert.slo_id} {alert.severity}) depends on "
                f"{target.service}: correlated with this incident, no separate page",
                data={"fingerprint": fp, "service": alert.service, "slo": alert.slo_id},
            )
        else:
            tx.log(
                target,
                now,
                "alert_joined",
                f"{alert.severity} alert on {alert.slo_id} joined ({how})",
                data={"fingerprint": fp, "slo": alert.slo_id, "reason": how},
            )

    def _find_incident(
        self, st: EngineState, now: float, alert: Alert
    ) -> tuple[Incident | None, str]:
        incidents = sorted(st.incidents.values(), key=lambda i: (i.opened_at, i.id))
        for incident in incidents:
            if alert.slo_id in incident.slo_ids:
                return incident, "same SLO"
        for incident in incidents:
            if incident.service == alert.service and now - incident.opened_at <= self._group_window:
                return incident, "same service"
        deps = self._deps(alert)
        if deps:
            for incident in incidents:
                if incident.service in deps or deps & set(incident.related_services):
                    return incident, "dependency"
        return None, ""

    def _open(self, tx: _Tx, now: float, alert: Alert, severity: Severity, reason: str) -> Incident:
        st = tx.state
        year = incident_year(now)
        number = st.sequences.get(year, 0) + 1
        st.sequences[year] = number
        incident = Incident(
            id=f"INC-{year}-{number:04d}",
            service=alert.service,
            severity=severity,
            status=IncidentStatus.investigating,
            summary=alert.summary,
            opened_at=now,
            slo_ids=[alert.slo_id],
            fingerprints=[alert.fingerprint],
            runbook_url=alert.runbook_url or alert.annotations.get("runbook_url"),
            dashboard_url=alert.dashboard_url,
            severity_changed_at=now,
            depends_on=sorted(self._deps(alert)),
        )
        st.incidents[incident.id] = incident
        tx.log(
            incident,
            now,
            "opened",
            f"opened as {severity.value}: {reason}",
            data={
                "fingerprint": alert.fingerprint,
                "labels": dict(alert.labels),
                "alert_severity": alert.severity,
                "short_error_ratio": alert.short_error_ratio,
                "recent_error_ratio": alert.recent_error_ratio,
                "error_budget_remaining": alert.error_budget_remaining,
                "burn_rate": alert.burn_rate,
            },
        )
        for other in st.incidents.values():
            if other.id != incident.id and other.service == incident.service:
                tx.log(
                    incident,
                    now,
                    "related",
                    f"{other.id} on the same service is still open (opened before the "
                    f"{self.config.group_window} grouping window)",
                    data={"incident": other.id},
                )
        # This may be the root cause of incidents opened a little earlier on services that
        # depend on it: absorb those still holding their page, link those already paged.
        held_since = self._fold_into(tx, now, incident)
        self._link_dependents(tx, now, incident)
        if self._should_hold(incident):
            # Never delay a page more than dependency_wait past the first alert it covers.
            until = min([now + self._dependency_wait, *held_since])
            incident.held_until = until
            tx.log(
                incident,
                now,
                "held",
                f"page held until {iso(until)}: {incident.service} depends on "
                f"{', '.join(incident.depends_on)}; an incident there within "
                f"{self.config.dependency_wait} takes this one over",
                data={"until": until, "depends_on": list(incident.depends_on)},
            )
            tx.suppress("dependency_wait", incident_id=incident.id)
            return incident
        self._refresh_customer_notice(incident)
        self._notify(tx, now, incident, "triggered", self._routed(incident.severity))
        return incident

    # ---------------------------------------------------------------- dependency hold-down

    def _should_hold(self, incident: Incident) -> bool:
        return (
            self._dependency_wait > 0
            and bool(incident.depends_on)
            and incident.severity in self._hold_severities
        )

    @staticmethod
    def _caused_by(victim: Incident, root: Incident) -> bool:
        """`root` is on a service `victim` depends on, directly or through a service already
        correlated with it (the chain rule `_find_incident` follows)."""
        if not victim.depends_on or victim.id == root.id:
            return False
        return root.service in victim.depends_on or bool(
            set(victim.depends_on) & set(root.related_services)
        )

    def _fold_into(self, tx: _Tx, now: float, root: Incident) -> list[float]:
        """Merge every held incident caused by `root` into it (following chains: once api is
        folded into db, a held web that depends on api follows). Returns the folded
        incidents' hold deadlines. `root` was just opened and has not paged yet, so a
        severity rise is applied quietly: its first page carries it."""
        deadlines: list[float] = []
        while True:
            victims = [
                v
                for v in sorted(tx.state.incidents.values(), key=lambda i: i.id)
                if v.held_until is not None and self._caused_by(v, root)
            ]
            if not victims:
                return deadlines
            for victim in victims:
                deadlines.append(victim.held_until)  # type: ignore[arg-type]
                self._merge(tx, now, victim, root, announce=False)

    def _fold_held(self, tx: _Tx, now: float) -> None:
        """After a cycle's alerts: fold held incidents whose root cause has an incident by
        now (e.g. a dependency whose alert joined a third incident as related)."""
        st = tx.state
        if not any(i.held_until is not None for i in st.incidents.values()):
            return
        for victim in sorted(list(st.incidents.values()), key=lambda i: i.id):
            if victim.held_until is None or victim.id not in st.incidents:
                continue
            root = next(
                (
                    r
                    for r in sorted(st.incidents.values(), key=lambda i: (i.opened_at, i.id))
                    if self._caused_by(victim, r)
                ),
                None,
            )
            if root is not None:
                if root.held_until is not None:
                    root.held_until = min(root.held_until, victim.held_until)
                self._merge(tx, now, victim, root, announce=True)

    def _merge(self, tx: _Tx, now: float, victim: Incident, root: Incident, announce: bool) -> None:
        """Fold a held (never paged) incident into its root cause's incident and resolve it
        as merged. Nothing is ever sent for the victim: it has no notified receivers."""
        st = tx.state
        moved = [fp for fp in victim.fingerprints if fp not in root.fingerprints]
        root.fingerprints.extend(moved)
        for slo_id in victim.slo_ids:
            if slo_id not in root.slo_ids:
                root.slo_ids.append(slo_id)
        for service in (victim.service, *victim.related_services):
            if service != root.service and service not in root.related_services:
                root.related_services.append(service)
        for fp in victim.fingerprints:
            ast = st.alerts.get(fp)
            if ast is not None and ast.incident_id == victim.id:
                st.alerts[fp] = _evolve(ast, incident_id=root.id)
        tx.log(
            root,
            now,
            "related",
            f"{victim.id} on {victim.service} (depends on {root.service}) merged into this "
            f"incident before it paged: {', '.join(victim.slo_ids)}",
            data={
                "incident": victim.id,
                "service": victim.service,
                "slos": list(victim.slo_ids),
                "fingerprints": list(victim.fingerprints),
                "merged": True,
            },
        )
        victim.held_until = None
        victim.merged_into = root.id
        victim.status = IncidentStatus.resolved
        victim.resolved_at = now
        victim.flapping = False
        # It was never announced to anyone; its customer notice must not surface either.
        victim.customer_notice = None
        tx.log(
            victim,
            now,
            "merged",
            f"merged into {root.id} on {root.service}, which {victim.service} depends on: "
            "one incident for the root cause; no notification was sent for this one",
            data={"incident": root.id, "service": root.service},
        )
        tx.log(victim, now, "resolved", f"merged into {root.id}", data={"merged_into": root.id})
        del st.incidents[victim.id]

        levels = [
            Severity(st.alerts[fp].classified)  # type: ignore[arg-type]
            for fp in victim.fingerprints
            if fp in st.alerts
            and st.alerts[fp].cleared_at is None
            and st.alerts[fp].classified is not None
        ]
        target = Severity.most_severe(*levels) if levels else None
        if target is not None and target.is_more_severe_than(root.severity):
            reason = f"alerts of merged {victim.id} ({victim.service}) justify it"
            if announce:
                self._change_severity(tx, now, root, target, reason)
            else:
                old = root.severity
                root.severity = target
                root.suggested_severity = None
                root.severity_changed_at = now
                tx.log(
                    root,
                    now,
                    "severity_changed",
                    f"severity {old.value} → {target.value}: {reason}",
                    data={"from": old.value, "to": target.value, "applied": True},
                )
        self._refresh_customer_notice(root)

    def _link_dependents(self, tx: _Tx, now: float, root: Incident) -> None:
        """Incidents of dependent services that already paged stay as they are (no merge
        after a page, no second page) but both timelines record the likely root cause."""
        for other in sorted(tx.state.incidents.values(), key=lambda i: i.id):
            if other.held_until is not None or not self._caused_by(other, root):
                continue
            for service in (other.service, *other.related_services):
                if service != root.service and service not in root.related_services:
                    root.related_services.append(service)
            tx.log(
                root,
                now,
                "related",
                f"{other.id} on {other.service} (depends on {root.service}) was already "
                "notified: linked, not merged",
                data={"incident": other.id, "service": other.service, "merged": False},
            )
            tx.log(
                other,
                now,
                "related",
                f"{root.id} opened on {root.service}, which {other.service} depends on: "
                "likely root cause",
                data={"incident": root.id, "service": root.service, "root_cause": True},
            )

    def _release(self, tx: _Tx, now: float, incident: Incident, why: str) -> None:
        """End a dependency hold: page now unless a person already acknowledged it."""
        incident.held_until = None
        tx.log(incident, now, "hold_ended", f"page no longer held: {why}", data={"reason": why})
        if incident.acknowledged_at is not None:
            return
        self._refresh_customer_notice(incident)
        self._notify(tx, now, incident, "triggered", self._routed(incident.severity))

    # ---------------------------------------------------------------- severity

    def _reclassify(self, tx: _Tx, now: float, incident: Incident) -> None:
        st = tx.state
        levels = [
            Severity(st.alerts[fp].classified)  # type: ignore[arg-type]
            for fp in incident.fingerprints
            if fp in st.alerts
            and st.alerts[fp].cleared_at is None
            and st.alerts[fp].classified is not None
        ]
        if not levels:
            return
        target = Severity.most_severe(*levels)
        if target.is_more_severe_than(incident.severity):
            self._change_severity(tx, now, incident, target, "alerts now justify it")
        elif target is incident.severity:
            incident.suggested_severity = None
        elif target is not incident.suggested_severity:
            incident.suggested_severity = target
            tx.log(
                incident,
                now,
                "severity_changed",
                f"alerts now justify {target.value}; severity stays {incident.severity.value} "
                "until a person lowers it",
                data={"from": incident.severity.value, "to": target.value, "applied": False},
            )

    def _change_severity(
        self,
        tx: _Tx,
        now: float,
        incident: Incident,
        severity: Severity,
        reason: str,
        actor: str | None = None,
    ) -> None:
        old = incident.severity
        incident.severity = severity
        incident.suggested_severity = None
        rising = severity.is_more_severe_than(old)
        if rising:
            # A more severe incident gets a fresh (shorter) response target; levels already
            # notified stay notified.
            incident.severity_changed_at = now
        tx.log(
            incident,
            now,
            "severity_changed",
            f"severity {old.value} → {severity.value}: {reason}",
            actor=actor,
            data={"from": old.value, "to": severity.value, "applied": True},
        )
        self._refresh_customer_notice(incident)
        if incident.held_until is not None:
            # Nobody has been told yet: the held page will carry the new severity — unless
            # this severity is one that must not wait.
            if severity not in self._hold_severities:
                self._release(tx, now, incident, f"severity rose to {severity.value}")
            return
        routed = self._routed(severity) if rising else []
        told = [r for r in incident.notified_receivers if r not in routed]
        new = [r for r in routed if r not in incident.notified_receivers]
        again = [r for r in routed if r in incident.notified_receivers]
        self._notify(tx, now, incident, "updated", again + told)
        self._notify(tx, now, incident, "triggered", new)

    def _refresh_customer_notice(self, incident: Incident) -> None:
        if incident.severity in self.config.customer_notice_severities or (
            incident.customer_notice is not None
        ):
            incident.customer_notice = self.renderer.customer_notice(incident)

    # ---------------------------------------------------------------- flapping

    def _update_flapping(
        self, tx: _Tx, now: float, firing: dict[str, Alert], unknown: set[str]
    ) -> None:
        st = tx.state
        flap = self.config.flap
        if not flap.enabled:
            return
        for fp, ast in st.alerts.items():
            if ast.slo_id in unknown:
                continue
            old = st.flap.get(fp, _NO_FLAP)
            now_firing = fp in firing
            if (
                not old.flapping
                and old.percent == 0.0
                and len(old.states) == FLAP_HISTORY
                and old.states[-1] == now_firing
            ):
                continue  # a full, steady history stays exactly the same
            states = (*old.states, now_firing)[-FLAP_HISTORY:]
            percent = percent_state_change(states)
            flapping = old.flapping
            if not flapping and percent >= flap.high_threshold:
                flapping = True
            elif flapping and percent <= flap.low_threshold:
                flapping = False
            st.flap[fp] = FlapState(states=states, flapping=flapping, percent=round(percent, 3))
        for incident in st.incidents.values():
            now_flapping = any(
                st.flap.get(fp, FlapState()).flapping for fp in incident.fingerprints
            )
            if now_flapping == incident.flapping:
                continue
            incident.flapping = now_flapping
            percent = max(
                (st.flap[fp].percent for fp in incident.fingerprints if fp in st.flap), default=0.0
            )
            if now_flapping:
                tx.log(
                    incident,
                    now,
                    "flapping_started",
                    f"alerts flapping ({percent:.0f}% state change ≥ {flap.high_threshold:g}%): "
                    "the incident stays open and repeats are held",
                    data={"percent": percent},
                )
            else:
                tx.log(
                    incident,
                    now,
                    "flapping_stopped",
                    f"alerts stable again ({percent:.0f}% ≤ {flap.low_threshold:g}%)",
                    data={"percent": percent},
                )

    def _prune(self, tx: _Tx) -> None:
        """Forget cleared alerts with no incident once their flap history is quiet."""
        st = tx.state
        for fp, ast in list(st.alerts.items()):
            if ast.cleared_at is None or ast.needs_clear:
                continue
            if ast.incident_id is not None and ast.incident_id in st.incidents:
                continue
            fs = st.flap.get(fp)
            if fs is not None and (fs.flapping or any(fs.states)):
                continue
            del st.alerts[fp]
            st.flap.pop(fp, None)
            tx.dirty = True

    # ---------------------------------------------------------------- timers

    def _expire_silences(self, tx: _Tx, now: float) -> None:
        st = tx.state
        for sid, silence in list(st.silences.items()):
            if silence.expired(now):
                del st.silences[sid]
                tx.dirty = True

    def _quiet(self, st: EngineState, incident: Incident) -> bool:
        """Every firing alert of the incident is silenced: keep it open, keep it quiet."""
        firing = [
            st.alerts[fp]
            for fp in incident.fingerprints
            if fp in st.alerts and st.alerts[fp].cleared_at is None
        ]
        return bool(firing) and all(a.silenced for a in firing)

    def _clear_for(self, st: EngineState, incident: Incident, now: float) -> bool:
        for fp in incident.fingerprints:
            ast = st.alerts.get(fp)
            if ast is None:
                continue
            if ast.cleared_at is None or now - ast.cleared_at < self._resolve_after:
                return False
        return True

    def _run_timers(self, tx: _Tx, now: float) -> None:
        st = tx.state
        for incident in sorted(st.incidents.values(), key=lambda i: i.id):
            if not incident.flapping and self._clear_for(st, incident, now):
                self._resolve(
                    tx,
                    now,
                    incident,
                    None,
                    f"all alerts clear for {self.config.resolve_after}: resolved automatically",
                )
                continue
            if incident.held_until is not None:
                # A held page goes out when the wait is over (not while every alert is
                # silenced: then it waits for the silence, like an unheld incident's repeats).
                if now < incident.held_until or self._quiet(st, incident):
                    continue
                self._release(
                    tx,
                    now,
                    incident,
                    f"no incident on {', '.join(incident.depends_on)} within "
                    f"{self.config.dependency_wait}",
                )
            if incident.acknowledged_at is not None or self._quiet(st, incident):
                continue
            self._escalate(tx, now, incident)
            if incident.flapping:
                if (
                    incident.last_notified_at is not None
                    and now - incident.last_notified_at >= self._repeat
                ):
                    tx.suppress("flapping", incident_id=incident.id)
                continue
            if (
                incident.last_notified_at is not None
                and now - incident.last_notified_at >= self._repeat
            ):
                receivers = self._routed(incident.severity)
                self._notify(tx, now, incident, "triggered", receivers, repeat=True)
                if not receivers:
                    incident.last_notified_at = now
                    tx.touch(incident)

    def _escalate(self, tx: _Tx, now: float, incident: Incident) -> None:
        start = incident.severity_changed_at or incident.opened_at
        deadline = start + self._targets[incident.severity]
        while incident.escalation_level < len(self._chain):
            level = self._chain[incident.escalation_level]
            if now < deadline + level.after.seconds:
                return
            incident.escalation_level += 1
            who = ", ".join(level.receivers) or "nobody configured"
            tx.log(
                incident,
                now,
                "escalated",
                f"unacknowledged past the {incident.severity.value} response target: escalated "
                f"to level {incident.escalation_level} {level.name} ({who})",
                data={"level": incident.escalation_level, "name": level.name},
            )
            self._notify(tx, now, incident, "escalated", level.receivers, escalated_to=level.name)

    def _resolve(self, tx: _Tx, now: float, incident: Incident, by: str | None, note: str) -> None:
        st = tx.state
        incident.status = IncidentStatus.resolved
        incident.resolved_at = now
        incident.flapping = False
        incident.held_until = None  # resolved before its page: nobody needs to hear of it
        tx.log(incident, now, "resolved", note, actor=by)
        for fp in incident.fingerprints:
            ast = st.alerts.get(fp)
            if ast is None or ast.incident_id != incident.id:
                continue
            # Still firing when a person resolved it: it must clear before it may page again.
            st.alerts[fp] = _evolve(ast, incident_id=None, needs_clear=ast.cleared_at is None)
        del st.incidents[incident.id]
        self._refresh_customer_notice(incident)
        self._notify(tx, now, incident, "resolved", incident.notified_receivers)

    # ---------------------------------------------------------------- notifications

    def _routed(self, severity: Severity) -> list[str]:
        return [r.name for r in self.config.receivers if severity in r.severities]

    def _notify(
        self,
        tx: _Tx,
        now: float,
        incident: Incident,
        event: NotificationEvent,
        receivers: Sequence[str],
        repeat: bool = False,
        escalated_to: str = "",
    ) -> None:
        receivers = list(dict.fromkeys(receivers))
        if not receivers:
            return
        page_like = event in _PAGE_LIKE
        if page_like and incident.held_until is not None:
            return  # the dependency hold-down decides when (and whether) this one pages
        allowed = [r for r in receivers if not page_like or self._rate_ok(tx, now, incident, r)]
        if page_like:
            incident.last_notified_at = now
        tx.touch(incident)
        if not allowed:
            return
        snapshot = incident.webhook_snapshot()
        title = self.renderer.title(incident, event)
        message = self.renderer.internal_notification(incident, event, escalated_to=escalated_to)
        for receiver in allowed:
            incident.notification_seq += 1
            tx.notifications.append(
                Notification(
                    id=f"{incident.id}:{event}:{receiver}:{incident.notification_seq}",
                    receiver=receiver,
                    event=event,
                    dedup_key=incident.id,
                    incident=snapshot,
                    created_at=now,
                    message=message,
                    title=title,
                )
            )
            if receiver not in incident.notified_receivers:
                incident.notified_receivers.append(receiver)
        tx.log(
            incident,
            now,
            "notified",
            f"{event}{' (repeat)' if repeat else ''} sent to {', '.join(allowed)}",
            data={"event": event, "receivers": allowed, "repeat": repeat},
        )

    def _rate_ok(self, tx: _Tx, now: float, incident: Incident, receiver: str) -> bool:
        st = tx.state
        config = self.config.receiver(receiver)
        limit: RateLimit = (config.rate_limit if config else None) or self.config.rate_limit
        window = limit.window.seconds
        old = st.rate.get(receiver, RateState())
        sent = tuple(t for t in old.sent if t > now - window)
        if len(sent) < limit.max_notifications:
            st.rate[receiver] = RateState(sent=(*sent, now))
            return True
        tx.suppress("rate_limited", incident_id=incident.id, receiver=receiver)
        tx.log(
            incident,
            now,
            "suppressed",
            f"notification to {receiver} held back: rate limit {limit.max_notifications} per "
            f"{limit.window} reached",
            data={"receiver": receiver, "reason": "rate_limited"},
        )
        suppressed = (*old.suppressed, incident.id)
        if not old.tripped:
            tx.notifications.append(self._summary(now, receiver, limit, incident))
        st.rate[receiver] = RateState(sent=sent, tripped=True, suppressed=suppressed)
        return False

    def _summary(
        self, now: float, receiver: str, limit: RateLimit, incident: Incident
    ) -> Notification:
        message = self.renderer.rate_limit_summary(
            receiver,
            limit.max_notifications,
            str(limit.window),
            [incident.id],
            incident.severity.value,
        )
        summary = (
            f"Notification rate limit reached for {receiver}: {limit.max_notifications} "
            f"per {limit.window}; further notifications held back"
        )
        return Notification(
            id=f"rate-limit:{receiver}:{now:.3f}",
            receiver=receiver,
            event="triggered",
            dedup_key=f"rate-limit:{receiver}",
            incident={
                "id": "rate-limit",
                "severity": incident.severity.value,
                "status": IncidentStatus.investigating.value,
                "service": "slo-engine",
                "slos": [],
                "opened_at": iso(now),
                "summary": summary,
                "runbook_url": None,
                "dashboard_url": None,
                "acknowledged_by": None,
                "escalation_level": 0,
                "suppressed": [incident.id],
            },
            created_at=now,
            message=message,
            title=f"[{incident.severity.value}] {summary}",
            kind="summary",
        )
