"""Dependency correlation in the other order: the root cause fails after its dependent paged.

`web` depends on `database`. When database's alert fires first, web's joins its incident
(`correlation`). When web's fires first, its page is held for `dependency_wait` and a
database alert within the wait folds it away (`holddown`). This module is for a database
alert later than the wait but within `dependency_correlation_window` of web's incident
opening, when web's receivers already got their `triggered`:

- **Re-rooted, not merged.** The database alert joins web's incident, which becomes the
  database incident: its service, summary, runbook and dependencies are the database's,
  web moves to the impacted (`related_services`). The incident keeps its id, so the page
  the on-call already holds stays the one open page: PagerDuty's dedup key, Alertmanager's
  alert and the webhook's `dedup_key` do not change, and acknowledging or resolving it
  later closes exactly what was opened. (Merging web's incident into a new database
  incident instead would leave the receivers either with web's page open forever or
  resolved while the outage goes on, and the database incident never triggered there.)
  The receivers get an `updated` saying so; nobody gets a second `triggered` unless the
  severity rises to receivers that were not told yet.
- **Chains** follow: web → api → database re-roots web's incident to api, then to
  database, whatever the order (the graph is transitive, `dependencies`).
- **Only a page moves a paged incident**: a ticket or an anomaly on the dependency (a
  traffic drop there is as often the dependent's doing) opens or joins its own incident,
  linked as related.
- **Two incidents already paged** (e.g. two services that depend on database each paged
  before it failed): after the cycle's alerts, a paged incident whose root cause is now
  another paged incident holding a dependency's firing page, and which opened within the
  window, is merged into it: its
  receivers get an `updated` pointing at the root incident, then its `resolved` (as an
  incident tool resolves the incidents it merges), and the root incident carries their
  page state.

Incidents older than the window, or acknowledged before their page, are only linked.
"""

from __future__ import annotations

from engine.alerting.alerts import Alert
from engine.incidents.dependencies import DependencyGraph
from engine.incidents.holddown import absorb, caused_by, link_dependents, raise_for_merged
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.notifications import notify
from engine.incidents.runbooks import category_of, runbook_for
from engine.incidents.settings import Settings
from engine.incidents.transaction import Transaction
from engine.incidents.transitions import raise_severity_quietly, refresh_customer_notice


def window(settings: Settings) -> float:
    return settings.config.dependency_correlation_window.seconds


def paged(incident: Incident) -> bool:
    """The incident's first page went out (or was due, with nobody routed): not held, and
    not taken by a person before its page (that one only links, as with the hold-down)."""
    if incident.held_until is not None:
        return False
    return bool(incident.notified_receivers) or incident.acknowledged_at is None


def mergeable(settings: Settings, now: float, incident: Incident) -> bool:
    """A paged incident still young enough for a root cause to take it over."""
    limit = window(settings)
    return limit > 0 and paged(incident) and now - incident.opened_at <= limit


def adoptable(
    settings: Settings, graph: DependencyGraph, now: float, incident: Incident, service: str
) -> bool:
    """A new alert on `service` is the root cause of `incident`, which already paged."""
    if service == incident.service or not mergeable(settings, now, incident):
        return False
    return service in incident.depends_on or service in graph.upstream(incident.service)


def reroot(
    settings: Settings, tx: Transaction, now: float, incident: Incident, alert: Alert
) -> None:
    """`alert` (the dependency's) joins `incident` (the dependent's, already paged), which
    becomes the root cause's incident; its receivers hear of it in an `updated`."""
    st = tx.state
    previous = incident.service
    fp = alert.fingerprint
    incident.fingerprints.append(fp)
    if alert.slo_id not in incident.slo_ids:
        incident.slo_ids.append(alert.slo_id)
    incident.slo_budget.setdefault(alert.slo_id, [alert.error_budget_remaining] * 2)
    impacted = [previous, *incident.related_services]
    incident.related_services = [s for s in dict.fromkeys(impacted) if s != alert.service]
    _take_root_fields(settings, incident, alert)
    tx.log(
        incident,
        now,
        "related",
        f"root cause found: {alert.service} ({alert.slo_id} {alert.severity}), which "
        f"{previous} depends on, failed {_ago(now - incident.opened_at)} after this "
        f"incident opened. {incident.id} now tracks {alert.service}; impacted: "
        f"{', '.join(incident.related_services)}",
        data={
            "fingerprint": fp,
            "service": alert.service,
            "slo": alert.slo_id,
            "root_cause": True,
            "rerooted_from": previous,
        },
    )
    told = list(incident.notified_receivers)
    classified = st.alerts[fp].classified if fp in st.alerts else None
    if classified is not None and Severity(classified).is_more_severe_than(incident.severity):
        raise_severity_quietly(
            tx, now, incident, Severity(classified), f"root cause {alert.slo_id} justifies it"
        )
    refresh_customer_notice(settings, incident)
    reason = (
        f"{previous} is now part of root-cause incident {incident.id} on {alert.service} "
        f"({previous} depends on {alert.service}): same incident, no new page"
    )
    notify(settings, tx, now, incident, "updated", told, context={"reason": reason})
    new = [r for r in settings.routed(incident.severity) if r not in told]
    notify(settings, tx, now, incident, "triggered", new)
    # Dependents that paged longer ago than the window are linked, as to a new root.
    link_dependents(tx, now, incident, merging=lambda other: mergeable(settings, now, other))


def _take_root_fields(settings: Settings, incident: Incident, alert: Alert) -> None:
    """What an incident opened by `alert` would have had; the opening time, the id and who
    was told stay (the outage began at least when the dependent failed)."""
    category = category_of(alert)
    incident.service = alert.service
    incident.summary = alert.summary
    incident.depends_on = sorted(settings.deps(alert))
    incident.category = category
    incident.runbook_url = (
        runbook_for(
            settings.config.runbooks,
            alert.service,
            category,
            list(incident.slo_ids),
            alert.runbook_url or alert.annotations.get("runbook_url"),
        )
        or incident.runbook_url
    )
    incident.dashboard_url = alert.dashboard_url or incident.dashboard_url
    incident.customer_facing = incident.customer_facing or alert.customer_facing
    incident.tier = alert.tier
    # The recovery objective was fixed at opening; the root's tier may only tighten it.
    rto = settings.rto.get(alert.tier)
    if rto is not None and (incident.rto_seconds is None or rto < incident.rto_seconds):
        incident.rto_seconds = rto


def _ago(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes else f"{round(seconds)} s"


def consolidate(settings: Settings, tx: Transaction, now: float) -> None:
    """After a cycle's alerts: merge each paged incident, opened within the window, whose
    root cause is now another paged incident (e.g. two dependents of one database, each
    paged before the database failed; or a dependency's alert that joined a third
    incident as related)."""
    if window(settings) <= 0:
        return
    st = tx.state
    for victim in sorted(list(st.incidents.values()), key=lambda i: (i.opened_at, i.id)):
        if victim.id not in st.incidents or not mergeable(settings, now, victim):
            continue
        root = next(
            (
                r
                for r in sorted(st.incidents.values(), key=lambda i: (i.opened_at, i.id))
                if paged(r)
                and caused_by(victim, r, tx.graph)
                and not caused_by(r, victim, tx.graph)
                and _pages_for_a_dependency(tx, victim, r)
            ),
            None,
        )
        if root is not None:
            merge_paged(settings, tx, now, victim, root)


def _pages_for_a_dependency(tx: Transaction, victim: Incident, root: Incident) -> bool:
    """`root` holds a firing page of a service `victim` depends on: the same evidence a
    re-root needs (a ticket or an anomaly there does not move a paged incident)."""
    deps = set(victim.depends_on) | tx.graph.upstream(victim.service)
    for fp in root.fingerprints:
        alert_state = tx.state.alerts.get(fp)
        if (
            alert_state is not None
            and alert_state.severity == "page"
            and alert_state.cleared_at is None
            and alert_state.service in deps
        ):
            return True
    return False


def merge_paged(
    settings: Settings, tx: Transaction, now: float, victim: Incident, root: Incident
) -> None:
    """Merge an incident that already paged into its root cause's (which paged too): its
    receivers are told where it went, then that it is closed; the root carries them."""
    told = list(victim.notified_receivers)
    absorb(tx, victim, root)
    for receiver in told:
        if receiver not in root.notified_receivers:
            root.notified_receivers.append(receiver)
    tx.log(
        root,
        now,
        "related",
        f"{victim.id} on {victim.service} (depends on {root.service}) had already paged: "
        f"merged into this incident ({', '.join(victim.slo_ids)}); its receivers were told",
        data={
            "incident": victim.id,
            "service": victim.service,
            "slos": list(victim.slo_ids),
            "fingerprints": list(victim.fingerprints),
            "merged": True,
            "paged": True,
        },
    )
    reason = (
        f"{victim.service} is now part of root-cause incident {root.id} on {root.service} "
        f"({victim.service} depends on {root.service}); follow {root.id}, {victim.id} is closed"
    )
    notify(settings, tx, now, victim, "updated", told, context={"reason": reason})
    victim.merged_into = root.id
    victim.status = IncidentStatus.resolved
    victim.resolved_at = now
    victim.flapping = False
    victim.next_update_at = None
    tx.log(
        victim,
        now,
        "merged",
        f"merged into {root.id} on {root.service}, which {victim.service} depends on: one "
        "incident for the root cause",
        data={"incident": root.id, "service": root.service},
    )
    tx.log(victim, now, "resolved", f"merged into {root.id}", data={"merged_into": root.id})
    del tx.state.incidents[victim.id]
    notify(settings, tx, now, victim, "resolved", told, context={"reason": reason})
    raise_for_merged(settings, tx, now, victim, root, announce=True)
