"""The pydantic field types of durations and decimals in specs and the daemon config.

Both go through `engine.spec.bounds`, so every duration and number anyone writes is
finite, bounded and parsed without a traceback whatever its spelling.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

from engine.spec.bounds import bounded_decimal, bounded_duration, check_duration_text, in_range
from engine.spec.durations import Duration, DurationError
from engine.spec.yaml_safety import shown


def _to_duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"{shown(value)} is not a duration — write it as a string like 30d, 1h or 500ms"
        )
    check_duration_text(value)
    try:
        return bounded_duration(Duration.parse(value))
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _to_decimal(value: Any) -> Decimal:
    # YAML hands us floats; repr() is the shortest string that round-trips, i.e. what the
    # SRE typed (99.95 stays 99.95, never 99.9500000000000028...).
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, float | int):
        return bounded_decimal(Decimal(repr(value)))
    if isinstance(value, str):
        try:
            return bounded_decimal(Decimal(value.strip().rstrip("%")))
        except ArithmeticError:
            raise ValueError(f"{shown(value)} is not a number") from None
    if isinstance(value, Decimal):
        return bounded_decimal(value)
    raise ValueError(f"{shown(value)} is not a number")


def ranged(value: Duration, info: ValidationInfo) -> Duration:
    """A field validator: the field's documented range (`bounds.SPEC_DURATION_RANGES`)."""
    return in_range(str(info.field_name), value)


DurationField = Annotated[Duration, BeforeValidator(_to_duration), PlainSerializer(str)]
DecimalField = Annotated[Decimal, BeforeValidator(_to_decimal), PlainSerializer(str)]
