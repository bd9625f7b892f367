"""The corpus measured: per case, what the replay did and the SRE Workbook's four measures
(`engine.backtest.metrics`: precision, recall, detection time, reset time) against the
case's labels — as JSON, and as the markdown table of docs/backtest.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from corpus.scenarios import Case
from engine.backtest.metrics import Detection, PolicyScore, score_policy
from engine.backtest.result import ReplayResult
from engine.incidents.incident import Incident

POLICIES = ("page", "ticket", "anomaly")


def _triggered(incident: Incident) -> int:
    """First notifications of the incident (repeats of an unacknowledged one excluded)."""
    return sum(
        1
        for event in incident.timeline
        if event.kind == "notified"
        and event.data.get("event") == "triggered"
        and not event.data.get("repeat")
    )


def _merged(incident: Incident) -> bool:
    """Folded into its dependency's incident (dependency correlation): not an incident of
    its own for the on-call, and its resolution is the merge, not a recovery."""
    return any(e.kind == "resolved" and e.data.get("merged_into") for e in incident.timeline)


def _rerooted(incident: Incident) -> int:
    """How often a dependency failing after the incident paged took it over (the
    correlation window), each time with an `updated` to its receivers."""
    return sum(1 for e in incident.timeline if e.data.get("rerooted_from"))


def _resolved_inside(incidents: Sequence[Incident], case: Case) -> int:
    """Incidents of the case resolved while one of its labelled incidents was still going."""
    return sum(
        1
        for incident in incidents
        for label in case.labels
        if incident.resolved_at is not None
        and label.service in {incident.service, *incident.related_services}
        and label.start < incident.resolved_at < label.end
    )


def measure(result: ReplayResult, case: Case) -> dict[str, Any]:
    services = set(case.services)
    service_of = {slo.id: slo.service for slo in result.slos}
    alerts = [a for a in result.alerts if service_of[a.slo_id] in services and a.held is None]
    touched = [i for i in result.incidents if {i.service, *i.related_services} & services]
    incidents = [i for i in touched if not _merged(i)]
    start, end = result.plan.start, result.plan.end
    scores: dict[str, PolicyScore] = {}
    for policy in POLICIES:
        detections = [
            Detection(frozenset({service_of[a.slo_id]}), a.start, a.end)
            for a in alerts
            if a.severity == policy
        ]
        scores[policy] = score_policy(policy, detections, case.labels, start, end)
    opened = [
        Detection(frozenset({i.service, *i.related_services}), i.opened_at, i.resolved_at)
        for i in incidents
    ]
    scores["incidents"] = score_policy("incidents", opened, case.labels, start, end)
    alert_counts = {p: 0 for p in POLICIES}
    for incident in incidents:
        for policy, n in result.incident_alert_counts(incident).items():
            alert_counts[policy] += n
    return {
        "case": case.name,
        "what": case.what,
        "services": list(case.services),
        "labelled": len(case.labels),
        "incidents": len(incidents),
        "merged": len(touched) - len(incidents),
        "severities": [i.severity.value for i in incidents],
        "notified": sum(_triggered(i) for i in incidents),
        "rerooted": sum(_rerooted(i) for i in incidents),
        "alerts": alert_counts,
        "held": sum(1 for a in result.alerts if service_of[a.slo_id] in services and a.held),
        "resolved_during_outage": _resolved_inside(incidents, case),
        "scores": {policy: score.to_json() for policy, score in scores.items()},
    }


def _minutes(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "–"
    low, high = min(stats["median"], stats["max"]), stats["max"]
    if abs(high - low) < 1:
        return f"{high / 60:.0f} min" if high < 3 * 3600 else f"{high / 3600:.1f} h"
    return f"{low / 60:.0f}–{high / 60:.0f} min"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}".replace("%", " %")


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The docs table: what the on-call saw per case, and the four measures of its
    incidents against the labels (– where a measure has nothing to measure)."""
    head = (
        "| case | what happens | labelled | incidents | notified | page / ticket / anomaly "
        "alerts | precision | recall | detection time | reset time |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in rows:
        s = row["scores"]["incidents"]
        alerts = row["alerts"]
        detail = ", ".join(row["severities"])
        if row["merged"]:
            detail += f"; {row['merged']} held and merged into it"
        if row.get("rerooted"):
            detail += f"; re-rooted to the dependency {row['rerooted']}×, an `updated` each"
        lines.append(
            f"| {row['case']} | {row['what']} | {row['labelled']} | {row['incidents']}"
            f"{f' ({detail})' if detail else ''} | {row['notified']} | "
            f"{alerts['page']} / {alerts['ticket']} / {alerts['anomaly']} | "
            f"{_share(s['precision'])} | {_share(s['recall'])} | "
            f"{_minutes(s['detection_time'])} | {_minutes(s['reset_time'])} |"
        )
    return head + "\n".join(lines) + "\n"
