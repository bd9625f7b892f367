"""One-shot evaluation from whole-window counts: no cache to fill, one instant per window.

The daemon keeps per-step counts at several resolutions because it evaluates every minute
and must not re-read 30 days each time. A one-shot run (`slo-engine evaluate` in a CI job)
evaluates once and exits, so filling that cache — 30 days of fine steps, thrown away a
second later — is most of its cost. Here each window is asked for as a whole instead: a
source that can count events over a window ending at an instant (`WindowCountSource`:
Prometheus answers `sum by (label) (rate(selector[W]))` at `at`, times W) gives the
`WindowEvents` the evaluation reads, and `evaluate_window_events` does the rest exactly as
for the cache. The two paths read the same data through different estimators (one
extrapolated range per window against a sum of per-step ones) and agree within 1 %
(tests/test_evaluate_instant.py).

Same missing-data rules as the cache (engine.evaluation.windows): a window without a total
is no data, a missing *bad* count with a known total is 0 bad events; a source reports a
derived SLI (total − good) whose good series is missing as no data or an error, never 0.

The evaluation instant is `at` floored to the finest step the scrape interval allows
(engine.evaluation.resolution), so both paths report the same `evaluated_at` and the
recent window (the newest step) is the same interval.

Window coverage (engine.evaluation.coverage) is the one thing whole windows cannot show:
`evaluate_once` takes a `WindowCoverage` measure (engine.source.window_coverage: a subquery
per window sampling its fine steps) and turns its shares into the covered seconds the cache
path reports. The measure needs nothing from the counts (the windows and the instant are
known before), so it runs beside them on a second thread: Prometheus answers both sets of
queries at once instead of one after the other, and the SLOs the counts find without data
are masked afterwards.

Pure: the source is a parameter; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from engine.evaluation.burn import evaluate_window_events
from engine.evaluation.cache import WindowEvents
from engine.evaluation.calendar import pin_all
from engine.evaluation.composite import composite_covered, with_composites
from engine.evaluation.decisions import evaluation_windows
from engine.evaluation.policy import policy_for
from engine.evaluation.resolution import DEFAULT_SCRAPE_INTERVAL, Resolution, resolution_for
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource, SourceUnavailable
from engine.evaluation.windows import normalize_step_counts, recent_window_for
from engine.spec.durations import Duration
from engine.spec.models import SLO


@dataclass(frozen=True)
class WindowCounts:
    """Bad and total events over each window ending at `at`, for S SLOs × W windows.

    Rows follow the `slos` argument, columns the `windows` argument. NaN = no data; a NaN
    bad with a known total means "no bad series" (counted as 0 by the evaluation). Rows of
    SLOs in `errors` failed and are NaN.
    """

    at: float
    windows: tuple[Duration, ...]
    bad: np.ndarray  # float64[S, W]
    total: np.ndarray  # float64[S, W]
    errors: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class WindowCountSource(Protocol):
    def window_counts(
        self, slos: Sequence[SLO], windows: Sequence[Duration], at: float
    ) -> WindowCounts:
        """Events in (at − W, at] for every SLO and window W; raises `SourceUnavailable`
        when the backend cannot be reached at all (a failed query is an `errors` entry)."""
        ...


def counts_windows(slos: Sequence[SLO]) -> tuple[Duration, ...]:
    """Every window the evaluation of these SLOs reads (policies, periods, 1h)."""
    return evaluation_windows([policy_for(s) for s in slos])


def instant_window_events(
    slos: Sequence[SLO], source: WindowCountSource, at: float, fine_step: Duration
) -> WindowEvents:
    """`WindowEvents` at `at` (already on the `fine_step` grid) from one `window_counts`
    call: the evaluation windows plus the recent window (the newest fine step)."""
    windows = counts_windows(slos)
    recent = recent_window_for(fine_step)
    asked = windows if recent in windows else (*windows, recent)
    counts = source.window_counts(slos, asked, at)
    if counts.bad.shape != (len(slos), len(asked)) or counts.total.shape != counts.bad.shape:
        raise ValueError(
            f"source returned counts of shape {counts.bad.shape} for {len(slos)} SLOs × "
            f"{len(asked)} windows — rows must follow `slos`, columns `windows`"
        )
    bad, total = normalize_step_counts(counts.bad, counts.total)
    r = asked.index(recent)
    return WindowEvents(
        at=float(at),
        windows=windows,
        bad=bad[:, : len(windows)],
        total=total[:, : len(windows)],
        errors=dict(counts.errors),
        slo_ids=tuple(s.id for s in slos),
        recent_window=recent,
        recent_bad=bad[:, r].copy(),
        recent_total=total[:, r].copy(),
    )


def evaluation_instant(at: float, fine_step: Duration) -> float:
    """`at` floored to the fine step: the instant the cache path would evaluate at."""
    step = fine_step.seconds
    return float(math.floor(at / step) * step)


@dataclass(frozen=True)
class OneShot:
    """What `evaluate_once` found: the results, and the window sums behind them (None when
    the source could not be reached at all)."""

    resolution: Resolution
    evaluations: list[SLOEvaluation]
    events: WindowEvents | None


class WindowCoverage(Protocol):
    """Measures coverage where whole-window counts cannot (engine.source.window_coverage):
    float64[S, W], the share of each window's instants spaced `samples[w]` apart at which
    the SLO's total had data over the `fine` step before it; NaN = could not be asked."""

    def __call__(
        self,
        slos: Sequence[SLO],
        windows: Sequence[Duration],
        samples: Sequence[Duration],
        fine: Duration,
        at: float,
    ) -> np.ndarray: ...


# At most this many sampled instants per window on the one-shot path: a resolution of
# 0.83 % of the window, finer than the 1 % the partial label (coverage < 99 %) needs, at a
# Prometheus cost that does not grow with the window's length (a full window reads 1.0
# whatever the sampling).
COVERAGE_SAMPLES = 120


def coverage_samples(windows: Sequence[Duration], fine: Duration) -> tuple[Duration, ...]:
    """How far apart the one-shot path samples each window's coverage: the smallest
    multiple of the fine step that divides the window into at most `COVERAGE_SAMPLES`
    instants (1m for windows up to 2h at a 1m fine step; 12m for 1d, 6h for 30d).
    Instants on the fine grid: each sample is exactly one of the daemon's fine steps."""
    steps = []
    for window in windows:
        count = window.ms // fine.ms
        k = next(
            (k for k in range(-(-count // COVERAGE_SAMPLES), count + 1) if count % k == 0),
            count,
        )
        steps.append(Duration(k * fine.ms))
    return tuple(steps)


def evaluate_once(
    slos: Sequence[SLO],
    source: WindowCountSource,
    at: float,
    *,
    scrape_interval: Duration = DEFAULT_SCRAPE_INTERVAL,
    coverage: WindowCoverage | None = None,
) -> OneShot:
    """Evaluate every SLO once at `at` (floored to the finest step) from window counts.

    With `coverage`, every window's coverage is measured too (`one_shot_covered_seconds`);
    without, it is None (not judged).

    Raises `ResolutionError` when no step fits the SLOs' windows at this scrape interval
    (as `Evaluator` does). A source unreachable for every SLO makes every SLO an error with
    the message — never "ok"."""
    resolution = resolution_for(slos, scrape_interval)
    instant = evaluation_instant(at, resolution.fine_step)
    slos = pin_all(slos, instant, resolution.fine_step)  # calendar budgets since the period began
    source = with_composites(source, slos)  # composites from components' counts
    with ThreadPoolExecutor(max_workers=1) as beside:
        shares = None
        if coverage is not None:
            shares = beside.submit(
                measure_coverage, slos, counts_windows(slos), coverage, resolution, instant
            )
        try:
            events = instant_window_events(slos, source, instant, resolution.fine_step)
        except SourceUnavailable as exc:
            message = f"source unavailable: {exc}"
            failed = [
                SLOEvaluation(slo=slo, evaluated_at=instant, status="error", error=message)
                for slo in slos
            ]
            return OneShot(resolution, failed, None)
        if shares is not None:
            covered = one_shot_covered_seconds(slos, events, shares, resolution)
            events = replace(events, covered_seconds=covered)
    return OneShot(resolution, evaluate_window_events(slos, events), events)


def measure_coverage(
    slos: Sequence[SLO],
    windows: Sequence[Duration],
    coverage: WindowCoverage,
    resolution: Resolution,
    at: float,
) -> np.ndarray:
    """float64[S, W]: the share of each window with data (`coverage`), NaN for SLOs that
    have no query of their own (composites: `composite_covered` derives theirs)."""
    share = np.full((len(slos), len(windows)), np.nan)
    asked = [i for i, slo in enumerate(slos) if slo.sli.composite is None]
    if asked:
        samples = coverage_samples(windows, resolution.fine_step)
        found = coverage([slos[i] for i in asked], windows, samples, resolution.fine_step, at)
        share[asked] = found
    return share


def one_shot_covered_seconds(
    slos: Sequence[SLO],
    events: WindowEvents,
    shares: Future[np.ndarray],
    resolution: Resolution,
) -> np.ndarray:
    """float64[S, W]: seconds of each window covered by data, for `WindowEvents`, from the
    `measure_coverage` running beside the counts.

    The daemon counts every step of its cache; here each window is sampled at up to
    `COVERAGE_SAMPLES` instants (`coverage_samples`), each one fine step — the daemon's
    count where that covers every step (windows up to 2h at a 1m step), within one
    sampling interval beyond. SLOs without data in any window and failed SLOs stay not
    judged, whatever was measured for them.
    """
    lengths = np.array([w.seconds for w in events.windows], dtype=np.float64)
    covered = shares.result() * lengths
    covered[np.isnan(events.total).all(axis=1)] = np.nan
    # Sampling can miss data shorter than its interval (a series 30 minutes old under a
    # 7d window sampled every 84m); the window counts saw it, so it had one step at least.
    has_data = ~np.isnan(events.total) & ~np.isnan(covered)
    covered[has_data] = np.maximum(covered[has_data], resolution.fine_step.seconds)
    return composite_covered(slos, covered, events.total)


def sparse_fine_steps_once(
    slos: Sequence[SLO],
    events: WindowEvents,
    source: EventSource,
    resolution: Resolution,
    threshold: float,
) -> dict[str, float]:
    """`Evaluator.sparse_fine_steps` for a one-shot run: SLO id → share of fine steps with
    data, for SLOs whose fine steps are mostly empty while coarser steps have data — the
    scrape interval is longer than half the fine step, so the daemon's short windows would
    read as no data.

    Whole windows do not show it (a 5m range holds five 60 s scrapes), the newest fine step
    does: only SLOs whose recent window is empty while their 1h window has data are checked,
    with a range over the last hour at the fine step and at the next coarser step (two
    requests, and none at all on healthy data).
    """
    if len(resolution.tiers) < 2 or events.recent_total is None:
        return {}
    hour = events.windows.index(Duration.parse("1h"))
    suspect = np.flatnonzero(np.isnan(events.recent_total) & ~np.isnan(events.total[:, hour]))
    # Composites read their components (checked themselves), never the backend.
    suspect = [
        int(i) for i in suspect if slos[i].id not in events.errors and not slos[i].sli.composite
    ]
    if not suspect:
        return {}
    asked = [slos[i] for i in suspect]
    fine, coarse = resolution.tiers[0].step, resolution.tiers[1].step
    fine_s, coarse_s = fine.ms // 1000, coarse.ms // 1000  # whole seconds (resolution)
    end = int(events.at) // coarse_s * coarse_s
    start = end - 3600 + coarse_s
    try:
        coarse_rates = source.fetch(asked, coarse, start, end)
        fine_rates = source.fetch(asked, fine, start - coarse_s + fine_s, end)
    except SourceUnavailable:
        return {}
    ratio = coarse_s // fine_s
    coarse_present = ~np.isnan(coarse_rates.total)  # [S, C]
    fine_present = ~np.isnan(fine_rates.total).reshape(len(asked), -1, ratio)  # [S, C, ratio]
    counted = (fine_present & coarse_present[:, :, None]).sum(axis=(1, 2))
    with_data = coarse_present.sum(axis=1)
    found = {}
    for row, slo in enumerate(asked):
        if with_data[row] >= 3:  # too little to judge otherwise (as the cache's check)
            coverage = float(counted[row] / (with_data[row] * ratio))
            if coverage < threshold:
                found[slo.id] = coverage
    return found
