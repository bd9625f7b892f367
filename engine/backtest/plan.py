"""What a backtest replays, and the history it reads: the step grid, the warm-up, the fetch.

    plan = make_plan(slos, start, end, step, warmup)      # the replayed range on the grid
    rates = fetch_history(source, slos, plan)              # adapter: bulk, chunked

Warm-up: windows reaching before `start` read history fetched before it. By default the
warm-up is the longest window any SLO evaluates (its period, usually 30d) so budgets and the
"budget exhausted" severity rule are exact from the first step, or — when a service enables
anomaly detection and it is longer — the history the anomaly state at the first step depends
on (`anomaly_warmup`: the live tracker's window, 35 days 1h35m by default).
A shorter `--warmup` (at least the longest alert window, 3d by default) is faster; budgets
then only count events since the warm-up began.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.anomaly.series import AnomalySeries, anomaly_series
from engine.evaluation.composite import with_composites
from engine.evaluation.decisions import evaluation_windows
from engine.evaluation.policy import policy_for
from engine.evaluation.source import EventSource, StepRates
from engine.evaluation.timeslices import with_timeslices
from engine.spec.durations import Duration
from engine.spec.models import SLO

# progress(phase, done, total): phases "fetch", "evaluate", "replay".
Progress = Callable[[str, int, int], None]

# Steps per source call while fetching: a Prometheus range query returns at most 11,000
# points per series, and a chunk per call lets the progress bar move.
FETCH_CHUNK_STEPS = 10_000


def no_progress(phase: str, done: int, total: int) -> None:
    return None


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
    progress: Progress = no_progress,
    chunk_steps: int = FETCH_CHUNK_STEPS,
) -> StepRates:
    """All per-step rates from `plan.fetch_start` to `plan.end`, fetched in time chunks.

    An SLO whose query failed in every chunk keeps its error (and is replayed as `error`); one
    that failed in some chunks only has no data there — missing, never zero."""
    # Composites from components' events; time-slice SLOs in slices (as the daemon).
    source = with_composites(with_timeslices(source), slos)
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
