"""Calendar periods: a budget that resets at the start of each week, month or quarter.

    slos:
      - name: availability
        objective: 99.9
        period: calendar-month        # calendar-week | calendar-month | calendar-quarter
        timezone: America/New_York    # IANA name; the boundary is local midnight (default UTC)

The spelling is turned into two fields of `SLOSpec` by `calendar_spelling` (a before
validator): `period` becomes the NOMINAL length — the longest such period, 7d, 31d or 92d —
used wherever one fixed length is needed (Prometheus rules, cache retention, the one-shot
range), and `calendar` keeps the kind and zone. The evaluation then reads the budget over
[start of the current period, now] and scales burn factors with the current period's real
length (engine.evaluation.calendar); docs/budgets.md states what rules can and cannot do.

Boundaries are local midnights: weeks start on Monday (ISO 8601), quarters in January, April,
July and October. They are computed with zoneinfo, so a month holding a DST change is one
hour shorter or longer than its days × 24 h.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator

from engine.spec.durations import Duration

CalendarKind = Literal["week", "month", "quarter"]
KINDS: tuple[CalendarKind, ...] = ("week", "month", "quarter")
PREFIX = "calendar-"

# The longest period of each kind, so any elapsed part of a period fits in a window of this
# length: the fixed-length stand-in for rules (a 28-day February is then 9.7 % shorter).
NOMINAL: dict[CalendarKind, Duration] = {
    "week": Duration.parse("7d"),
    "month": Duration.parse("31d"),
    "quarter": Duration.parse("92d"),
}


def check_timezone(value: object) -> str:
    """An IANA zone name zoneinfo knows, or a ValueError naming the key."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"'timezone' must be an IANA time zone name, found {value!r} — e.g. Europe/Berlin"
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'timezone' {value!r} is not an IANA time zone — e.g. UTC, Europe/Berlin, "
            "America/New_York"
        ) from None
    return value


class CalendarPeriod(BaseModel):
    """A calendar-aligned SLO period: its kind and the zone whose midnights bound it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CalendarKind
    timezone: str = "UTC"

    _zone = field_validator("timezone")(check_timezone)

    @property
    def nominal(self) -> Duration:
        return NOMINAL[self.kind]

    @property
    def spelling(self) -> str:
        return PREFIX + self.kind

    def bounds(self, at: float) -> tuple[float, float]:
        """(start, end) in unix seconds of the period holding `at`: start ≤ at < end."""
        return period_bounds(self.kind, ZoneInfo(self.timezone), at)


def _first_day(kind: CalendarKind, day: date) -> date:
    if kind == "week":
        return day - timedelta(days=day.weekday())  # Monday
    if kind == "month":
        return day.replace(day=1)
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def _next_first_day(kind: CalendarKind, first: date) -> date:
    if kind == "week":
        return first + timedelta(days=7)
    months = 1 if kind == "month" else 3
    index = first.month - 1 + months
    return first.replace(year=first.year + index // 12, month=index % 12 + 1)


def _midnight(day: date, zone: ZoneInfo) -> float:
    # fold=0 on a day whose midnight is skipped by DST reads it with the offset before the
    # change: the first instant that exists that day.
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def period_bounds(kind: CalendarKind, zone: ZoneInfo, at: float) -> tuple[float, float]:
    """(start, end) unix seconds of the `kind` period in `zone` holding the instant `at`."""
    first = _first_day(kind, datetime.fromtimestamp(at, zone).date())
    start = _midnight(first, zone)
    if start > at:  # only where a skipped midnight put the local date ahead
        first = _first_day(kind, first - timedelta(days=1))
        start = _midnight(first, zone)
    return start, _midnight(_next_first_day(kind, first), zone)


def calendar_spelling(data: Any) -> Any:
    """Before-validator of `SLOSpec`: `period: calendar-month` (+ `timezone:`) becomes
    `period: 31d` and `calendar: {kind: month, timezone: ...}`. Errors name the key
    (`'period'`, `'timezone'`) so the loader points at its line."""
    if not isinstance(data, dict):
        return data
    period = data.get("period")
    if "calendar" in data:
        raise ValueError(
            "'calendar' is not written directly — write period: calendar-month and timezone:"
        )
    if not (isinstance(period, str) and period.strip().startswith(PREFIX)):
        if "timezone" in data:
            raise ValueError(
                "'timezone' applies to calendar periods only — write period: calendar-month "
                "(or calendar-week, calendar-quarter), or remove timezone"
            )
        return data
    kind = period.strip().removeprefix(PREFIX)
    if kind not in KINDS:
        raise ValueError(
            f"'period' {period!r} is not a calendar period — use calendar-week, "
            "calendar-month or calendar-quarter (or a rolling length such as 28d)"
        )
    zone = check_timezone(data.get("timezone", "UTC"))
    out = {k: v for k, v in data.items() if k != "timezone"}
    out["period"] = str(NOMINAL[kind])  # type: ignore[index]
    out["calendar"] = CalendarPeriod(kind=kind, timezone=zone)  # type: ignore[arg-type]
    return out
