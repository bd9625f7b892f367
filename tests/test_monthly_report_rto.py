"""The monthly report says, per incident, whether its recovery time objective was met
(issue #11's RTO tracking, counted where the monthly review reads it)."""

from __future__ import annotations

from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.reports.monthly import build_report, month_bounds
from engine.store.history import ComplianceDay

START, END = month_bounds("2026-11")
HOUR = 3600.0


def incident(id_: str, restored_after: float | None, breached: bool = False) -> Incident:
    opened = START + 86400
    return Incident(
        id=id_,
        service="api",
        severity=Severity.SEV1,
        status=IncidentStatus.resolved if restored_after is not None else IncidentStatus.mitigating,
        summary=f"{id_} outage",
        opened_at=opened,
        resolved_at=None if restored_after is None else opened + restored_after,
        slo_ids=["api/availability"],
        rto_seconds=HOUR,
        rto_breached_at=opened + HOUR if breached else None,
    )


def test_each_incident_carries_its_rto_verdict() -> None:
    day = ComplianceDay("api/availability", "2026-11-02", "api", 99.9, 999.0, 1.0, 1000.0)
    incidents = [
        incident("INC-2026-0001", 0.5 * HOUR),
        incident("INC-2026-0002", 2 * HOUR, breached=True),
        incident("INC-2026-0003", None, breached=True),
    ]
    report = build_report("2026-11", [day], {}, incidents, now=END + 10)
    (slo,) = report.slos
    verdicts = {i.id: (i.rto_s, i.rto_met, i.rto_text) for i in slo.incidents}
    assert verdicts == {
        "INC-2026-0001": (HOUR, True, "met (1 h)"),
        "INC-2026-0002": (HOUR, False, "breached (1 h)"),
        "INC-2026-0003": (HOUR, False, "breached (1 h)"),
    }
    by_id = {i["id"]: i for i in report.to_json()["slos"][0]["incidents"]}
    assert by_id["INC-2026-0002"]["rto_met"] is False
    assert by_id["INC-2026-0001"]["rto_seconds"] == HOUR


def test_the_markdown_and_html_reports_show_the_rto_column() -> None:
    from engine.reports.render import render_html, render_markdown

    day = ComplianceDay("api/availability", "2026-11-02", "api", 99.9, 999.0, 1.0, 1000.0)
    report = build_report(
        "2026-11", [day], {}, [incident("INC-2026-0002", 2 * HOUR, breached=True)], END + 10
    )
    markdown = render_markdown(report)
    assert "| RTO |" in markdown and "| breached (1 h) |" in markdown
    page = render_html(report)
    assert "<th>RTO</th>" in page and "<td>breached (1 h)</td>" in page
