"""Anomaly detection over the replayed range: `score_step_rates` over the fetched history,
the function the daemon's live tracker (`engine.anomaly.live`) calls each cycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.anomaly.live import AnomalyState
from engine.anomaly.profiles import NO_PROFILE, PROFILES, Profile
from engine.anomaly.series import SeriesScores, anomaly_series, score_step_rates
from engine.backtest.evaluated import runs
from engine.backtest.result import AlertInterval
from engine.evaluation.source import StepRates
from engine.spec.models import SLO


@dataclass
class AnomalyTrack:
    scores: SeriesScores
    active: np.ndarray  # bool[S_a, T'] at each replayed step
    sustained: np.ndarray  # bool[S_a, T']
    score: np.ndarray  # float64[S_a, T']
    profile: np.ndarray  # int8[S_a, T']: index into PROFILES, NO_PROFILE without a score


def anomaly_tracks(slos: Sequence[SLO], rates: StepRates, times: np.ndarray) -> list[AnomalyTrack]:
    series = anomaly_series(slos)
    if not series:
        return []
    rows = {s.id: i for i, s in enumerate(slos)}
    out = []
    read_from = float(times[0]) if times.size else None
    for group in score_step_rates(
        series, rows, rates.times, rates.step.seconds, rates.bad, rates.total, read_from
    ):
        idx = group.scores.state_index(times)
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        active = group.scores.active[:, safe] & valid
        sustained = group.sustained()[:, safe] & valid
        score = np.where(valid, group.scores.score[:, safe], np.nan)
        profile = np.where(valid, group.scores.profile[:, safe], NO_PROFILE)
        out.append(AnomalyTrack(group, active, sustained, score, profile))
    return out


def active_states(tracks: Sequence[AnomalyTrack], t: int) -> list[AnomalyState]:
    """The live tracker's states of the series active at replayed step `t`."""
    return [
        AnomalyState(
            series=track.scores.series[a],
            ready=True,
            score=_value(track.score[a, t]),
            active=True,
            sustained=bool(track.sustained[a, t]),
            profile=_profile(track.profile[a, t]),
        )
        for track in tracks
        for a in np.flatnonzero(track.active[:, t])
    ]


def anomaly_intervals(tracks: Sequence[AnomalyTrack], times: np.ndarray) -> list[AlertInterval]:
    """One interval per run of replayed steps where a series was active."""
    n_steps = times.size
    out = []
    for track in tracks:
        for a, item in enumerate(track.scores.series):
            for x, y in runs(track.active[a]):
                end = float(times[y]) if y < n_steps else None
                # The profile that fired it (a long anomaly may outlive a profile change).
                profile = _profile(track.profile[a, x])
                out.append(
                    AlertInterval(
                        item.slo.id, "anomaly", float(times[x]), end, None, item.signal, profile
                    )
                )
    return out


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _profile(code: int) -> Profile | None:
    return None if code == NO_PROFILE else PROFILES[int(code)]
