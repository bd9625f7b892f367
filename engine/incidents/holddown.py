"""Dependency hold-down: one page for a root cause, not one per service it takes down.

A new incident on a service with dependencies holds its first page for `dependency_wait`
(like Alertmanager's group_wait). If a dependency's incident opens meanwhile, the held
incident is merged into it and resolved as merged, never paged. Once an incident paged, a
later root cause takes it over within `dependency_correlation_window` (`root_cause`: one
incident, an `updated`, never a second page) and is only linked to it after. The hold ends
in `timers` (wait over), on acknowledgement, or when severity rises past what may wait
(`transitions.release`).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.incidents.dependencies import DependencyGraph
from engine.incidents.incident import Incident, IncidentStatus, Severity, iso
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction, evolve
from engine.incidents.transitions import (
    change_severity,
    raise_severity_quietly,
    refresh_customer_notice,
)


def should_hold(settings: Settings, incident: Incident) -> bool:
    return (
        settings.dependency_wait > 0
        and bool(incident.depends_on)
        and incident.severity in settings.hold_severities
    )


def hold(
    settings: Settings, tx: Transaction, now: float, incident: Incident, held_since: list[float]
) -> None:
    """Hold a new incident's first page; `held_since` are the deadlines of the held
    incidents it absorbed."""
    # Never delay a page more than dependency_wait past the first alert it covers.
    until = min([now + settings.dependency_wait, *held_since])
    incident.held_until = until
    tx.log(
        incident,
        now,
        "held",
        f"page held until {iso(until)}: {incident.service} depends on "
        f"{', '.join(incident.depends_on)}; an incident there within "
        f"{settings.config.dependency_wait} takes this one over",
        data={"until": until, "depends_on": list(incident.depends_on)},
    )
    tx.suppress("dependency_wait", incident_id=incident.id)


def caused_by(victim: Incident, root: Incident, graph: DependencyGraph | None = None) -> bool:
    """`root` is on a service `victim` depends on, directly, down a chain of the graph, or
    through a service already correlated with it (the chain rule `correlation.find_incident`
    follows)."""
    if victim.id == root.id or victim.service == root.service:
        return False
    deps = set(victim.depends_on)
    if graph is not None:
        deps |= graph.upstream(victim.service)
    deps.discard(victim.service)
    if not deps:
        return False
    return root.service in deps or bool(deps & set(root.related_services))


def fold_into(settings: Settings, tx: Transaction, now: float, root: Incident) -> list[float]:
    """Merge every held incident caused by `root` into it (following chains: once api is
    folded into db, a held web that depends on api follows). Returns the folded
    incidents' hold deadlines. `root` was just opened and has not paged yet, so a
    severity rise is applied quietly: its first page carries it."""
    deadlines: list[float] = []
    while True:
        victims = [
            v
            for v in sorted(tx.state.incidents.values(), key=lambda i: i.id)
            if v.held_until is not None and caused_by(v, root, tx.graph)
        ]
        if not victims:
            return deadlines
        for victim in victims:
            deadlines.append(victim.held_until)  # type: ignore[arg-type]
            merge(settings, tx, now, victim, root, announce=False)


def fold_held(settings: Settings, tx: Transaction, now: float) -> None:
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
                if caused_by(victim, r, tx.graph)
            ),
            None,
        )
        if root is not None:
            if root.held_until is not None:
                root.held_until = min(root.held_until, victim.held_until)
            merge(settings, tx, now, victim, root, announce=True)


def merge(
    settings: Settings,
    tx: Transaction,
    now: float,
    victim: Incident,
    root: Incident,
    announce: bool,
) -> None:
    """Fold a held (never paged) incident into its root cause's incident and resolve it
    as merged. Nothing is ever sent for the victim: it has no notified receivers."""
    absorb(tx, victim, root)
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
    _resolve_merged(tx, now, victim, root)
    raise_for_merged(settings, tx, now, victim, root, announce)


def absorb(tx: Transaction, victim: Incident, root: Incident) -> None:
    """Move `victim`'s alerts, SLOs and services into `root` (the victim is left to be
    resolved as merged)."""
    st = tx.state
    moved = [fp for fp in victim.fingerprints if fp not in root.fingerprints]
    root.fingerprints.extend(moved)
    for slo_id in victim.slo_ids:
        if slo_id not in root.slo_ids:
            root.slo_ids.append(slo_id)
    for slo_id, budget in victim.slo_budget.items():
        root.slo_budget.setdefault(slo_id, list(budget))
    for service in (victim.service, *victim.related_services):
        if service != root.service and service not in root.related_services:
            root.related_services.append(service)
    for fp in victim.fingerprints:
        alert_state = st.alerts.get(fp)
        if alert_state is not None and alert_state.incident_id == victim.id:
            st.alerts[fp] = evolve(alert_state, incident_id=root.id)


def raise_for_merged(
    settings: Settings,
    tx: Transaction,
    now: float,
    victim: Incident,
    root: Incident,
    announce: bool,
) -> None:
    """Raise `root` to what the merged victim's firing alerts justify (severity only rises
    on its own); `announce` when `root` has already told its receivers."""
    st = tx.state
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
            change_severity(settings, tx, now, root, target, reason)
        else:
            raise_severity_quietly(tx, now, root, target, reason)
    refresh_customer_notice(settings, root)


def _resolve_merged(tx: Transaction, now: float, victim: Incident, root: Incident) -> None:
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
    del tx.state.incidents[victim.id]


def link_dependents(
    tx: Transaction,
    now: float,
    root: Incident,
    merging: Callable[[Incident], bool] | None = None,
) -> None:
    """Incidents of dependent services that already paged stay as they are (no second
    page) but both timelines record the likely root cause — except those `merging` says
    the correlation window takes over instead (`root_cause`)."""
    for other in sorted(tx.state.incidents.values(), key=lambda i: i.id):
        if other.held_until is not None or not caused_by(other, root, tx.graph):
            continue
        if merging is not None and merging(other):
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
