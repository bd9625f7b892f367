"""What a scenario's load is: HTTP traffic per job (`ServiceLoad`), the incidents that
override it (`Incident`) and the database with its backups (`DatabaseLoad`), each checked
when built. `engine.demo.scenario` turns them into counters and ground truth.

Times here are offsets in seconds from the scenario start; a Duration string such as "2h"
or a timedelta is accepted too (`to_seconds`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from engine.spec.durations import Duration

DAY = 86_400
WEEK = 7 * DAY

Seconds = int | float | str | timedelta | Duration


def to_seconds(value: Seconds) -> float:
    """Seconds from a number, a Duration, a timedelta or a duration string like "90m"."""
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Duration):
        return value.seconds
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        return Duration.parse(value).seconds
    raise TypeError(f"not a duration: {value!r}")


def _ratio(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


def _window(pair: Sequence[Seconds]) -> tuple[float, float]:
    start, end = (to_seconds(x) for x in pair)
    if end <= start:
        raise ValueError(f"window end {end} must be after its start {start}")
    return start, end


@dataclass(frozen=True)
class Incident:
    """A period (offsets in seconds from the scenario start) overriding a service's load.

    Fields left as None keep the service's normal value. When incidents overlap, the one
    listed last wins for each field it sets.
    """

    start: float
    end: float
    error_ratio: float | None = None
    rps_factor: float | None = None
    slow_ratio: float | None = None

    def __post_init__(self) -> None:
        start, end = _window((self.start, self.end))
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        _ratio("error_ratio", self.error_ratio)
        _ratio("slow_ratio", self.slow_ratio)
        if self.rps_factor is not None and self.rps_factor < 0:
            raise ValueError(f"rps_factor must be >= 0, got {self.rps_factor}")


@dataclass(frozen=True)
class ServiceLoad:
    """HTTP traffic of one job.

    rate(t) = rps × (1 + daily_amplitude·sin(2πt/1d) + weekly_amplitude·sin(2πt/1w)) × factor,
    t counted from the scenario start; factor is an active incident's rps_factor, else 1.
    """

    job: str = "api"
    rps: float = 10.0
    error_ratio: float = 0.0005
    slow_ratio: float = 0.01
    daily_amplitude: float = 0.0
    weekly_amplitude: float = 0.0
    incidents: Sequence[Incident] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "incidents", tuple(self.incidents))
        if self.rps < 0:
            raise ValueError(f"rps must be >= 0, got {self.rps}")
        _ratio("error_ratio", self.error_ratio)
        _ratio("slow_ratio", self.slow_ratio)
        if self.daily_amplitude < 0 or self.weekly_amplitude < 0:
            raise ValueError("amplitudes must be >= 0")
        if self.daily_amplitude + self.weekly_amplitude > 1:
            raise ValueError("daily_amplitude + weekly_amplitude must be <= 1 (rates stay >= 0)")

    def shape_integral(self, u: np.ndarray) -> np.ndarray:
        """∫₀ᵘ (1 + a_d·sin(2πs/D) + a_w·sin(2πs/W)) ds, exactly."""
        out = np.asarray(u, dtype=np.float64).copy()
        for amp, period in ((self.daily_amplitude, DAY), (self.weekly_amplitude, WEEK)):
            if amp:
                out += amp * period / (2 * math.pi) * (1 - np.cos(2 * math.pi * u / period))
        return out


@dataclass(frozen=True)
class DatabaseLoad:
    """The database's probe and its backup job.

    - `pg_up{job=<job>}` is 0 during `outages`, 1 otherwise.
    - A backup runs every `backup_interval` seconds (the first one interval after the start)
      and fails inside `backup_failures`; `backup_last_success_timestamp_seconds` is the time
      of the latest successful one (the scenario assumes one succeeded at its start).
    - A verification check runs every `backup_check_interval` seconds and fails inside
      `backup_failures`; counted in `backup_verification_checks_total{result=success|failed}`.
    """

    job: str = "database"
    backup_job: str = "backup"
    outages: Sequence[tuple[Seconds, Seconds]] = ()
    backup_interval: float = 300.0
    backup_check_interval: float = 300.0
    backup_failures: Sequence[tuple[Seconds, Seconds]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "outages", tuple(_window(w) for w in self.outages))
        object.__setattr__(self, "backup_failures", tuple(_window(w) for w in self.backup_failures))
        for name in ("backup_interval", "backup_check_interval"):
            value = to_seconds(getattr(self, name))
            if value <= 0:
                raise ValueError(f"{name} must be > 0")
            object.__setattr__(self, name, value)
