"""Compliance history in the store: one row per SLO (grouped: per instance) per UTC day.

What the monthly SLO report reads (engine/reports/): the day's good, bad and total events,
the error budget left at the day's last observation, the seconds an alert of the SLO was
firing ("burning"), and the incidents opened that day for it.

Every write is an upsert keyed by (slo_id, day), so replicas and restarts never double
count:
- events are recomputed for the whole day from the metrics source and replace what was
  there (the same day asked twice gives the same numbers);
- burning time grows by the gap between two successive observations, only when the newer
  one fires and is newer than the last one recorded (`observed_at`), and never by more
  than `max_gap` — re-applying a cycle adds nothing, and two writers interleaving still
  add up to at most the wall time between observations.

One SQL text for SQLite and PostgreSQL (placeholders translated), like engine.store.audit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.store.sql_table import SQLTable

CREATE_TABLE = """CREATE TABLE compliance_days (
    slo_id text NOT NULL,
    day text NOT NULL,
    service text NOT NULL,
    objective double precision NOT NULL,
    good double precision,
    bad double precision,
    total double precision,
    budget_remaining double precision,
    burning_seconds double precision NOT NULL DEFAULT 0,
    observed_at double precision,
    incidents text NOT NULL DEFAULT '[]',
    updated_at double precision NOT NULL,
    PRIMARY KEY (slo_id, day)
)"""
CREATE_INDEX = "CREATE INDEX compliance_days_by_day ON compliance_days (day, service)"

_T = "compliance_days"
_OBSERVE = f"""
    INSERT INTO {_T} (slo_id, day, service, objective, budget_remaining, observed_at,
        updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (slo_id, day) DO UPDATE SET
        burning_seconds = {_T}.burning_seconds + CASE
            WHEN %s AND {_T}.observed_at IS NOT NULL
                 AND excluded.observed_at > {_T}.observed_at
                 AND excluded.observed_at - {_T}.observed_at <= %s
            THEN excluded.observed_at - {_T}.observed_at ELSE 0 END,
        budget_remaining = CASE
            WHEN {_T}.observed_at IS NULL OR excluded.observed_at >= {_T}.observed_at
            THEN excluded.budget_remaining ELSE {_T}.budget_remaining END,
        observed_at = CASE
            WHEN {_T}.observed_at IS NULL OR excluded.observed_at > {_T}.observed_at
            THEN excluded.observed_at ELSE {_T}.observed_at END,
        objective = excluded.objective,
        updated_at = excluded.updated_at"""
_EVENTS = f"""
    INSERT INTO {_T} (slo_id, day, service, objective, good, bad, total, incidents,
        updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (slo_id, day) DO UPDATE SET
        good = excluded.good, bad = excluded.bad, total = excluded.total,
        incidents = excluded.incidents, objective = excluded.objective,
        updated_at = excluded.updated_at"""
_FIELDS = (
    "slo_id",
    "day",
    "service",
    "objective",
    "good",
    "bad",
    "total",
    "budget_remaining",
    "burning_seconds",
    "incidents",
)


@dataclass(frozen=True)
class ComplianceDay:
    """One SLO's day. Events None: not counted (yet, or no data); never read as zero."""

    slo_id: str
    day: str  # YYYY-MM-DD, UTC
    service: str
    objective: float  # percent, e.g. 99.9
    good: float | None = None
    bad: float | None = None
    total: float | None = None
    budget_remaining: float | None = None  # ratio at the day's last observation
    burning_seconds: float = 0.0
    incidents: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "slo_id": self.slo_id,
            "day": self.day,
            "service": self.service,
            "objective": self.objective,
            "good": self.good,
            "bad": self.bad,
            "total": self.total,
            "budget_remaining": self.budget_remaining,
            "burning_minutes": self.burning_seconds / 60.0,
            "incidents": list(self.incidents),
        }


class ComplianceHistory(Protocol):
    def observe(
        self,
        day: ComplianceDay,
        at: float,
        burning: bool,
        max_gap: float,
    ) -> None:
        """Record one cycle's observation: budget left, and burning time since the last."""
        ...

    def put_events(self, day: ComplianceDay, at: float) -> None:
        """Replace the day's events and incidents (recomputed for the whole day)."""
        ...

    def days(self, first: str, last: str, service: str | None = None) -> list[ComplianceDay]:
        """Rows with first <= day <= last (YYYY-MM-DD), by SLO then day."""
        ...


class SQLComplianceHistory(SQLTable):
    """`ComplianceHistory` over a store's transactions (see engine/store/audit.py)."""

    def observe(self, day: ComplianceDay, at: float, burning: bool, max_gap: float) -> None:
        row = (day.slo_id, day.day, day.service, day.objective, day.budget_remaining, at, at)
        with self._transaction() as db:
            db.execute(self._sql(_OBSERVE), (*row, bool(burning), float(max_gap)))

    def put_events(self, day: ComplianceDay, at: float) -> None:
        incidents = json.dumps(list(day.incidents))
        row = (day.slo_id, day.day, day.service, day.objective, day.good, day.bad, day.total)
        with self._transaction() as db:
            db.execute(self._sql(_EVENTS), (*row, incidents, at))

    def days(self, first: str, last: str, service: str | None = None) -> list[ComplianceDay]:
        sql = f"SELECT {', '.join(_FIELDS)} FROM {_T} WHERE day >= %s AND day <= %s"
        params: list[Any] = [first, last]
        if service is not None:
            sql += " AND service = %s"
            params.append(service)
        with self._transaction() as db:
            found = db.execute(self._sql(sql + " ORDER BY slo_id, day"), tuple(params)).fetchall()
        return [_day(row) for row in found]


def _day(row: Any) -> ComplianceDay:
    values: Sequence[Any] = [row[name] for name in _FIELDS]
    slo_id, day, service, objective, good, bad, total, budget, burning, incidents = values
    return ComplianceDay(
        slo_id=slo_id,
        day=day,
        service=service,
        objective=float(objective),
        good=None if good is None else float(good),
        bad=None if bad is None else float(bad),
        total=None if total is None else float(total),
        budget_remaining=None if budget is None else float(budget),
        burning_seconds=float(burning or 0.0),
        incidents=tuple(json.loads(incidents or "[]")),
    )
