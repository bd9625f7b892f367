"""What the HTML report plots per SLO: its series over the replayed range, downsampled."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.evaluation.policy import policy_for
from engine.evaluation.series import SeriesEvaluation
from engine.spec.durations import Duration
from engine.spec.models import SLO

# Points per plotted series in the HTML report.
REPORT_POINTS = 1_500


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


def downsample(values: np.ndarray, bucket: int, how: Literal["max", "last"]) -> np.ndarray:
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


def slo_traces(
    part: Sequence[SLO], ev: SeriesEvaluation, replayed: np.ndarray
) -> dict[str, SLOTrace]:
    """The trace of each SLO of `part` (the rows of `ev`) over the `replayed` step times."""
    n = replayed.size
    bucket = max(1, math.ceil(n / REPORT_POINTS))
    times = downsample(replayed[None], bucket, "last")[0]
    where = {w: i for i, w in enumerate(ev.windows)}
    traces = {}
    for k, slo in enumerate(part):
        policy = policy_for(slo)
        shortest = min(policy.windows)
        long_windows = sorted({r.long_window for r in policy.rules})
        traces[slo.id] = SLOTrace(
            times=times,
            error_ratio=downsample(ev.error_ratio[k, where[shortest], :], bucket, "max"),
            error_ratio_window=shortest,
            burn={w: downsample(ev.burn_rate[k, where[w], :], bucket, "max") for w in long_windows},
            thresholds=[(r.severity, r.long_window, float(r.factor)) for r in policy.rules],
            budget_remaining=downsample(ev.budget_remaining[k, :], bucket, "last"),
        )
    return traces
