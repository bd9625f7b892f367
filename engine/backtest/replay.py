"""Replay history through the daemon's own code paths, on a simulated clock, sending nothing.

    rates = fetch_history(source, slos, step, plan)          # adapter: bulk, chunked
    result = replay(slos, rates, plan, incident_config)       # pure: no I/O, no wall clock

What runs, step by step, is what the daemon runs each cycle:

1. evaluation — `engine.evaluation.series.iter_series` (the daemon's window sums, error ratios,
   budgets, multiwindow rules and low-traffic guard, vectorized over the time axis);
2. alerts — at every step, each SLO with a firing rule is packaged as the `SLOEvaluation` the
   daemon would have produced at that instant and turned into alerts by the daemon's
   `alerts_from_evaluation`; held alerts are recorded but, as in the daemon, open nothing;
3. anomaly detection — `score_step_rates` over the fetched history, the function the
   daemon's live tracker (`engine.anomaly.live`) calls each cycle, as `anomaly_alert`s;
4. incidents — one `IncidentEngine` fed with `observe(now, alerts, evaluations)` at every
   step, `now` being the simulated clock. Notifications are counted, never delivered.

The pieces: `plan` (the step grid, warm-up and fetch), `evaluated` (1, every SLO at every step,
optionally in forked workers), `anomalies` (3), `traces` (what the report plots), `result`
(what a replay produced); this module runs the steps (2 and 4) through
`engine.incidents.cycle.observe_cycle`, the daemon's own cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.backtest.anomalies import AnomalyTrack, active_states, anomaly_intervals, anomaly_tracks
from engine.backtest.evaluated import Evaluated, evaluate
from engine.backtest.plan import (
    FETCH_CHUNK_STEPS,
    Progress,
    ReplayPlan,
    anomaly_warmup,
    fetch_history,
    make_plan,
    minimum_warmup,
    no_progress,
    required_warmup,
)
from engine.backtest.result import AlertInterval, AlertSeverity, ReplayResult
from engine.backtest.traces import REPORT_POINTS, SLOTrace
from engine.evaluation.budget import budget_consumed
from engine.evaluation.maintenance import kept_share
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import StepRates
from engine.evaluation.windows import normalize_step_counts
from engine.incidents.config import IncidentConfig, ReceiverConfig
from engine.incidents.cycle import CycleOutcome, observe_cycle
from engine.incidents.dependencies import spec_edges
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import Incident
from engine.spec.models import SLO

# The names callers import from here (the replay's public surface before the split).
__all__ = [
    "FETCH_CHUNK_STEPS",
    "REPORT_POINTS",
    "AlertInterval",
    "AlertSeverity",
    "Progress",
    "ReplayPlan",
    "ReplayResult",
    "SLOTrace",
    "anomaly_warmup",
    "default_incident_config",
    "fetch_history",
    "make_plan",
    "minimum_warmup",
    "replay",
    "required_warmup",
]


def default_incident_config() -> IncidentConfig:
    """One catch-all receiver, so every notification the policy would send is counted."""
    return IncidentConfig(receivers=[ReceiverConfig(name="pager")])


def replay(
    slos: Sequence[SLO],
    rates: StepRates,
    plan: ReplayPlan,
    incident_config: IncidentConfig | None = None,
    progress: Progress = no_progress,
    traces: bool = False,
    workers: int = 1,
) -> ReplayResult:
    """Replay `plan` over `rates` (rows follow `slos`; fetched with `fetch_history`).

    `workers` > 1 evaluates groups of SLOs in forked processes (the SLOs are independent;
    the incident engine, which correlates them, always runs in this process)."""
    slos = list(slos)
    first = int(np.searchsorted(rates.times, plan.start - 1e-6))
    if first >= rates.times.size or abs(rates.times[first] - plan.start) > 1e-6:
        raise ValueError("the fetched history does not contain the replay start on its grid")
    times = rates.times[first:]

    evaluated = evaluate(slos, rates, first, traces, workers, progress)

    tracks = anomaly_tracks(slos, rates, times)
    # Steps hand the engine only the SLOs that fired: give it every spec's dependencies up
    # front, as the daemon's full evaluations do each cycle (chains correlate the same).
    engine = IncidentEngine(
        incident_config or default_incident_config(), dependencies=spec_edges(slos)
    )
    seen = _run_steps(engine, evaluated, tracks, times, progress)

    alerts_out = sorted(
        [*evaluated.intervals, *anomaly_intervals(tracks, times)],
        key=lambda a: (a.start, a.slo_id, a.severity, a.held or ""),
    )
    return ReplayResult(
        plan=plan,
        slos=slos,
        alerts=alerts_out,
        incidents=sorted(seen.incidents.values(), key=lambda i: (i.opened_at, i.id)),
        notifications=seen.notifications,
        budget_consumed=_budget_consumed(slos, rates, plan, first, plan.step.seconds),
        fingerprints=seen.fingerprints,
        traces=evaluated.traces,
        errors=dict(rates.errors),
    )


@dataclass
class _Seen:
    """What the incident engine did over the replay, accumulated cycle by cycle."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=dict)
    fingerprints: dict[str, tuple[str, str]] = field(default_factory=dict)

    def record(self, outcome: CycleOutcome) -> None:
        decision = outcome.decision
        for alert in outcome.alerts:
            self.fingerprints.setdefault(alert.fingerprint, (alert.slo_id, alert.severity))
        for note in decision.notifications:
            # Tickets that only notify (`ticket_incidents`) count under their own key.
            if note.kind in ("incident", "ticket"):
                self.notifications[note.dedup_key] = self.notifications.get(note.dedup_key, 0) + 1
        for incident in decision.incidents:
            self.incidents[incident.id] = incident


def _run_steps(
    engine: IncidentEngine,
    evaluated: Evaluated,
    tracks: Sequence[AnomalyTrack],
    times: np.ndarray,
    progress: Progress,
) -> _Seen:
    """One daemon cycle per replayed step, on the simulated clock."""
    n_steps = times.size
    fired = evaluated.fired()
    unknown_starts = _unknown_index(evaluated.unknown, n_steps)
    seen = _Seen()
    cursor = 0
    n_fired = 0 if fired is None else fired.steps.size
    report_every = max(1, n_steps // 200)
    progress("replay", 0, n_steps)
    for t in range(n_steps):
        now = float(times[t])
        evaluations: list[SLOEvaluation] = []
        while cursor < n_fired and fired is not None and fired.steps[cursor] == t:
            evaluations.append(evaluated.evaluation(fired, cursor, now))
            cursor += 1
        anomalies = active_states(tracks, t)
        evaluations.extend(_unknown_evaluations(engine, evaluated, unknown_starts, t, now))
        seen.record(observe_cycle(engine, now, evaluations, anomalies))
        if t % report_every == 0 or t == n_steps - 1:
            progress("replay", t + 1, n_steps)
    return seen


def _unknown_index(unknown: list[list[tuple[int, int]]], n_steps: int) -> dict[int, np.ndarray]:
    """Per row that is ever no_data/error: a bool[T'] mask of those steps."""
    out: dict[int, np.ndarray] = {}
    for s, runs in enumerate(unknown):
        if runs:
            mask = np.zeros(n_steps, dtype=bool)
            for a, b in runs:
                mask[a:b] = True
            out[s] = mask
    return out


def _unknown_evaluations(
    engine: IncidentEngine,
    evaluated: Evaluated,
    unknown: dict[int, np.ndarray],
    t: int,
    now: float,
) -> list[SLOEvaluation]:
    """No-data evaluations for SLOs the engine tracks: missing data must not clear them."""
    if not unknown or not engine.state.alerts:
        return []
    tracked = {a.slo_id for a in engine.state.alerts.values()}
    out = []
    for s, mask in unknown.items():
        slo = evaluated.slos[s]
        if slo.id in tracked and mask[t]:
            out.append(SLOEvaluation(slo=slo, evaluated_at=now, status="no_data"))
    return out


def _budget_consumed(
    slos: Sequence[SLO], rates: StepRates, plan: ReplayPlan, first: int, step_s: float
) -> dict[str, float | None]:
    """Share of one period's error budget spent by the events inside (start, end].

    Event-weighted: bad ÷ (budget × total) over the replayed steps, scaled by the replay's
    length over the period — the fraction of a full period's budget these events used."""
    # The step ending at `start` lies before it; the replayed events are the later steps.
    bad, total = normalize_step_counts(rates.bad[:, first + 1 :], rates.total[:, first + 1 :])
    kept = kept_share(slos, rates.times[first + 1 :], step_s)
    if kept is not None:  # maintenance windows spend no budget (engine.evaluation.maintenance)
        bad, total = bad * kept, total * kept
    out: dict[str, float | None] = {}
    span = plan.end - plan.start
    for s, slo in enumerate(slos):
        if slo.id in rates.errors:
            out[slo.id] = None
            continue
        value = budget_consumed(
            np.nansum(bad[s]) * step_s, np.nansum(total[s]) * step_s, float(slo.error_budget)
        )
        share = float(value) * span / slo.period.seconds
        out[slo.id] = None if not np.isfinite(share) else share
    return out
