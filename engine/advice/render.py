"""The advice as text: rows shared by the terminal tables and the Markdown report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from engine.advice.ladder import Rung
from engine.advice.latency import LatencyAdvice
from engine.advice.report import Advice, SLOAdvice
from engine.advice.scoring import PolicyChoice, PolicyRow

SUMMARY_HEAD = ("SLO", "objective", "achieved (worst / median period)", "recommended", "reason")
LADDER_HEAD = ("objective", "budget spent per period (newest first)", "missed", "pages", "tickets")
LATENCY_HEAD = ("threshold", "share under it", "worst period")
POLICY_HEAD = (
    "policy",
    "precision",
    "recall",
    "detection (median)",
    "reset (median)",
    "pages",
    "false pages",
    "tickets",
)


def ts(value: float | None) -> str:
    return "—" if value is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(value))


def pct(value: Decimal | float | None, digits: int = 3) -> str:
    if value is None:
        return "no data"
    if isinstance(value, Decimal):
        return f"{value.normalize():f} %"
    return f"{value:.{digits}f} %"


def title(advice: Advice) -> str:
    plan = advice.plan
    return (
        f"Suggestions from {ts(plan.fetch_start)} → {ts(plan.end)} UTC ({advice.days} days, "
        f"step {plan.step}; alerts replayed from {ts(plan.start)})"
    )


def summary_row(item: SLOAdvice) -> tuple[str, ...]:
    achieved = [p.achieved for p in item.periods if p.usable and p.achieved is not None]
    if achieved:
        ordered = sorted(achieved)
        seen = f"{pct(ordered[0])} / {pct(ordered[len(ordered) // 2])}"
    else:
        seen = "no data"
    rec = item.recommendation
    notes = [w.message for w in item.warnings]
    reason = "; ".join(([rec.reason] if rec else []) + [f"⚠ {n}" for n in notes])
    return (
        item.slo.id,
        pct(item.slo.objective_percent),
        seen,
        "—" if rec is None else pct(rec.objective),
        reason,
    )


def ladder_rows(item: SLOAdvice) -> list[tuple[str, ...]]:
    if item.ladder is None:
        return []
    rec = item.recommendation
    current = item.slo.objective_percent.normalize()
    out = []
    for rung in item.ladder.rungs:
        mark = " (current)" if rung.objective == current else ""
        if rec is not None and rung.objective == rec.objective:
            mark += " ← recommended"
        out.append(
            (
                pct(rung.objective) + mark,
                _spent(rung),
                f"{rung.violated}/{rung.periods}",
                _count(rung.pages),
                _count(rung.tickets),
            )
        )
    return out


def _spent(rung: Rung) -> str:
    return ", ".join("—" if s is None else f"{s:.0%}" for s in rung.budget_spent) or "—"


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def latency_rows(latency: LatencyAdvice) -> list[tuple[str, ...]]:
    out = []
    for share in latency.shares:
        mark = " (current)" if share.threshold == latency.current else ""
        if share.threshold == latency.threshold:
            mark += " ← recommended"
        out.append(
            (
                f"{share.threshold}{mark}",
                pct(share.overall.achieved) if share.error is None else share.error,
                pct(share.worst),
            )
        )
    return out


def policy_rows(choice: PolicyChoice) -> list[tuple[str, ...]]:
    return [_policy_row(r, r is choice.best) for r in choice.rows]


def _policy_row(row: PolicyRow, best: bool) -> tuple[str, ...]:
    score = row.score
    obj = score.to_json()
    detection, reset = obj["detection_time"], obj["reset_time"]
    return (
        row.policy + (" ← recommended" if best else ""),
        "—" if score.precision is None else f"{score.precision:.0%}",
        "—" if score.recall is None else f"{score.recall:.0%}",
        "—" if detection is None else f"{detection['median']:.0f}s",  # type: ignore[index]
        "—" if reset is None else f"{reset['median']:.0f}s",  # type: ignore[index]
        str(row.pages),
        str(row.false_pages),
        str(row.tickets),
    )


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(advice: Advice) -> str:
    """The whole advice as Markdown, for a pull request or an issue."""
    reference = (
        "the labelled incidents"
        if advice.reference == "labels"
        else ("the incidents the engine opened when replaying the current specs")
    )
    lines = [f"# {title(advice)}", ""]
    lines += _md_table(SUMMARY_HEAD, [summary_row(s) for s in advice.slos])
    if advice.fleet is not None:
        lines += [f"## Alert policies, all SLOs (scored against {reference})", ""]
        lines += [f"Recommended: **{advice.fleet.best.policy}** — {advice.fleet.reason}", ""]
        lines += _md_table(POLICY_HEAD, policy_rows(advice.fleet))
    for item in advice.slos:
        lines += [f"## {item.slo.id}", ""]
        rec = item.recommendation
        if rec is not None:
            lines += [f"Recommended objective: **{pct(rec.objective)}** — {rec.reason}", ""]
        lines += [f"> ⚠ {w.message}" for w in item.warnings] + ([""] if item.warnings else [])
        lines += _md_table(LADDER_HEAD, ladder_rows(item)) if item.ladder else []
        if isinstance(item.latency, LatencyAdvice):
            lines += [f"Latency threshold: {item.latency.reason}", ""]
            lines += _md_table(LATENCY_HEAD, latency_rows(item.latency))
        elif isinstance(item.latency, str):
            lines += [f"Latency threshold: {item.latency}", ""]
        if item.policy is not None:
            lines += [
                f"Alert policy at {pct(item.policy_objective)}: **{item.policy.best.policy}** "
                f"— {item.policy.reason}",
                "",
            ]
            lines += _md_table(POLICY_HEAD, policy_rows(item.policy))
    return "\n".join(lines)
