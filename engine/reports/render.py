"""The monthly report as Markdown, JSON or a self-contained HTML file.

The HTML loads nothing: its Content-Security-Policy (`default-src 'none'`) allows only its
own inline styles and `data:` images, which is how each SLO's trend plot (matplotlib SVG)
travels inside the file. Every text from specs and incidents is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

from engine.reports.monthly import MonthlyReport, SLOMonth

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "td,th{border:1px solid #ccd;padding:.25rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.miss{color:#b00020}.met{color:#0a6b2d}"
)


def _pct(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}%"


def _minutes(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.0f} min"


def render_json(report: MonthlyReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"


def render_markdown(report: MonthlyReport) -> str:
    scope = f" — {report.service}" if report.service else ""
    lines = [f"# SLO report {report.month}{scope}", ""]
    if not report.slos:
        lines.append("No SLO has compliance history for this month.")
    for slo in report.slos:
        lines += _markdown_slo(slo)
    return "\n".join(lines).rstrip() + "\n"


def _markdown_slo(slo: SLOMonth) -> list[str]:
    worst = slo.worst_day
    met = slo.achieved is not None and slo.achieved >= slo.objective
    lines = [
        f"## {slo.slo_id}",
        "",
        f"- Objective: {slo.objective:g}%",
        f"- Achieved: {_pct(slo.achieved)} ({'met' if met else 'missed'})",
        f"- Error budget used: {_pct(slo.budget_used, 1)}",
        f"- Events: {slo.total - slo.bad:.0f} good of {slo.total:.0f} ({slo.bad:.0f} bad)",
        f"- Time burning: {_minutes(slo.burning_minutes)}",
        f"- Worst day: {_worst(slo)}" if worst else "- Worst day: n/a",
        f"- Days counted: {len(slo.days)} (from {slo.origin})",
        "",
    ]
    if slo.incidents:
        lines += [
            "| Incident | Severity | Opened | Duration | RTO | Summary |",
            "|---|---|---|---|---|---|",
        ]
        for i in slo.incidents:
            j = i.to_json()
            summary = i.summary.replace("|", "\\|")
            lines.append(
                f"| {i.id} | {i.severity} | {j['opened_at']} | {j['duration_minutes']} min "
                f"| {i.rto_text} | {summary} |"
            )
        lines.append("")
    return lines


def _worst(slo: SLOMonth) -> str:
    worst = slo.worst_day
    if worst is None or not worst.total:
        return "n/a"
    achieved = 100.0 * (1.0 - (worst.bad or 0.0) / worst.total)
    return f"{worst.day} ({achieved:.3f}%, {worst.bad:.0f} bad of {worst.total:.0f})"


def render_html(report: MonthlyReport) -> str:
    scope = f" — {report.service}" if report.service else ""
    title = html.escape(f"SLO report {report.month}{scope}")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    if not report.slos:
        parts.append("<p>No SLO has compliance history for this month.</p>")
    for slo in report.slos:
        parts.append(_html_slo(slo))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_slo(slo: SLOMonth) -> str:
    e = html.escape
    met = slo.achieved is not None and slo.achieved >= slo.objective
    rows = [
        ("Objective", f"{slo.objective:g}%"),
        ("Achieved", _pct(slo.achieved)),
        ("Error budget used", _pct(slo.budget_used, 1)),
        ("Bad events", f"{slo.bad:.0f} of {slo.total:.0f}"),
        ("Time burning", _minutes(slo.burning_minutes)),
        ("Worst day", _worst(slo)),
        ("Days counted", f"{len(slo.days)} (from {slo.origin})"),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    incidents = "".join(
        f"<tr><td>{e(i.id)}</td><td>{e(i.severity)}</td><td>{e(str(i.to_json()['opened_at']))}"
        f"</td><td>{i.duration_s / 60:.1f} min</td><td>{e(i.rto_text)}</td>"
        f"<td>{e(i.summary)}</td></tr>"
        for i in slo.incidents
    )
    verdict = f'<p class="{"met" if met else "miss"}">{"Met" if met else "Missed"}</p>'
    return (
        f'<section id="{e(slo.slo_id)}"><h2>{e(slo.slo_id)}</h2>{verdict}'
        f"<table>{table}</table>"
        + (
            "<table><tr><th>Incident</th><th>Severity</th><th>Opened</th><th>Duration</th>"
            f"<th>RTO</th><th>Summary</th></tr>{incidents}</table>"
            if incidents
            else "<p>No incidents.</p>"
        )
        + f'<img alt="daily compliance of {e(slo.slo_id)}" src="{trend_plot(slo)}">'
        + "</section>"
    )


def trend_plot(slo: SLOMonth) -> str:
    """The daily achieved value against the objective, as a data: URI of an SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    days = [d for d in slo.days if d.total]
    values = [100.0 * (1.0 - (d.bad or 0.0) / (d.total or 1.0)) for d in days]
    figure, axes = plt.subplots(figsize=(7, 2.4), dpi=96)
    try:
        axes.plot([d.day[-2:] for d in days], values, marker="o", linewidth=1.2, label="achieved")
        axes.axhline(slo.objective, color="#b00020", linestyle="--", label="objective")
        axes.set_ylabel("% good")
        axes.set_xlabel("day of month")
        axes.legend(loc="lower left", fontsize=8)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


RENDERERS: dict[str, Any] = {"md": render_markdown, "html": render_html, "json": render_json}
