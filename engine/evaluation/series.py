"""Every-step evaluation over a history of per-step rates: the engine behind `backtest`.

It calls the very functions the daemon uses at one instant (window sums by prefix sums,
`error_ratio`, `burn_rate`, `error_budget_remaining`, `decide_alerts`, `status_codes`), only
over a trailing time axis, so a backtest replays exactly what the daemon would have done at
each step, given the same per-step data.

Memory: the per-window arrays are S × W × T float64. 1,000 SLOs × 8 windows × 43,200 one-
minute steps would be 2.8 GB per array, so `iter_series` yields results for chunks of SLOs
sized to a working-memory budget; `evaluate_series` is the one-chunk convenience for small
sets (a handful of SLOs, or short histories).

Windows at the start of the history reach before its first step and sum only what exists;
`window_complete[w, t]` says from which step on window w is fully inside the history.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.evaluation.budget import (
    burn_rate,
    error_budget_remaining,
    error_ratio,
    time_to_exhaustion,
)
from engine.evaluation.burn import STATUSES, EvaluationPlan, plan_evaluation, status_codes
from engine.evaluation.calendar import since_start_series
from engine.evaluation.decisions import decide_alerts
from engine.evaluation.maintenance import kept_share
from engine.evaluation.policy import BurnRateRule
from engine.evaluation.source import StepRates
from engine.evaluation.windows import normalize_step_counts, recent_window_for, rolling_window_sums
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Working memory one chunk may use; about 10 arrays of W × T float64 are alive per SLO.
DEFAULT_CHUNK_BYTES = 256 * 1024 * 1024
_ARRAYS_PER_SLO = 10


@dataclass(frozen=True)
class SeriesEvaluation:
    """Evaluation of S SLOs at each of T steps (rows follow `slo_ids`)."""

    slo_ids: tuple[str, ...]
    step: Duration
    times: np.ndarray  # float64[T], the step end times of the input
    windows: tuple[Duration, ...]
    window_complete: np.ndarray  # bool[W, T]: the window lies fully inside the history
    bad: np.ndarray  # float64[S, W, T]: bad events in each window ending at each step
    total: np.ndarray  # float64[S, W, T]
    error_ratio: np.ndarray  # float64[S, W, T]; NaN = no data
    burn_rate: np.ndarray  # float64[S, W, T]
    budget_remaining: np.ndarray  # float64[S, T]: over each SLO's rolling period
    time_to_exhaustion: np.ndarray  # float64[S, T] seconds; NaN when not applicable
    # rules[s][r] is column r of fire/held; R = the most rules any SLO has.
    rules: tuple[tuple[BurnRateRule, ...], ...]
    fire: np.ndarray  # bool[S, R, T]: both windows above the threshold
    held: np.ndarray  # bool[S, R, T]: held by the low-traffic guard (subset of fire)
    p_value: np.ndarray  # float64[S, R, T]: guard test p-value where it ran, else NaN
    status: np.ndarray  # int8[S, T]: index into STATUSES
    errors: dict[str, str] = field(default_factory=dict)
    # The freshest evidence (engine.evaluation.windows.RECENT_WINDOW rounded to whole steps):
    # bad and total events over the newest `recent_window` ending at each step, float64[S, T].
    recent_window: Duration | None = None
    recent_bad: np.ndarray | None = None
    recent_total: np.ndarray | None = None

    @property
    def firing(self) -> np.ndarray:
        """bool[S, R, T]: alerts that would have notified (fired and not held)."""
        return self.fire & ~self.held

    def status_at(self, s: int, t: int) -> str:
        return STATUSES[int(self.status[s, t])]


def window_steps(windows: Sequence[Duration], step: Duration) -> list[int]:
    """Each window as a whole number of steps; a window that is not a multiple is an error."""
    counts = []
    for window in windows:
        if window.ms % step.ms:
            raise ValueError(
                f"window {window} is not a whole number of {step} steps — use a step that "
                "divides every window (1m divides the default policy's windows)"
            )
        counts.append(window.ms // step.ms)
    return counts


def chunk_size(n_windows: int, n_steps: int, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """How many SLOs to evaluate together within `budget_bytes` of working memory."""
    per_slo = _ARRAYS_PER_SLO * max(n_windows, 1) * max(n_steps, 1) * 8
    return max(1, budget_bytes // per_slo)


def iter_series(
    slos: Sequence[SLO],
    rates: StepRates,
    *,
    chunk: int | None = None,
    windows: Sequence[Duration] | None = None,
    from_step: int = 0,
) -> Iterator[tuple[slice, SeriesEvaluation]]:
    """Evaluate `rates` (rows follow `slos`) at every step, yielding (rows, result) per chunk.

    With `from_step`, results start at that step (`times` = rates.times[from_step:]); the
    steps before it are only read by the windows — a backtest's warm-up history, which
    would otherwise cost as much to evaluate as the replay itself."""
    if rates.bad.shape[0] != len(slos):
        raise ValueError(f"rates have {rates.bad.shape[0]} rows for {len(slos)} SLOs")
    plan = plan_evaluation(slos, windows)
    steps = window_steps(plan.windows, rates.step)
    n_steps = rates.times.shape[0]
    if not 0 <= from_step <= n_steps:
        raise ValueError(f"from_step {from_step} is outside the {n_steps} steps")
    size = chunk or chunk_size(len(plan.windows), n_steps - from_step)
    complete = np.arange(from_step, n_steps)[None, :] >= np.asarray(steps)[:, None] - 1
    recent = recent_window_for(rates.step)
    # The recent window rides along as one more window of the same prefix-sum pass.
    sum_steps = [*steps, recent.ms // rates.step.ms]
    for begin in range(0, len(slos), size):
        rows = slice(begin, min(begin + size, len(slos)))
        yield (
            rows,
            _evaluate_chunk(
                slos[rows],
                rates,
                plan,
                rows,
                sum_steps=sum_steps,
                from_step=from_step,
                complete=complete,
                recent=recent,
            ),
        )


def _evaluate_chunk(
    part: Sequence[SLO],
    rates: StepRates,
    plan: EvaluationPlan,
    rows: slice,
    *,
    sum_steps: list[int],
    from_step: int,
    complete: np.ndarray,
    recent: Duration,
) -> SeriesEvaluation:
    """One chunk of SLOs (`part` = the `rows` of `rates` and `plan`) at every step from
    `from_step` on; `sum_steps` are the policy windows then the recent window, in steps."""
    sub = plan.matrix.take(rows)
    step_seconds = rates.step.seconds
    failed = np.array([s.id in rates.errors for s in part], dtype=bool)
    bad_steps, total_steps = normalize_step_counts(
        rates.bad[rows] * step_seconds, rates.total[rows] * step_seconds
    )
    bad_steps[failed] = np.nan
    total_steps[failed] = np.nan
    kept = kept_share(part, rates.times, step_seconds)
    if kept is not None:  # maintenance windows: their events count for nothing
        bad_steps, total_steps = bad_steps * kept, total_steps * kept
    bad_sums = rolling_window_sums(bad_steps, sum_steps, from_step)[0]
    total_sums, covered = rolling_window_sums(total_steps, sum_steps, from_step)
    recent_bad, recent_total = bad_sums[-1], total_sums[-1]
    bad = bad_sums[:-1].transpose(1, 0, 2)
    total = total_sums[:-1].transpose(1, 0, 2)
    # Calendar SLOs: the budget at each step is read since that step's period began.
    since_start_series(
        part, rates.times, (bad_steps, total_steps), from_step, sub.period_index, (bad, total)
    )
    covered = covered[:-1]
    ratio = error_ratio(bad, total)
    budget = plan.error_budget[rows]
    burn = burn_rate(ratio, budget[:, None, None])
    index = np.arange(len(part))
    remaining = error_budget_remaining(
        bad[index, sub.period_index], total[index, sub.period_index], budget[:, None]
    )
    to_exhaustion = time_to_exhaustion(
        remaining, burn[:, plan.exhaustion_index], plan.period_seconds[rows, None]
    )
    decision = decide_alerts(sub, bad, total)
    firing = decision.firing & sub.active[:, :, None]
    members = plan.members[rows]
    has_data = np.any((covered.transpose(1, 0, 2) > 0) & members[:, :, None], axis=1)
    status = status_codes(
        failed[:, None],
        has_data,
        np.any(firing & sub.page[:, :, None], axis=1),
        remaining <= 0.0,
        np.any(firing & ~sub.page[:, :, None], axis=1),
    )
    return SeriesEvaluation(
        slo_ids=tuple(s.id for s in part),
        step=rates.step,
        times=rates.times[from_step:],
        windows=plan.windows,
        window_complete=complete,
        bad=bad,
        total=total,
        error_ratio=ratio,
        burn_rate=burn,
        budget_remaining=remaining,
        time_to_exhaustion=to_exhaustion,
        rules=sub.rules,
        fire=decision.fire,
        held=decision.held,
        p_value=decision.p_value,
        status=status,
        errors={s.id: rates.errors[s.id] for s in part if s.id in rates.errors},
        recent_window=recent,
        recent_bad=recent_bad,
        recent_total=recent_total,
    )


def evaluate_series(
    slos: Sequence[SLO], rates: StepRates, *, windows: Sequence[Duration] | None = None
) -> SeriesEvaluation:
    """All SLOs in one chunk. Mind the memory for large sets: use `iter_series` there."""
    if not slos:
        raise ValueError("evaluate_series needs at least one SLO")
    ((_, result),) = iter_series(slos, rates, chunk=max(len(slos), 1), windows=windows)
    return result
