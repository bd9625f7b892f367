"""Planned maintenance windows declared in a spec: fixed dates, or a recurring cron schedule.

    maintenance:
      - start: 2026-12-06T01:00:00Z      # RFC 3339, with an offset
        end: 2026-12-06T03:00:00Z
        reason: database upgrade
      - cron: "0 2 * * SUN"              # every Sunday at 02:00 …
        duration: 2h                     # … for two hours
        timezone: Europe/Paris           # wall-clock time of this zone (default UTC)

Events inside a window are excluded from the budget and alerts are muted during it
(engine.evaluation.maintenance; docs/budgets.md has the semantics).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, field_validator, model_validator

from engine.spec.cron import CronError, CronSchedule
from engine.spec.durations import Duration
from engine.spec.fields import DurationField

# A window longer than a week is not maintenance but an SLO that should not exist yet.
MAX_WINDOW = Duration.parse("7d")

Interval = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _rfc3339(value: object) -> datetime:
    # YAML turns an unquoted timestamp into a datetime already; a string must carry its
    # offset, because a maintenance time without a zone is a guess about the reader's.
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an RFC 3339 time — e.g. 2026-12-06T01:00:00Z"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError(f"{value!r} is not an RFC 3339 time — e.g. 2026-12-06T01:00:00Z")
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no UTC offset — add Z or e.g. +01:00")
    return value


def _check_length(length: float, what: str) -> None:
    if length <= 0:
        raise ValueError(f"{what} must be positive")
    if length > MAX_WINDOW.seconds:
        raise ValueError(f"{what} is longer than {MAX_WINDOW}, the longest maintenance window")


class FixedWindow(_Strict):
    """One window between two instants."""

    start: datetime
    end: datetime
    reason: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, value: object) -> datetime:
        return _rfc3339(value)

    @model_validator(mode="after")
    def _order(self) -> FixedWindow:
        if self.end <= self.start:
            raise ValueError(
                f"end {self.end.isoformat()} must be after start {self.start.isoformat()}"
            )
        _check_length((self.end - self.start).total_seconds(), "the window (end − start)")
        return self

    def intervals(self, begin: float, end: float) -> list[Interval]:
        start, stop = self.start.timestamp(), self.end.timestamp()
        return [(start, stop)] if start < end and stop > begin else []


class RecurringWindow(_Strict):
    """A window of `duration` starting at every time the cron schedule matches."""

    cron: str
    duration: DurationField
    timezone: str = "UTC"
    reason: str = ""

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSchedule.parse(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone — e.g. UTC, Europe/Paris, America/New_York"
            ) from None
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: Duration) -> Duration:
        _check_length(value.seconds, f"duration {value}")
        return value

    def intervals(self, begin: float, end: float) -> list[Interval]:
        length = self.duration.seconds
        schedule = CronSchedule.parse(self.cron)
        # A window that started before `begin` may still be open: look back one duration.
        starts = schedule.starts(ZoneInfo(self.timezone), begin - length, end)
        return [(s, s + length) for s in starts if s + length > begin]


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "recurring window" if "cron" in value else "fixed window"
    return "recurring window" if isinstance(value, RecurringWindow) else "fixed window"


# A window with `cron:` is recurring, any other fixed: errors then name one shape's fields
# instead of listing both shapes' complaints.
MaintenanceWindow = Annotated[
    Annotated[FixedWindow, Tag("fixed window")]
    | Annotated[RecurringWindow, Tag("recurring window")],
    Discriminator(_kind),
]


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, overlapping or touching intervals joined: masks never count a step twice."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def windows_between(
    windows: Sequence[MaintenanceWindow], begin: float, end: float
) -> list[Interval]:
    """Every window interval overlapping [begin, end), merged."""
    return merged(i for w in windows for i in w.intervals(begin, end))
