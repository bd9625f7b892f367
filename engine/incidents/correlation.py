"""Correlation: which alerts are one problem, and so one incident and one page.

A page supersedes the ticket of the same SLO (inhibition). A new alert joins an open
incident of the same SLO, then one holding another group of the same grouped SLO (at any
age), then one of the same service opened within `group_window`, then one on a service it
depends on, directly or down a chain (recorded as related) — and, the other way round, an
alert on a service that an already paged incident's service depends on takes that incident
over as its root cause (`root_cause`, within `dependency_correlation_window`). Root causes
are processed before their victims so both fire into one incident in the same cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.alerting.alerts import Alert
from engine.incidents.dependencies import DependencyGraph
from engine.incidents.incident import Incident
from engine.incidents.root_cause import adoptable, reroot
from engine.incidents.settings import Settings
from engine.incidents.state import EngineState
from engine.incidents.transaction import Transaction


def inhibit_tickets(tx: Transaction, firing: dict[str, Alert]) -> set[str]:
    """A page supersedes the ticket of the same SLO: one problem, one (louder) alert."""
    paged = {a.slo_id for a in firing.values() if a.severity == "page"}
    inhibited = {fp for fp, a in firing.items() if a.severity == "ticket" and a.slo_id in paged}
    for fp in inhibited:
        del firing[fp]
        tx.suppress("inhibited_by_page", fingerprint=fp)
    return inhibited


def processing_order(
    settings: Settings, alerts: Iterable[Alert], graph: DependencyGraph | None = None
) -> list[Alert]:
    # Root causes before their victims, so a victim firing in the same cycle as the
    # service it depends on joins that incident instead of opening its own; down a chain,
    # by how many of its (transitive) dependencies fire too. Pages before tickets so the
    # incident starts at the right severity. Then a stable order.
    alerts = list(alerts)
    firing_services = {a.service for a in alerts}
    rank = {"page": 0, "ticket": 1, "anomaly": 2}

    def upstream(alert: Alert) -> set[str]:
        chain = graph.upstream(alert.service) if graph is not None else frozenset()
        return (settings.deps(alert) | chain) - {alert.service}

    return sorted(
        alerts,
        key=lambda a: (
            len(upstream(a) & firing_services),
            rank[a.severity],
            a.service,
            a.slo_id,
            a.fingerprint,
        ),
    )


def base_slo_id(slo_id: str) -> str:
    """`api/availability` for `api/availability{route="/cart"}` (an instance of a grouped
    SLO; engine.spec.models.SLO.id) and for `api/availability` itself: names never hold `{`."""
    return slo_id.split("{", 1)[0]


def find_incident(
    settings: Settings,
    st: EngineState,
    now: float,
    alert: Alert,
    graph: DependencyGraph | None = None,
) -> tuple[Incident | None, str]:
    """The open incident a new alert belongs to, and why ("" when it needs its own)."""
    graph = graph or DependencyGraph()
    incidents = sorted(st.incidents.values(), key=lambda i: (i.opened_at, i.id))
    for incident in incidents:
        if alert.slo_id in incident.slo_ids:
            return incident, "same SLO"
    base = alert.slo_base_id
    if base and base != alert.slo_id:
        # Another group of a grouped SLO already failing: one problem, one incident that
        # lists the groups (not one page per route), however long after the first it fires.
        for incident in incidents:
            if any(base_slo_id(slo_id) == base for slo_id in incident.slo_ids):
                return incident, "same SLO, another group"
    for incident in incidents:
        if incident.service == alert.service and now - incident.opened_at <= settings.group_window:
            return incident, "same service"
    deps = (settings.deps(alert) | graph.upstream(alert.service)) - {alert.service}
    if deps:
        for incident in incidents:
            if incident.service in deps or deps & set(incident.related_services):
                return incident, "dependency"
    if alert.severity == "page":
        # The other order: a dependent already paged and this is what it depends on. Only
        # a page is evidence enough to move an incident: a dependency's traffic-drop
        # anomaly is as often the consequence (its dependent stopped calling it).
        for incident in incidents:
            if adoptable(settings, graph, now, incident, alert.service):
                return incident, "root cause"
    return None, ""


def join(
    settings: Settings, tx: Transaction, now: float, alert: Alert, target: Incident, how: str
) -> None:
    """Add a new alert to the incident `find_incident` chose: no page of its own."""
    if how == "root cause":
        reroot(settings, tx, now, target, alert)
        return
    fp = alert.fingerprint
    target.fingerprints.append(fp)
    if alert.service == target.service:
        for dep in sorted(settings.deps(alert)):
            if dep not in target.depends_on:
                target.depends_on.append(dep)
    if alert.slo_id not in target.slo_ids:
        target.slo_ids.append(alert.slo_id)
    if alert.slo_id not in target.slo_budget:
        target.slo_budget[alert.slo_id] = [alert.error_budget_remaining] * 2
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


def note_same_service(settings: Settings, tx: Transaction, now: float, incident: Incident) -> None:
    """A new incident on a service with an older one still open (outside the grouping
    window): both stay, but the new one's timeline points at the old."""
    for other in tx.state.incidents.values():
        if other.id != incident.id and other.service == incident.service:
            tx.log(
                incident,
                now,
                "related",
                f"{other.id} on the same service is still open (opened before the "
                f"{settings.config.group_window} grouping window)",
                data={"incident": other.id},
            )
