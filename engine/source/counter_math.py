"""Prometheus 2.x `increase()` / `rate()` of raw counter samples, computed client-side.

Remote read returns raw samples; the per-step rates the evaluation wants are then computed
here with the same semantics as Prometheus 2.42's `extrapolatedRate`, validated against
Prometheus' own `increase()` on counters with resets, on and off the step grid, to 1e-9
relative (bench/bench_remote_read.py, tests/test_source_remote_read.py):

- the range [t − range, t] includes both ends (Prometheus 3 made it left-open);
- fewer than two samples in the range gives nothing (NaN here);
- a drop in value is a counter reset: the value before the drop is added back;
- the increase between the first and last sample is extrapolated towards the range edges,
  all the way when the gap is under 1.1 × the average sample interval, else by half an
  interval, and never below the counter's zero.
"""

from __future__ import annotations

import numpy as np


def extrapolated_increase(
    t_ms: np.ndarray, v: np.ndarray, eval_ms: np.ndarray, range_ms: int
) -> np.ndarray:
    """Prometheus 2.x `increase(x[range])` of one counter series at each of `eval_ms`.

    Vectorized over evaluation times. The range is [t − range, t], both ends included (2.x);
    fewer than two samples gives NaN (Prometheus returns nothing). Resets add the value
    before the drop; extrapolation towards the range edges follows `extrapolatedRate`.
    """
    drops = np.zeros(v.size)
    if v.size > 1:
        reset = v[1:] < v[:-1]
        drops[1:] = np.where(reset, v[:-1], 0.0)
    corrected = v + np.cumsum(drops)  # monotone: differences include the reset corrections
    first = np.searchsorted(t_ms, eval_ms - range_ms, side="left")
    last = np.searchsorted(t_ms, eval_ms, side="right") - 1
    ok = (last - first) >= 1
    a, b = np.where(ok, first, 0), np.where(ok, last, 0)
    result = corrected[b] - corrected[a]
    sampled = (t_ms[b] - t_ms[a]) / 1000.0
    to_start = (t_ms[a] - (eval_ms - range_ms)) / 1000.0
    to_end = (eval_ms - t_ms[b]) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        average = sampled / (b - a)
        # A counter is not extrapolated below zero.
        to_zero = np.where(result > 0, sampled * (v[a] / result), np.inf)
        to_start = np.where((result > 0) & (v[a] >= 0), np.minimum(to_start, to_zero), to_start)
        threshold = average * 1.1
        interval = sampled + np.where(to_start < threshold, to_start, average / 2)
        interval += np.where(to_end < threshold, to_end, average / 2)
        out = result * (interval / sampled)
    return np.where(ok, out, np.nan)
