"""A service's planned maintenance on the status page: the window in progress, or the next
one starting within 24 hours (docs/budgets.md, "Maintenance windows").

Pure: a service's windows and a time in, plain strings out (the template only places
them). The windows are its SLOs' — the spec's and those declared through the API
(engine/daemon/maintenance.py), which may cover only some of its SLOs. Times are shown in
UTC like the rest of the page; the reason comes from the spec or the API request and is
autoescaped by Jinja2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.evaluation.maintenance import active_windows
from engine.evaluation.result import SLOEvaluation
from engine.spec.maintenance import MaintenanceWindow

# How far ahead a window is announced.
UPCOMING_SECONDS = 24 * 3600


@dataclass(frozen=True)
class MaintenanceNote:
    active: bool  # in progress (else upcoming)
    label: str  # "Maintenance in progress" / "Maintenance scheduled"
    text: str  # "until 2026-12-06 03:00 UTC — database upgrade"


def service_windows(evaluations: Sequence[SLOEvaluation]) -> list[MaintenanceWindow]:
    """Every window of the service's SLOs, each once, in the SLOs' order."""
    return list(dict.fromkeys(w for ev in evaluations for w in ev.slo.maintenance))


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _reason(windows: Sequence[MaintenanceWindow], start: float, end: float) -> str:
    """The reason of the first declared window within [start, end) that gives one."""
    return next((w.reason for w in windows if w.reason and w.intervals(start, end)), "")


def maintenance_note(windows: Sequence[MaintenanceWindow], now: float) -> MaintenanceNote | None:
    """The service's window open at `now`, else the first starting within 24 hours."""
    if not windows:
        return None
    found = active_windows(windows, now, UPCOMING_SECONDS)
    if not found:
        return None
    start, end = found[0]
    reason = _reason(windows, start, end)
    suffix = f" — {reason}" if reason else ""
    if start <= now:
        return MaintenanceNote(True, "Maintenance in progress", f"until {_utc(end)}{suffix}")
    return MaintenanceNote(False, "Maintenance scheduled", f"{_utc(start)} to {_utc(end)}{suffix}")
