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

Warm-up: windows reaching before `start` read history fetched before it. By default the
warm-up is the longest window any SLO evaluates (its period, usually 30d) so budgets and the
"budget exhausted" severity rule are exact from the first step, or — when a service enables
anomaly detection and it is longer — the history the anomaly state at the first step depends
on (`anomaly_warmup`: the live tracker's window, 35 days 1h35m by default).
A shorter `--warmup` (at least the longest alert window, 3d by default) is faster; budgets
then only count events since the warm-up began.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engine.anomaly.live import AnomalyState
from engine.anomaly.scoring import AnomalySeries, SeriesScores, anomaly_series, score_step_rates
from engine.evaluation.budget import budget_consumed, burn_rate, error_ratio
from engine.evaluation.burn import STATUS_CODE, STATUSES, plan_evaluation, window_values
from engine.evaluation.decisions import evaluation_windows, held_reason
from engine.evaluation.policy import policy_for
from engine.evaluation.result import AlertSignal, SLOEvaluation, WindowValue
from engine.evaluation.series import SeriesEvaluation, chunk_size, iter_series
from engine.evaluation.source import EventSource, StepRates
from engine.evaluation.windows import normalize_step_counts
from engine.incidents.config import IncidentConfig, ReceiverConfig
from engine.incidents.cycle import observe_cycle
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import Incident
from engine.spec.durations import Duration
from engine.spec.models import SLO

# progress(phase, done, total): phases "fetch", "evaluate", "replay".
Progress = Callable[[str, int, int], None]
AlertSeverity = Literal["page", "ticket", "anomaly"]

# Steps per source call while fetching: a Prometheus range query returns at most 11,000
# points per series, and a chunk per call lets the progress bar move.
FETCH_CHUNK_STEPS = 10_000
# Points per plotted series in the HTML report.
REPORT_POINTS = 1_500
_NO_DATA_CODES = (STATUS_CODE["no_data"], STATUS_CODE["error"])


def _noop(phase: str, done: int, total: int) -> None:
    return None


def default_incident_config() -> IncidentConfig:
    """One catch-all receiver, so every notification the policy would send is counted."""
    return IncidentConfig(receivers=[ReceiverConfig(name="pager")])


# ---------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class ReplayPlan:
    """The replayed range [start, end] on the step grid, and the history fetched for it."""

    step: Duration
    start: float
    end: float
    warmup: Duration

    @property
    def fetch_start(self) -> float:
        return self.start - self.warmup.seconds

    @property
    def steps(self) -> int:
        return round((self.end - self.start) / self.step.seconds) + 1


def required_warmup(slos: Sequence[SLO], start: float) -> Duration:
    """The longest window any SLO evaluates (its period), and the anomaly history that the
    state at `start` depends on."""
    windows = evaluation_windows([policy_for(s) for s in slos])
    longest = max(windows, default=Duration(0))
    for item in anomaly_series(slos):
        longest = max(longest, anomaly_warmup(item, start))
    return longest


def anomaly_warmup(item: AnomalySeries, start: float) -> Duration:
    """History before `start` holding every slot the anomaly state at `start` reads.

    That state is the one of the last slot completed by `start`, and it depends on the
    `history_slots` slots ending there — exactly the window the daemon's live tracker keeps,
    so the first replayed step sees what the daemon would have seen. When `start` falls
    inside a slot, the part of that slot already elapsed comes on top."""
    resolution = item.params.resolution
    newest_end = math.floor(start / resolution) * resolution
    seconds = start - (newest_end - item.history_slots * resolution)
    return Duration(math.ceil(seconds * 1000))


def minimum_warmup(slos: Sequence[SLO]) -> Duration:
    """The longest alert window: less than this and early alerts would be wrong."""
    found = [r.long_window for s in slos for r in policy_for(s).rules]
    return max(found, default=Duration(0))


def make_plan(
    slos: Sequence[SLO], start: float, end: float, step: Duration, warmup: Duration | None
) -> ReplayPlan:
    if step.ms <= 0 or step.ms % 1000:
        raise ValueError("step must be a whole number of seconds, e.g. 1m")
    if end <= start:
        raise ValueError("--end must be after --start")
    step_s = step.ms // 1000
    # The daemon evaluates on an epoch-aligned grid; so does the replay.
    aligned_start = math.ceil(start / step_s) * step_s
    aligned_end = math.floor(end / step_s) * step_s
    if aligned_end < aligned_start:
        raise ValueError(f"no {step} step lies between --start and --end")
    need = required_warmup(slos, aligned_start) if warmup is None else warmup
    floor = minimum_warmup(slos)
    if need < floor:
        raise ValueError(
            f"--warmup {need} is shorter than the longest alert window {floor}: alerts in the "
            f"first {floor} would be computed from partial windows"
        )
    need = Duration(math.ceil(need.ms / step.ms) * step.ms)
    return ReplayPlan(step, float(aligned_start), float(aligned_end), need)


def fetch_history(
    source: EventSource,
    slos: Sequence[SLO],
    plan: ReplayPlan,
    progress: Progress = _noop,
    chunk_steps: int = FETCH_CHUNK_STEPS,
) -> StepRates:
    """All per-step rates from `plan.fetch_start` to `plan.end`, fetched in time chunks.

    An SLO whose query failed in every chunk keeps its error (and is replayed as `error`); one
    that failed in some chunks only has no data there — missing, never zero."""
    step_s = plan.step.seconds
    first = plan.fetch_start + step_s  # the first step interval ends one step after
    n_steps = round((plan.end - first) / step_s) + 1
    times = first + step_s * np.arange(n_steps, dtype=np.float64)
    bad = np.full((len(slos), n_steps), np.nan)
    total = np.full((len(slos), n_steps), np.nan)
    failures: dict[str, list[str]] = {}
    chunks = list(range(0, n_steps, chunk_steps))
    progress("fetch", 0, len(chunks))
    for done, i0 in enumerate(chunks, start=1):
        i1 = min(i0 + chunk_steps, n_steps)
        part = source.fetch(slos, plan.step, float(times[i0]), float(times[i1 - 1]))
        bad[:, i0:i1] = part.bad
        total[:, i0:i1] = part.total
        for slo_id, message in part.errors.items():
            failures.setdefault(slo_id, []).append(message)
        progress("fetch", done, len(chunks))
    errors = {k: v[0] for k, v in failures.items() if len(v) == len(chunks)}
    return StepRates(step=plan.step, times=times, bad=bad, total=total, errors=errors)


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AlertInterval:
    slo_id: str
    severity: AlertSeverity
    start: float
    end: float | None
    held: Literal["low_traffic"] | None = None
    # Anomaly alerts: which signal (traffic, errors, latency).
    signal: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "slo_id": self.slo_id,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "held": self.held,
        }


@dataclass
class SLOTrace:
    """Downsampled series of one SLO for the report (max within each bucket for ratios and
    burn rates, so a short spike stays visible; the last value for the budget)."""

    times: np.ndarray
    error_ratio: np.ndarray  # over the shortest policy window
    error_ratio_window: Duration
    burn: dict[Duration, np.ndarray]  # per rule long window
    thresholds: list[tuple[str, Duration, float]]  # (severity, long window, burn factor)
    budget_remaining: np.ndarray


@dataclass
class ReplayResult:
    plan: ReplayPlan
    slos: list[SLO]
    alerts: list[AlertInterval]
    incidents: list[Incident]
    notifications: dict[str, int]
    budget_consumed: dict[str, float | None]
    # fingerprint → (slo_id, alert severity): which alerts joined which incident.
    fingerprints: dict[str, tuple[str, str]]
    traces: dict[str, SLOTrace] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def incident_alert_counts(self, incident: Incident) -> dict[str, int]:
        counts = {"page": 0, "ticket": 0, "anomaly": 0}
        for fp in dict.fromkeys(incident.fingerprints):
            known = self.fingerprints.get(fp)
            if known is not None:
                counts[known[1]] += 1
        return counts

    def summary(self) -> dict[str, object]:
        """Alerts that reached the incident engine, once per incident they joined (re-fires
        and flaps of one alert inside its incident count once); held alerts never do."""
        totals = {"page": 0, "ticket": 0, "anomaly": 0}
        for incident in self.incidents:
            for severity, n in self.incident_alert_counts(incident).items():
                totals[severity] += n
        return {
            "pages": totals["page"],
            "tickets": totals["ticket"],
            "anomalies": totals["anomaly"],
            "incidents": len(self.incidents),
            "budget_consumed": dict(self.budget_consumed),
        }

    def to_json(self) -> dict[str, object]:
        """The documented `backtest --format json` contract."""
        return {
            "start": self.plan.start,
            "end": self.plan.end,
            "alerts": [a.to_json() for a in self.alerts],
            "incidents": [
                {
                    "id": i.id,
                    "severity": i.severity.value,
                    "service": i.service,
                    "slo_ids": list(i.slo_ids),
                    "opened_at": i.opened_at,
                    "resolved_at": i.resolved_at,
                    "notifications": self.notifications.get(i.id, 0),
                }
                for i in self.incidents
            ],
            "summary": self.summary(),
        }


# ---------------------------------------------------------------------------- evaluation


@dataclass
class _Fired:
    """Every (SLO, step) where some rule fired, with what packaging an evaluation needs."""

    rows: np.ndarray  # int64[n], row in `slos`
    steps: np.ndarray  # int64[n], position in the replayed range
    bad: np.ndarray  # float64[n, W]
    total: np.ndarray  # float64[n, W]
    remaining: np.ndarray  # float64[n]
    to_exhaustion: np.ndarray  # float64[n]
    fire: np.ndarray  # bool[n, R]
    held: np.ndarray  # bool[n, R]
    p_value: np.ndarray  # float64[n, R]
    status: np.ndarray  # int8[n]
    recent_bad: np.ndarray  # float64[n]: events over the recent window (NaN = no data)
    recent_total: np.ndarray  # float64[n]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of a 1-D bool array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _downsample(values: np.ndarray, bucket: int, how: Literal["max", "last"]) -> np.ndarray:
    n = values.shape[-1]
    pad = (-n) % bucket
    if pad:
        values = np.concatenate([values, np.full((*values.shape[:-1], pad), np.nan)], axis=-1)
    shaped = values.reshape((*values.shape[:-1], -1, bucket))
    with np.errstate(all="ignore"):
        if how == "max":
            empty = np.all(np.isnan(shaped), axis=-1)
            out = np.nanmax(np.where(np.isnan(shaped), -np.inf, shaped), axis=-1)
            return np.where(empty, np.nan, out)
        # Last value with data in each bucket.
        idx = np.where(~np.isnan(shaped), np.arange(bucket), -1).max(axis=-1)
        picked = np.take_along_axis(shaped, np.maximum(idx, 0)[..., None], axis=-1)[..., 0]
        return np.where(idx >= 0, picked, np.nan)


class _Evaluated:
    """Evaluation results of all SLOs over the replayed range, kept compact."""

    def __init__(self, slos: Sequence[SLO], rates: StepRates, first: int, want_traces: bool):
        self.slos = list(slos)
        self.first = first
        self.times = rates.times[first:]
        self.windows: tuple[Duration, ...] = ()
        self.members = np.zeros((len(slos), 0), dtype=bool)
        self.rules: list[tuple | None] = [None] * len(slos)
        self.intervals: list[AlertInterval] = []
        # Per SLO: [start, stop) step ranges with status no_data or error.
        self.unknown: list[list[tuple[int, int]]] = [[] for _ in slos]
        self.traces: dict[str, SLOTrace] = {}
        self._fired: list[_Fired] = []
        self._want_traces = want_traces
        self._block: _Block | None = None
        self.error_budget = np.array([float(s.error_budget) for s in slos])
        self.recent_window: Duration | None = None
        self.member_index: list[list[int]] = []
        self.window_index: dict[Duration, int] = {}

    def add(self, rows: slice, ev: SeriesEvaluation) -> None:
        self.recent_window = ev.recent_window
        if not self.windows:
            self.windows = ev.windows
            self.members = plan_evaluation(self.slos, ev.windows).members
            self.member_index = [np.flatnonzero(row).tolist() for row in self.members]
            self.window_index = {w: j for j, w in enumerate(ev.windows)}
        part = self.slos[rows]
        for k, s in enumerate(range(rows.start, rows.stop)):
            self.rules[s] = ev.rules[k]
        fire = ev.fire
        held = ev.held
        n_rules = fire.shape[1]
        is_page = np.array(
            [
                [r < len(ev.rules[k]) and ev.rules[k][r].severity == "page" for r in range(n_rules)]
                for k in range(len(part))
            ],
            dtype=bool,
        ).reshape(len(part), n_rules)
        active = np.array(
            [[r < len(ev.rules[k]) for r in range(n_rules)] for k in range(len(part))], dtype=bool
        ).reshape(len(part), n_rules)
        fire = fire & active[:, :, None]
        held = held & fire
        firing = fire & ~held
        status = ev.status
        for k, slo in enumerate(part):
            for severity, mask in (("page", is_page[k]), ("ticket", ~is_page[k] & active[k])):
                if not mask.any():
                    continue
                on = firing[k, mask].any(axis=0)
                kept = fire[k, mask].any(axis=0) & ~on
                for a, b in _runs(on):
                    self.intervals.append(self._interval(slo.id, severity, a, b, None))
                for a, b in _runs(kept):
                    self.intervals.append(self._interval(slo.id, severity, a, b, "low_traffic"))
            unknown = np.isin(status[k], _NO_DATA_CODES)
            self.unknown[rows.start + k] = _runs(unknown)
        any_fire = fire.any(axis=1)
        ks, ts = np.nonzero(any_fire)
        if ks.size:
            self._fired.append(
                _Fired(
                    rows=ks + rows.start,
                    steps=ts,
                    bad=ev.bad[ks, :, ts],
                    total=ev.total[ks, :, ts],
                    remaining=ev.budget_remaining[ks, ts],
                    to_exhaustion=ev.time_to_exhaustion[ks, ts],
                    fire=fire[ks, :, ts],
                    held=held[ks, :, ts],
                    p_value=ev.p_value[ks, :, ts],
                    status=status[ks, ts],
                    recent_bad=_at(ev.recent_bad, ks, ts),
                    recent_total=_at(ev.recent_total, ks, ts),
                )
            )
        if self._want_traces:
            self._add_traces(part, ev)

    def merge(self, part: _Evaluated) -> None:
        """Take over what another `_Evaluated` computed for its rows."""
        self.recent_window = self.recent_window or part.recent_window
        if not self.windows and part.windows:
            self.windows = part.windows
            self.members = plan_evaluation(self.slos, part.windows).members
            self.member_index = [np.flatnonzero(row).tolist() for row in self.members]
            self.window_index = {w: j for j, w in enumerate(part.windows)}
        for s, rules in enumerate(part.rules):
            if rules is not None:
                self.rules[s] = rules
        for s, runs in enumerate(part.unknown):
            if runs:
                self.unknown[s] = runs
        self.intervals.extend(part.intervals)
        self._fired.extend(part._fired)
        self.traces.update(part.traces)

    def _interval(
        self, slo_id: str, severity: AlertSeverity, a: int, b: int, held: str | None
    ) -> AlertInterval:
        end = float(self.times[b]) if b < self.times.size else None
        return AlertInterval(slo_id, severity, float(self.times[a]), end, held)  # type: ignore[arg-type]

    def _add_traces(self, part: Sequence[SLO], ev: SeriesEvaluation) -> None:
        n = self.times.size
        bucket = max(1, math.ceil(n / REPORT_POINTS))
        times = _downsample(self.times[None], bucket, "last")[0]
        where = {w: i for i, w in enumerate(ev.windows)}
        for k, slo in enumerate(part):
            policy = policy_for(slo)
            shortest = min(policy.windows)
            long_windows = sorted({r.long_window for r in policy.rules})
            self.traces[slo.id] = SLOTrace(
                times=times,
                error_ratio=_downsample(ev.error_ratio[k, where[shortest], :], bucket, "max"),
                error_ratio_window=shortest,
                burn={
                    w: _downsample(ev.burn_rate[k, where[w], :], bucket, "max")
                    for w in long_windows
                },
                thresholds=[(r.severity, r.long_window, float(r.factor)) for r in policy.rules],
                budget_remaining=_downsample(ev.budget_remaining[k, :], bucket, "last"),
            )

    def fired(self) -> _Fired | None:
        if not self._fired:
            return None
        parts = self._fired
        joined = _Fired(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in _Fired.__dataclass_fields__
            )
        )
        order = np.argsort(joined.steps, kind="stable")
        return _Fired(*(getattr(joined, name)[order] for name in _Fired.__dataclass_fields__))

    def _lists(self, fired: _Fired, i: int) -> _Block:
        """Python lists (None for NaN) for the fired entries around `i`, converted a block
        at a time with the same vectorized functions the daemon uses for a cycle."""
        block = self._block
        if block is None or block.fired is not fired or not block.lo <= i < block.hi:
            lo, hi = i, min(i + _BLOCK, fired.steps.size)
            rows = fired.rows[lo:hi]
            bad, total = fired.bad[lo:hi], fired.total[lo:hi]
            ratio = error_ratio(bad, total)
            burn = burn_rate(ratio, self.error_budget[rows][:, None])
            block = _Block(
                fired,
                lo,
                hi,
                *(_none_for_nan(x) for x in (bad, total, ratio, burn)),
                _none_for_nan(fired.remaining[lo:hi]),
                _none_for_nan(fired.to_exhaustion[lo:hi]),
                window_values(
                    fired.recent_bad[lo:hi], fired.recent_total[lo:hi], self.error_budget[rows]
                ),
            )
            self._block = block
        return block

    def evaluation(self, fired: _Fired, i: int, now: float) -> SLOEvaluation:
        """The `SLOEvaluation` the daemon would have produced (same packaging as
        `engine.evaluation.burn.evaluate_window_events`, from the same numbers)."""
        s = int(fired.rows[i])
        slo = self.slos[s]
        block = self._lists(fired, i)
        k = i - block.lo
        bad, total, ratio, burn = block.bad[k], block.total[k], block.ratio[k], block.burn[k]
        windows = {
            self.windows[j]: WindowValue(bad[j], total[j], ratio[j], burn[j])
            for j in self.member_index[s]
        }
        signals = []
        for r, rule in enumerate(self.rules[s]):
            if not fired.fire[i, r]:
                continue
            held = bool(fired.held[i, r])
            reason = None
            if held:
                j = self.window_index[rule.long_window]
                reason = held_reason(
                    float(fired.bad[i, j]),
                    float(fired.total[i, j]),
                    rule.long_window,
                    float(fired.p_value[i, r]),
                    slo.alerting.low_traffic,
                )
            signals.append(
                AlertSignal(
                    severity=rule.severity,
                    long_window=rule.long_window,
                    short_window=rule.short_window,
                    factor=rule.factor,
                    held="low_traffic" if held else None,
                    held_reason=reason,
                )
            )
        return SLOEvaluation(
            slo=slo,
            evaluated_at=now,
            status=STATUSES[int(fired.status[i])],
            windows=windows,
            error_budget_remaining=block.remaining[k],
            time_to_exhaustion=block.to_exhaustion[k],
            alerts=tuple(signals),
            recent_window=self.recent_window,
            recent=block.recent[k],
        )


# Fired entries converted to Python lists at a time (bounded memory, vectorized cost).
_BLOCK = 4096


@dataclass
class _Block:
    fired: _Fired
    lo: int
    hi: int
    bad: list
    total: list
    ratio: list
    burn: list
    remaining: list
    to_exhaustion: list
    recent: list[WindowValue]


def _at(values: np.ndarray | None, ks: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return np.full(ks.size, np.nan) if values is None else values[ks, ts]


def _none_for_nan(values: np.ndarray) -> list:
    return np.where(np.isnan(values), None, values).tolist()


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


# ---------------------------------------------------------------------------- parallel

# Set just before forking workers: they read the history from the parent's memory
# (copy-on-write) instead of receiving gigabytes through a pipe.
_SHARED: tuple | None = None
# Groups per worker, so the progress bar moves and uneven groups even out.
_GROUPS_PER_WORKER = 4


def _evaluate_rows(
    slos: list[SLO],
    rates: StepRates,
    first: int,
    traces: bool,
    windows: tuple[Duration, ...],
    lo: int,
    hi: int,
) -> _Evaluated:
    part = _Evaluated(slos, rates, first, traces)
    sub = StepRates(
        step=rates.step,
        times=rates.times,
        bad=rates.bad[lo:hi],
        total=rates.total[lo:hi],
        errors={s.id: rates.errors[s.id] for s in slos[lo:hi] if s.id in rates.errors},
    )
    for rows, ev in iter_series(slos[lo:hi], sub, windows=windows, from_step=first):
        part.add(slice(rows.start + lo, rows.stop + lo), ev)
    return part


def _evaluate_group(bounds: tuple[int, int]) -> _Evaluated:
    assert _SHARED is not None
    part = _evaluate_rows(*_SHARED, *bounds)
    part.slos = []  # the parent has them; do not pickle them back
    return part


def _evaluate(
    slos: list[SLO],
    rates: StepRates,
    first: int,
    traces: bool,
    workers: int,
    progress: Progress,
) -> _Evaluated:
    global _SHARED
    windows = evaluation_windows([policy_for(s) for s in slos]) if slos else ()
    evaluated = _Evaluated(slos, rates, first, traces)
    n = len(slos)
    progress("evaluate", 0, n)
    if n == 0:
        return evaluated
    if workers <= 1 or n < 2 * workers or "fork" not in mp.get_all_start_methods():
        size = chunk_size(len(windows), rates.times.size)
        for lo in range(0, n, size):
            evaluated.merge(
                _evaluate_rows(slos, rates, first, traces, windows, lo, min(lo + size, n))
            )
            progress("evaluate", min(lo + size, n), n)
        return evaluated
    groups = workers * _GROUPS_PER_WORKER
    edges = np.linspace(0, n, groups + 1).round().astype(int)
    bounds = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    _SHARED = (slos, rates, first, traces, windows)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            done = 0
            for part in pool.imap_unordered(_evaluate_group, bounds):
                evaluated.merge(part)
                done += sum(1 for rules in part.rules if rules is not None)
                progress("evaluate", done, n)
    finally:
        _SHARED = None
    return evaluated


# ---------------------------------------------------------------------------- anomalies


@dataclass
class _AnomalyTrack:
    scores: SeriesScores
    active: np.ndarray  # bool[S_a, T'] at each replayed step
    sustained: np.ndarray  # bool[S_a, T']
    score: np.ndarray  # float64[S_a, T']


def _anomaly_tracks(
    slos: Sequence[SLO], rates: StepRates, times: np.ndarray
) -> list[_AnomalyTrack]:
    series = anomaly_series(slos)
    if not series:
        return []
    rows = {s.id: i for i, s in enumerate(slos)}
    out = []
    for group in score_step_rates(
        series, rows, rates.times, rates.step.seconds, rates.bad, rates.total
    ):
        idx = group.scores.state_index(times)
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        active = group.scores.active[:, safe] & valid
        sustained = group.sustained()[:, safe] & valid
        score = np.where(valid, group.scores.score[:, safe], np.nan)
        out.append(_AnomalyTrack(group, active, sustained, score))
    return out


# ---------------------------------------------------------------------------- replay


def replay(
    slos: Sequence[SLO],
    rates: StepRates,
    plan: ReplayPlan,
    incident_config: IncidentConfig | None = None,
    progress: Progress = _noop,
    traces: bool = False,
    workers: int = 1,
) -> ReplayResult:
    """Replay `plan` over `rates` (rows follow `slos`; fetched with `fetch_history`).

    `workers` > 1 evaluates groups of SLOs in forked processes (the SLOs are independent;
    the incident engine, which correlates them, always runs in this process)."""
    slos = list(slos)
    step_s = plan.step.seconds
    first = int(np.searchsorted(rates.times, plan.start - 1e-6))
    if first >= rates.times.size or abs(rates.times[first] - plan.start) > 1e-6:
        raise ValueError("the fetched history does not contain the replay start on its grid")
    times = rates.times[first:]
    n_steps = times.size

    evaluated = _evaluate(slos, rates, first, traces, workers, progress)

    tracks = _anomaly_tracks(slos, rates, times)
    fired = evaluated.fired()
    engine = IncidentEngine(incident_config or default_incident_config())
    incidents: dict[str, Incident] = {}
    notifications: dict[str, int] = {}
    fingerprints: dict[str, tuple[str, str]] = {}
    unknown_starts = _unknown_index(evaluated.unknown, n_steps)

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
        anomalies = [
            AnomalyState(
                series=track.scores.series[a],
                ready=True,
                score=_value(track.score[a, t]),
                active=True,
                sustained=bool(track.sustained[a, t]),
            )
            for track in tracks
            for a in np.flatnonzero(track.active[:, t])
        ]
        evaluations.extend(_unknown_evaluations(engine, evaluated, unknown_starts, t, now))
        outcome = observe_cycle(engine, now, evaluations, anomalies)
        decision = outcome.decision
        for alert in outcome.alerts:
            fingerprints.setdefault(alert.fingerprint, (alert.slo_id, alert.severity))
        for note in decision.notifications:
            if note.kind == "incident":
                notifications[note.dedup_key] = notifications.get(note.dedup_key, 0) + 1
        for incident in decision.incidents:
            incidents[incident.id] = incident
        if t % report_every == 0 or t == n_steps - 1:
            progress("replay", t + 1, n_steps)

    anomaly_intervals = []
    for track in tracks:
        for a, item in enumerate(track.scores.series):
            for x, y in _runs(track.active[a]):
                end = float(times[y]) if y < n_steps else None
                anomaly_intervals.append(
                    AlertInterval(item.slo.id, "anomaly", float(times[x]), end, None, item.signal)
                )
    alerts_out = sorted(
        [*evaluated.intervals, *anomaly_intervals],
        key=lambda a: (a.start, a.slo_id, a.severity, a.held or ""),
    )
    return ReplayResult(
        plan=plan,
        slos=slos,
        alerts=alerts_out,
        incidents=sorted(incidents.values(), key=lambda i: (i.opened_at, i.id)),
        notifications=notifications,
        budget_consumed=_budget_consumed(slos, rates, plan, first, step_s),
        fingerprints=fingerprints,
        traces=evaluated.traces,
        errors=dict(rates.errors),
    )


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
    evaluated: _Evaluated,
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
