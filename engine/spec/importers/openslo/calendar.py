"""OpenSLO calendar-aligned time windows → `period: calendar-…` with `timezone:`.

    timeWindow:
      - duration: 1M              # 1w, 1M or 1Q: one week, month or quarter
        isRolling: false
        calendar:
          startTime: 2024-01-01 00:00:00   # local time of timeZone
          timeZone: America/New_York

slo-engine's calendar periods begin at local midnight on Monday, the 1st of a month or of
January/April/July/October (engine.spec.calendar), so `startTime` must be such an instant:
any other start would be a period the engine does not compute, and is refused with its
line rather than silently moved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.spec.calendar import KINDS, check_timezone
from engine.spec.document import Document
from engine.spec.errors import SpecError
from engine.spec.importers.openslo.objective import convert_period
from engine.spec.yaml_safety import shown

_KIND_OF = {"1w": "week", "1M": "month", "1Q": "quarter"}
Path = tuple[Any, ...]


def _starts_period(kind: str, start: datetime) -> bool:
    if (start.hour, start.minute, start.second, start.microsecond) != (0, 0, 0, 0):
        return False
    if kind == "week":
        return start.weekday() == 0
    return start.day == 1 and (kind == "month" or start.month in (1, 4, 7, 10))


def _start_time(value: Any) -> datetime | None:
    # YAML reads `2024-01-01 00:00:00` as a datetime already; a string is parsed the same.
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).replace(tzinfo=None)
        except ValueError:
            return None
    return None


def calendar_window(
    doc: Document, entry: dict[str, Any], path: Path
) -> tuple[dict[str, str] | None, list[SpecError]]:
    """`{"period": "calendar-month", "timezone": zone}` for a calendar timeWindow entry at
    `path`, or the located errors."""
    duration = entry.get("duration")
    kind = _KIND_OF.get(duration) if isinstance(duration, str) else None
    if kind is None or kind not in KINDS:
        return None, [
            doc.error(
                (*path, "duration"),
                f"a calendar window (isRolling: false) of {shown(duration)} is not a week, "
                "month or quarter",
                "write duration: 1w, 1M or 1Q, or isRolling: true for a rolling period",
            )
        ]
    calendar = entry.get("calendar") or {}
    if not isinstance(calendar, dict):
        return None, [
            doc.error((*path, "calendar"), "calendar must be a mapping", "give startTime, timeZone")
        ]
    zone = calendar.get("timeZone", "UTC")
    try:
        check_timezone(zone)
    except ValueError:
        return None, [
            doc.error(
                (*path, "calendar", "timeZone"),
                f"timeZone {shown(zone)} is not an IANA time zone",
                "e.g. UTC, Europe/Berlin, America/New_York",
            )
        ]
    if "startTime" in calendar:
        start = _start_time(calendar["startTime"])
        if start is None or not _starts_period(kind, start):
            first = {"week": "a Monday", "month": "the 1st", "quarter": "1 Jan/Apr/Jul/Oct"}
            return None, [
                doc.error(
                    (*path, "calendar", "startTime"),
                    f"startTime {shown(calendar['startTime'])} does not begin a calendar {kind}",
                    f"slo-engine's {kind}s begin at 00:00 on {first[kind]} in timeZone, "
                    "e.g. 2024-01-01 00:00:00",
                )
            ]
    return {"period": f"calendar-{kind}", "timezone": zone}, []


def convert_window(
    doc: Document, spec: dict[str, Any]
) -> tuple[dict[str, str] | None, list[SpecError]]:
    """The native period keys of an SLO's one timeWindow: `period` for a rolling window;
    `period: calendar-…` and `timezone` for a calendar one (composites keep refusing
    calendar windows through `convert_period`)."""
    windows = spec.get("timeWindow")
    if isinstance(windows, list) and len(windows) == 1 and isinstance(windows[0], dict):
        entry = windows[0]
        if entry.get("calendar") is not None or entry.get("isRolling") is False:
            return calendar_window(doc, entry, ("spec", "timeWindow", 0))
    period, errors = convert_period(doc, spec)
    return (None if period is None else {"period": period}), errors
