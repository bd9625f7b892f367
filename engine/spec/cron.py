"""A five-field cron schedule (minute hour day-of-month month day-of-week), wall-clock based.

Only what recurring maintenance windows need: `*`, numbers, ranges `a-b`, lists `a,b`,
steps `*/n` and `a-b/n`, month names (JAN…DEC) and day names (SUN…SAT; 0 and 7 are both
Sunday). As in classic cron, when both day fields are restricted a day matches if either
does ("on the 1st or on Mondays"); when one is `*` only the other counts.

Times are local to the schedule's IANA zone, so "0 2 * * SUN" in Europe/Paris is 02:00
Paris time all year. A daylight-saving change makes some local times ambiguous or absent:
an absent start (02:30 on a spring-forward night) begins at the same offset from the jump,
i.e. 03:30 summer time — one hour late, never skipped; a repeated one (02:30 on a fall-back
night) begins once, at its first occurrence (`fold=0`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, lowest, highest, names whose index + lowest is their value)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """A cron expression that cannot be read; the message names the field."""


def _value(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + (1 if field == "month" else 0)
    if not text.isdigit():
        raise CronError(
            f"{field}: {text!r} is not a number" + (f" or a name ({names[0]}…)" if names else "")
        )
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _parse_field(
    text: str, field: str, low: int, high: int, names: tuple[str, ...]
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, field, low, high, names), _value(b, field, low, high, names)
            if first > last:
                raise CronError(f"{field}: range {base!r} runs backwards")
        elif base:
            first = _value(base, field, low, high, names)
            last = high if step_text else first
        else:
            raise CronError(f"{field}: empty item in {text!r}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) != 5:
            raise CronError(
                f"cron {expression!r} has {len(parts)} fields; it needs 5: "
                "minute hour day-of-month month day-of-week, e.g. '0 2 * * SUN'"
            )
        sets = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def matches(self, local: datetime) -> bool:
        """Whether the wall-clock minute `local` (naive or zoned, read as shown) matches."""
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and self.day_matches(local.date())
        )

    def starts(self, zone: ZoneInfo, begin: float, end: float) -> Iterator[float]:
        """Epoch seconds of every matching start in [begin, end), in order."""
        first = datetime.fromtimestamp(begin, UTC).astimezone(zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end, UTC).astimezone(zone).date() + timedelta(days=1)
        day = first
        while day <= last:
            if self.day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        local = datetime.combine(day, time(hour, minute), tzinfo=zone)
                        at = local.timestamp()
                        if begin <= at < end:
                            yield at
            day += timedelta(days=1)
