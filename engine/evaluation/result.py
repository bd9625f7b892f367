"""What one evaluation of one SLO says: the contract shared by `evaluate`, the daemon's API,
the incident engine and `backtest`.

`None` means "no data" everywhere. It is never replaced by 0 or 1: a failed query or an
empty result must not look like a perfect or a dead service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from engine.evaluation.calendar import calendar_json
from engine.spec.durations import Duration
from engine.spec.models import SLO

Status = Literal["ok", "ticket", "page", "exhausted", "no_data", "error"]
HeldReason = Literal["low_traffic"]

# A window (and a budget: its period window) is labelled partial when less than this share
# of it had data (coverage: engine.evaluation.coverage). Not 1.0: the newest fine step may
# still miss its last scrape when read (it is read again next cycle) and the oldest coarse
# step is prorated, so a complete window can read 0.999. One hour missing from a 30d period
# is 0.9986; a service that started three days into a 28d period is 0.11.
PARTIAL_BELOW = 0.99


def is_partial(coverage: float | None) -> bool:
    """Less than `PARTIAL_BELOW` of the window had data. False when not judged (None): a
    window without data is no data, not partial."""
    return coverage is not None and coverage < PARTIAL_BELOW


def _num(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


@dataclass(frozen=True)
class WindowValue:
    """Event counts and derived ratios over one window ending at the evaluation time."""

    bad: float | None
    total: float | None
    error_ratio: float | None
    burn_rate: float | None
    # Share of the window's length covered by steps with data, 0..1; None = not judged (no
    # data, a failed query, or a producer that does not measure it). See
    # engine.evaluation.coverage for the exact definition.
    coverage: float | None = None


@dataclass(frozen=True)
class AlertSignal:
    """One burn-rate rule whose long and short windows both exceed its threshold."""

    severity: Literal["page", "ticket"]
    long_window: Duration
    short_window: Duration
    factor: Decimal
    held: HeldReason | None = None
    # Human-readable evidence when held, e.g. "1 bad of 10 events in 1h: p=0.135 > 0.01".
    held_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "long_window": str(self.long_window),
            "short_window": str(self.short_window),
            "factor": float(self.factor),
            "held": self.held,
            "held_reason": self.held_reason,
        }


@dataclass(frozen=True)
class SLOEvaluation:
    slo: SLO
    evaluated_at: float
    status: Status
    windows: dict[Duration, WindowValue] = field(default_factory=dict)
    error_budget_remaining: float | None = None
    # Seconds until the budget is gone at the current (1h) burn rate; None when not burning.
    time_to_exhaustion: float | None = None
    alerts: tuple[AlertSignal, ...] = ()
    error: str | None = None
    # The freshest evidence: events over the newest `recent_window` (1m; see
    # engine.evaluation.windows.RECENT_WINDOW). Not a policy window — no rule reads it; it refines
    # the severity of a page (engine.incidents.classify). None = not computed (e.g. the
    # source was unreachable); a WindowValue of Nones = computed, no data.
    recent_window: Duration | None = None
    recent: WindowValue | None = None

    @property
    def firing(self) -> tuple[AlertSignal, ...]:
        """Alerts not held by the low-traffic guard."""
        return tuple(a for a in self.alerts if a.held is None)

    @property
    def budget_coverage(self) -> float | None:
        """Coverage of the period window: the share of the period the budget is computed
        over (None = not judged)."""
        value = self.windows.get(self.slo.period)
        return None if value is None else value.coverage

    @property
    def budget_partial(self) -> bool:
        """The budget covers less than `PARTIAL_BELOW` of its period (a young
        service, a long gap): an estimate from part of the period."""
        return is_partial(self.budget_coverage)

    def error_ratio(self, window: Duration) -> float | None:
        value = self.windows.get(window)
        return None if value is None else value.error_ratio

    def to_json(self) -> dict[str, Any]:
        """The documented `evaluate --format json` object for one SLO. A grouped SLO's
        instance adds `group` ({label: value}; {} for one without groups yet). `coverage`
        maps the same windows as `error_ratio`; `budget` repeats the budget remaining with
        its `partial` label and the period's coverage."""
        ordered = [(str(w), v) for w, v in sorted(self.windows.items())]
        out: dict[str, Any] = {
            "id": self.slo.id,
            "service": self.slo.service,
            "slo": self.slo.name,
            "tier": self.slo.tier.value,
            "objective": float(self.slo.objective),
            "period": str(self.slo.period),
            "status": self.status,
            "error_ratio": {w: _num(v.error_ratio) for w, v in ordered},
            "burn_rate": {w: _num(v.burn_rate) for w, v in ordered},
            "events": {
                w: None if v.total is None else {"bad": _num(v.bad), "total": _num(v.total)}
                for w, v in ordered
            },
            "coverage": {w: _num(v.coverage) for w, v in ordered},
            "error_budget_remaining": _num(self.error_budget_remaining),
            "budget": {
                "remaining": _num(self.error_budget_remaining),
                "partial": self.budget_partial,
                "coverage": _num(self.budget_coverage),
            },
            "time_to_exhaustion": _num(self.time_to_exhaustion),
            "alerts": [a.to_json() for a in self.alerts],
            "error": self.error,
            "recent": self._recent_json(),
        }
        if self.slo.grouped:
            out["group"] = self.slo.group_labels
        calendar = calendar_json(self.slo, self.evaluated_at)  # calendar SLOs only
        if calendar is not None:
            out["calendar"] = calendar
        return out

    def _recent_json(self) -> dict[str, Any] | None:
        """`{"window": "1m", "error_ratio", "burn_rate", "events": {"bad", "total"} | null}`,
        or null when not computed. A top-level key of its own: the `error_ratio`/`burn_rate`/
        `events` maps hold exactly the policy windows and the period."""
        if self.recent_window is None or self.recent is None:
            return None
        v = self.recent
        return {
            "window": str(self.recent_window),
            "error_ratio": _num(v.error_ratio),
            "burn_rate": _num(v.burn_rate),
            "events": None if v.total is None else {"bad": _num(v.bad), "total": _num(v.total)},
        }
