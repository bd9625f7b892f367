"""A month of compliance, per SLO: what the monthly SLO review reads.

Built from daily rows (`ComplianceDay`, from the store or rebuilt from Prometheus) and the
incidents of the month. All arithmetic is over events, never over averaged ratios: the
month's achieved value is Σgood / Σtotal of its days, its budget used Σbad over the
month's allowed bad events (Σtotal × (1 − objective)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.evaluation.daily import DAY_SECONDS, day_start, month_days
from engine.incidents.incident import Incident, iso
from engine.incidents.rto import recovery
from engine.store.history import ComplianceDay

Origin = Literal["store", "prometheus"]


@dataclass(frozen=True)
class IncidentSpan:
    id: str
    severity: str
    summary: str
    opened_at: float
    resolved_at: float | None
    duration_s: float  # until resolved, or until the report's end while still open
    # The recovery time objective (runbook: critical 1 h, important 4 h, standard 24 h):
    # met, breached, or None when the incident has none (or is open and not yet past it).
    rto_s: float | None = None
    rto_met: bool | None = None

    @property
    def rto_text(self) -> str:
        if self.rto_s is None:
            return "–"
        verdict = {True: "met", False: "breached", None: "open"}[self.rto_met]
        return f"{verdict} ({self.rto_s / 3600:g} h)"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "summary": self.summary,
            "opened_at": iso(self.opened_at),
            "resolved_at": iso(self.resolved_at),
            "duration_minutes": round(self.duration_s / 60.0, 1),
            "rto_seconds": self.rto_s,
            "rto_met": self.rto_met,
        }


@dataclass(frozen=True)
class SLOMonth:
    slo_id: str
    service: str
    objective: float  # percent
    origin: Origin
    days: tuple[ComplianceDay, ...]  # days with events, oldest first
    incidents: tuple[IncidentSpan, ...] = ()

    @property
    def total(self) -> float:
        return sum(d.total or 0.0 for d in self.days)

    @property
    def bad(self) -> float:
        return sum(d.bad or 0.0 for d in self.days)

    @property
    def achieved(self) -> float | None:
        """Percent of good events over the month; None without events."""
        return None if self.total <= 0 else 100.0 * (1.0 - self.bad / self.total)

    @property
    def budget_used(self) -> float | None:
        """Percent of the month's error budget spent (over 100: overspent)."""
        allowed = self.total * (1.0 - self.objective / 100.0)
        return None if allowed <= 0 else 100.0 * self.bad / allowed

    @property
    def worst_day(self) -> ComplianceDay | None:
        """The day with the lowest share of good events (the earliest of equals)."""
        counted = [d for d in self.days if d.total]
        return min(counted, key=lambda d: -(d.bad or 0.0) / (d.total or 1.0), default=None)

    @property
    def burning_minutes(self) -> float | None:
        """Minutes an alert fired; None when rebuilt from Prometheus (not recorded there)."""
        if self.origin == "prometheus":
            return None
        return sum(d.burning_seconds for d in self.days) / 60.0

    def to_json(self) -> dict[str, Any]:
        worst = self.worst_day
        return {
            "slo": self.slo_id,
            "service": self.service,
            "objective": self.objective,
            "origin": self.origin,
            "events": {"good": self.total - self.bad, "bad": self.bad, "total": self.total},
            "achieved": self.achieved,
            "met": None if self.achieved is None else self.achieved >= self.objective,
            "budget_used_percent": self.budget_used,
            "burning_minutes": self.burning_minutes,
            "worst_day": None if worst is None else {**_day_json(worst)},
            "incidents": [i.to_json() for i in self.incidents],
            "days": [_day_json(d) for d in self.days],
        }


@dataclass(frozen=True)
class MonthlyReport:
    month: str
    service: str | None
    generated_at: float
    slos: tuple[SLOMonth, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "service": self.service,
            "generated_at": iso(self.generated_at),
            "slos": [s.to_json() for s in self.slos],
        }


def month_bounds(month: str) -> tuple[float, float]:
    """[start, end) of the UTC month, Unix seconds."""
    days = month_days(month)
    return day_start(days[0]), day_start(days[-1]) + DAY_SECONDS


def build_report(
    month: str,
    rows: Iterable[ComplianceDay],
    origins: dict[str, Origin],
    incidents: Sequence[Incident],
    now: float,
    service: str | None = None,
) -> MonthlyReport:
    """The report of `month` from its daily rows (`origins`: where each SLO's came from)."""
    start, end = month_bounds(month)
    by_slo: dict[str, list[ComplianceDay]] = {}
    for row in rows:
        if service is None or row.service == service:
            by_slo.setdefault(row.slo_id, []).append(row)
    slos = []
    for slo_id, days in sorted(by_slo.items()):
        days.sort(key=lambda d: d.day)
        spans = tuple(
            _span(i, min(end, now))
            for i in sorted(incidents, key=lambda i: i.opened_at)
            if slo_id in i.slo_ids and start <= i.opened_at < end
        )
        counted = tuple(d for d in days if d.total is not None)
        slos.append(
            SLOMonth(
                slo_id,
                days[0].service,
                days[-1].objective,
                origins.get(slo_id, "store"),
                counted,
                spans,
            )
        )
    return MonthlyReport(month, service, now, tuple(slos))


def _span(incident: Incident, until: float) -> IncidentSpan:
    ended = incident.resolved_at
    rto = recovery(incident, until)
    met = None if rto is None else rto.met
    if rto is not None and met is None and rto.breached_at is not None:
        met = False  # still open and already past its objective
    return IncidentSpan(
        incident.id,
        incident.severity.value,
        incident.summary,
        incident.opened_at,
        ended,
        max(0.0, (ended if ended is not None else until) - incident.opened_at),
        None if rto is None else rto.objective,
        met,
    )


def _day_json(day: ComplianceDay) -> dict[str, Any]:
    total = day.total or 0.0
    return {
        "day": day.day,
        "good": day.good,
        "bad": day.bad,
        "total": day.total,
        "achieved": None if not total else 100.0 * (1.0 - (day.bad or 0.0) / total),
        "budget_remaining": day.budget_remaining,
        "burning_minutes": day.burning_seconds / 60.0,
        "incidents": list(day.incidents),
    }
