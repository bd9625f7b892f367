"""Window coverage: how much of each window the SLI's total series actually covered.

Two days of data under a 30d window read like 30 days unless the result says otherwise; a
budget computed over 7 % of its period is an estimate from a short sample, not the period's
truth. So every window result carries its coverage, defined as

    coverage = seconds of the window (at − W, at] covered by evaluation steps in which the
               SLI's *total* series has data  ÷  W

where a step "has data" exactly when the evaluation reads one from it: the source returned a
total for it (for Prometheus, `rate(total[step])` gave a sample, i.e. at least two scrapes
fell in the step). A step with zero traffic but a series present counts as covered: it is a
measurement of zero, not a missing one. The steps are those the window is composed of — the
daemon's cache tiers (1m for the newest hours, 5m, then 1h; the oldest coarse step
prorated), so the oldest part of a long window is judged at that coarser step. The one-shot
path, which reads whole windows, samples the same fine steps at up to 120 instants per window
(engine.evaluation.instant.one_shot_covered_seconds).

Coverage is NaN (`null` in results) where the window has no data at all or its query
failed: "not judged", never 0, the same rule as every other number.

A window is *partial* when less than `PARTIAL_BELOW` (99 %) of it had data, a budget when its
period window is (the threshold lives in engine.evaluation.result, the numpy-free contract).
Coverage describes the result; it decides nothing: alerting reads the counts as it always
did (a window with a gap is the sum of what it holds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.spec.durations import Duration


def window_coverage(
    covered_seconds: np.ndarray, windows: Sequence[Duration], total: np.ndarray
) -> np.ndarray:
    """float64[S, W]: covered seconds ÷ window length, clipped to [0, 1], NaN where `total`
    (float64[S, W], the window's event count) is NaN — no data or a failed query."""
    covered = np.asarray(covered_seconds, dtype=np.float64)
    lengths = np.array([w.seconds for w in windows], dtype=np.float64)
    if covered.shape[-1] != lengths.size:
        raise ValueError(f"{covered.shape[-1]} coverage columns for {lengths.size} windows")
    fraction = np.clip(covered / lengths, 0.0, 1.0)
    return np.where(np.isnan(np.asarray(total, dtype=np.float64)), np.nan, fraction)
