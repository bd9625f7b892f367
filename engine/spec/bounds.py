"""The documented range of every duration and number in a spec (docs/specs.md, "Limits").

`validate` must refuse whatever evaluation cannot handle: a threshold of 400 nines passed
the model once and then failed every cycle in the bucket spelling; a 20-digit period
crashed `run`. So each value is checked here, with a located error saying the range:

- any duration: at most `MAX_DURATION_TEXT` characters and at most `MAX_DURATION` (10y);
- any decimal: finite, at most `MAX_DIGITS` significant digits, magnitude within 10^±12;
- per field: the ranges in `SPEC_DURATION_RANGES` and the checks below.
"""

from __future__ import annotations

from decimal import Decimal

from engine.spec.durations import Duration
from engine.spec.yaml_safety import shown

MAX_DURATION_TEXT = 64
MAX_DURATION = Duration.parse("3650d")
MAX_DIGITS = 15
MAX_EXPONENT = 12
# Objective: at most this many decimal places (99.999999 % is 2.6 s of errors a month).
OBJECTIVE_PLACES = 6
MAX_FACTOR = Decimal(1_000_000)
MAX_EXPECTED_BAD_EVENTS = Decimal(1_000_000)
MAX_MIN_BAD_EVENTS = 1_000_000

# field → (shortest, longest, an example inside the range)
SPEC_DURATION_RANGES: dict[str, tuple[Duration, Duration, str]] = {
    "period": (Duration.parse("1h"), Duration.parse("365d"), "30d"),
    "threshold": (Duration(1), Duration.parse("1h"), "500ms"),
    "long_window": (Duration.parse("1s"), Duration.parse("365d"), "1h"),
    "short_window": (Duration.parse("1s"), Duration.parse("365d"), "5m"),
    "min_duration": (Duration(0), Duration.parse("1d"), "10m"),
    "sustained": (Duration(0), Duration.parse("7d"), "30m"),
    "history": (Duration.parse("1w"), Duration.parse("52w"), "3w"),
}


def check_duration_text(text: str) -> None:
    """Refuse a duration string too long to be meant (before turning digits into ints)."""
    if len(text) > MAX_DURATION_TEXT:
        raise ValueError(
            f"{shown(text)} is not a duration — at most {MAX_DURATION_TEXT} characters, "
            "e.g. 30s, 5m, 1h30m, 28d"
        )


def bounded_duration(value: Duration) -> Duration:
    if value > MAX_DURATION:
        raise ValueError(
            f"{value} is longer than any duration this engine uses — at most {MAX_DURATION}"
        )
    return value


def in_range(field: str, value: Duration) -> Duration:
    """`value` when it lies in the documented range of spec field `field`."""
    low, high, example = SPEC_DURATION_RANGES[field]
    if not (low <= value <= high):
        raise ValueError(
            f"{field} {value} is out of range — {low} ≤ {field} ≤ {high}, e.g. {example}"
        )
    return value


def bounded_decimal(value: Decimal) -> Decimal:
    """A finite decimal of bounded precision and magnitude: what Decimal arithmetic in the
    evaluation (28 digits) and the generated rules can carry without rounding to nonsense."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a number — write a finite number, e.g. 99.9")
    if value.is_zero():
        return value
    digits = len(value.normalize().as_tuple().digits)
    if digits > MAX_DIGITS or abs(value.adjusted()) > MAX_EXPONENT:
        raise ValueError(
            f"{shown(str(value))} has more precision or magnitude than this engine keeps — "
            f"at most {MAX_DIGITS} significant digits, between 1e-{MAX_EXPONENT} and "
            f"1e{MAX_EXPONENT}"
        )
    return value


def objective_places(value: Decimal) -> Decimal:
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > OBJECTIVE_PLACES:
        raise ValueError(
            f"objective {value} has more than {OBJECTIVE_PLACES} decimal places — "
            "round it, e.g. 99.9999"
        )
    return value


def at_most(field: str, value: Decimal | int, high: Decimal | int) -> None:
    if value > high:
        raise ValueError(f"{field} {value} is out of range — at most {high}")
