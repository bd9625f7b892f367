"""Maintenance windows in the evaluation: which share of each step's events count, and
when an SLO's alerts are muted.

Semantics (docs/budgets.md, "Maintenance windows"): events inside a window are excluded
from both bad and total, so a window neither spends nor earns budget — the budget is
exactly what it would be had the maintenance traffic never existed. Per-step counts are
scaled by the share of the step outside every window (1 outside, 0 inside; a coarse step
cut by a window's edge keeps its outside share, assuming even traffic within the step,
like the cache's prorated window edges). Steps keep their "has data" flag: a step that
was measured but excluded is not missing data.

Muting lasts from a window's start to its end plus a grace of the SLO's longest page short
window, so a short window still holding the last minutes before the end — e.g. a service
warming up — does not page as the window closes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.evaluation.policy import policy_for
from engine.spec.durations import Duration
from engine.spec.maintenance import Interval, MaintenanceWindow, windows_between
from engine.spec.models import SLO


def _intervals(slo: SLO, begin: float, end: float) -> list[Interval]:
    return windows_between(slo.maintenance, begin, end) if slo.maintenance else []


def kept_share(
    slos: Sequence[SLO],
    step_ends: np.ndarray,
    step_seconds: float,
) -> np.ndarray | None:
    """float64[S, T]: the share of each step (ending at `step_ends`, `step_seconds` long)
    that lies outside every maintenance window of each SLO; None when no SLO has a window
    in that span (the common case costs nothing)."""
    ends = np.asarray(step_ends, dtype=np.float64)
    if ends.size == 0 or not any(s.maintenance for s in slos):
        return None
    begin, end = float(ends.min()) - step_seconds, float(ends.max())
    starts = ends - step_seconds
    kept: np.ndarray | None = None
    # The SLOs of a service share its windows: expand and mask each list once.
    rows_by_windows: dict[tuple[MaintenanceWindow, ...], np.ndarray | None] = {}
    for row, slo in enumerate(slos):
        if not slo.maintenance:
            continue
        if slo.maintenance not in rows_by_windows:
            rows_by_windows[slo.maintenance] = _step_shares(
                _intervals(slo, begin, end), starts, ends, step_seconds
            )
        share = rows_by_windows[slo.maintenance]
        if share is None:
            continue
        if kept is None:
            kept = np.ones((len(slos), ends.size))
        kept[row] = share
    return kept


def _step_shares(
    intervals: list[Interval], starts: np.ndarray, ends: np.ndarray, step_seconds: float
) -> np.ndarray | None:
    if not intervals:
        return None
    inside = np.zeros(ends.size)
    for a, b in intervals:  # merged: they never overlap, so overlaps add up
        inside += np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0.0, None)
    return 1.0 - np.minimum(inside / step_seconds, 1.0)


def ring_kept_share(slos: Sequence[SLO], end: int, length: int, step: int) -> np.ndarray | None:
    """`kept_share` for a cache tier's time-major ring (slot = step number mod length):
    float64[length, S], or None without windows."""
    times = np.arange(end - (length - 1) * step, end + 1, step, dtype=np.int64)
    kept = kept_share(slos, times, float(step))
    if kept is None:
        return None
    out = np.empty((length, len(slos)))
    out[(times // step) % length] = kept.T
    return out


def grace(slo: SLO) -> Duration:
    """How long alerts stay muted after a window ends: the longest page short window."""
    shorts = [r.short_window for r in policy_for(slo).rules if r.severity == "page"]
    return max(shorts, key=lambda d: d.ms) if shorts else Duration.parse("5m")


def muted_by_maintenance(slo: SLO, at: float) -> bool:
    """Whether `at` is inside one of the SLO's windows or its grace after one."""
    if not slo.maintenance:
        return False
    after = grace(slo).seconds
    return any(a <= at < b + after for a, b in _intervals(slo, at - after, at + 1))


def active_windows(windows: Sequence[MaintenanceWindow], at: float, ahead: float) -> list[Interval]:
    """Windows open at `at` or starting within `ahead` seconds (the status page's list)."""
    return windows_between(windows, at, at + ahead)


def touches_maintenance(slos: Sequence[SLO], at: float) -> bool:
    """Whether a window of some SLO overlaps its period ending at `at`: whole-window counts
    (engine.evaluation.instant) cannot leave its steps out, per-step counts can."""
    return any(
        slo.maintenance and windows_between(slo.maintenance, at - slo.period.seconds, at)
        for slo in slos
    )
