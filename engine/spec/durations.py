"""Prometheus-style durations, held as whole milliseconds so arithmetic stays exact.

SLO maths multiplies and divides windows constantly (factor = share × period ÷ window);
floats would leak noise such as 0.0009999999999999432 into generated rules, so every
duration is an integer count of milliseconds and every ratio of durations is a Decimal.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal

_UNITS_MS: dict[str, int] = {
    "y": 365 * 24 * 3600 * 1000,
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
# Largest unit first, as Prometheus requires ("1h30m", never "30m1h").
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


class DurationError(ValueError):
    """A string that is not a Prometheus duration."""


@dataclass(frozen=True, order=True)
class Duration:
    """A non-negative span of time in whole milliseconds."""

    ms: int

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(_parse_ms(text))

    @classmethod
    def of_seconds(cls, seconds: float | int | Decimal) -> Duration:
        return cls(int(Decimal(str(seconds)) * 1000))

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    @property
    def decimal_seconds(self) -> Decimal:
        return Decimal(self.ms) / 1000

    def __str__(self) -> str:
        """Canonical Prometheus spelling, e.g. 90 minutes -> "1h30m", 0 -> "0s"."""
        return _spelling(self.ms)

    def __truediv__(self, other: Duration) -> Decimal:
        return Decimal(self.ms) / Decimal(other.ms)

    def __mul__(self, k: int) -> Duration:
        return Duration(self.ms * k)

    def __floordiv__(self, k: int) -> Duration:
        return Duration(self.ms // k)


def parse_duration(text: str) -> Duration:
    return Duration.parse(text)


@functools.lru_cache(maxsize=4096)
def _parse_ms(text: str) -> int:
    """Milliseconds of a duration string. Cached: a fleet's specs repeat a handful of
    windows thousands of times (4,000 parses for 1,000 specs). Errors are not cached."""
    text = text.strip()
    # Bounded first: 5,000 digits would make int() raise, and the message quote it all.
    match = _DURATION_RE.match(text) if len(text) <= 64 else None
    if not text or match is None or not any(match.groups()):
        shown = repr(text) if len(text) <= 64 else repr(text[:40] + "...")
        raise DurationError(
            f"{shown} is not a duration — write it like 30s, 5m, 1h30m, 28d (units ms s m h d w y)"
        )
    return sum(int(v) * _UNITS_MS[u] for v, u in zip(match.groups(), _ORDER, strict=True) if v)


# A run spells the same few windows tens of thousands of times (every SLO's JSON, every
# query): spelled once each.
@functools.lru_cache(maxsize=4096)
def _spelling(ms: int) -> str:
    if ms == 0:
        return "0s"
    rest, parts = ms, []
    # Weeks and years are legal but surprising in window names; SREs write 28d, not 4w.
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)
