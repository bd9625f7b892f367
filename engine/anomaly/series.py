"""From SLOs to anomaly series, and their batched scoring (shared by the daemon's live
tracker and backtest). The math itself is in `engine.anomaly.scoring`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.anomaly.scoring import (
    DIRECTION,
    AnomalyParams,
    AnomalyScores,
    Direction,
    Signal,
    detect,
    run_lengths,
    scale_floor,
    signal_values,
    to_slots,
)
from engine.evaluation.windows import normalize_step_counts
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import total_rate


@dataclass(frozen=True)
class AnomalySeries:
    """One signal watched for anomalies, derived from one SLO's SLI.

    Alerts for it carry the SLO's id (and the signal as a label), so they land on the
    service's incident like any other alert of that SLO."""

    slo: SLO
    signal: Signal

    @property
    def key(self) -> str:
        return f"{self.slo.id}:{self.signal}"

    @property
    def direction(self) -> Direction:
        return DIRECTION[self.signal]

    @property
    def floor(self) -> float:
        return scale_floor(self.signal, float(self.slo.error_budget))

    @property
    def params(self) -> AnomalyParams:
        return params_for(self.slo)

    @property
    def history_slots(self) -> int:
        """Slots of history, the newest included, that the newest slot's whole state (score,
        `active`, `sustained`) depends on: what the daemon's live tracker keeps, and what
        backtest fetches before its first step."""
        p = self.params
        # Same count as SeriesScores.sustained: active for `sustained` = one more active slot.
        sustained = math.ceil(self.slo.anomaly.sustained.seconds / p.resolution) + 1
        # The oldest of those active slots needs `min_slots − 1` breaching slots before it,
        # and the oldest of those its lookback.
        return p.lookback_slots + p.min_slots - 1 + sustained


def params_for(slo: SLO) -> AnomalyParams:
    spec = slo.anomaly
    return AnomalyParams(
        sensitivity=spec.sensitivity,
        min_duration=spec.min_duration.seconds,
        history_weeks=spec.history.ms // Duration.parse("1w").ms,
    )


def anomaly_series(slos: Sequence[SLO]) -> list[AnomalySeries]:
    """The signals to watch for SLOs of services with anomaly detection enabled.

    traffic: the total event rate of events and latency SLIs — once per distinct traffic
    query of a service, since two SLOs over the same requests share one traffic signal;
    errors: the error ratio of events SLIs; latency: the slow share of latency SLIs.
    Availability SLIs (0/1 probes) have no traffic to speak of and are left to their SLO.
    """
    out: list[AnomalySeries] = []
    seen_traffic: set[tuple[str, str]] = set()
    for slo in slos:
        spec = slo.anomaly
        if not spec.enabled:
            continue
        kind = slo.sli.kind
        if "traffic" in spec.signals and kind in ("events", "latency"):
            query = total_rate(slo.sli, _KEY_WINDOW)
            if (slo.service, query) not in seen_traffic:
                seen_traffic.add((slo.service, query))
                out.append(AnomalySeries(slo, "traffic"))
        if "errors" in spec.signals and kind == "events":
            out.append(AnomalySeries(slo, "errors"))
        if "latency" in spec.signals and kind == "latency":
            out.append(AnomalySeries(slo, "latency"))
    return out


# Any fixed window: only used to compare traffic queries for equality.
_KEY_WINDOW = Duration.parse("5m")


@dataclass(frozen=True)
class SeriesScores:
    """Scores for a group of series that share parameters; row i belongs to `series[i]`."""

    series: tuple[AnomalySeries, ...]
    params: AnomalyParams
    scores: AnomalyScores

    def sustained(self) -> np.ndarray:
        """Per slot: whether the anomaly has been active at least the service's `sustained`
        time (counted from when it fired)."""
        active = self.scores.active
        res = self.params.resolution
        # The anomaly fired at the end of its first active slot; `sustained` later is the
        # end of the slot that many slot lengths on, i.e. one more active slot.
        need = np.array(
            [math.ceil(s.slo.anomaly.sustained.seconds / res) + 1 for s in self.series]
        )[:, None]
        return run_lengths(active) >= need

    def band(self, row: int, column: int) -> tuple[float, float, float] | None:
        """(observed, expected, threshold) of one slot in the signal's own units — requests
        per second for traffic, a ratio for errors and latency — where the threshold is the
        value past which the slot breaches (below it for traffic, above it for ratios): what
        a dashboard draws as the expected band. None without a score."""
        scores = self.scores
        if column < 0 or math.isnan(float(scores.score[row, column])):
            return None
        y, e, scale = (
            float(a[row, column]) for a in (scores.observed, scores.expected, scores.scale)
        )
        reach = self.params.sensitivity * scale
        if self.series[row].signal == "traffic":
            # The signal is log(rate + one event per slot): back to requests per second.
            offset = 1.0 / self.params.resolution
            return (
                max(math.exp(y) - offset, 0.0),
                max(math.exp(e) - offset, 0.0),
                max(math.exp(e - reach) - offset, 0.0),
            )
        return y, e, e + reach


def score_step_rates(
    series: Sequence[AnomalySeries],
    rows: dict[str, int],
    times: np.ndarray,
    step: float,
    bad: np.ndarray,
    total: np.ndarray,
    read_from: float | None = None,
) -> list[SeriesScores]:
    """Batch-score anomaly series from per-step rates (the `StepRates` arrays: `times` are the
    END times of step intervals, `rows` maps an SLO id to its row in `bad`/`total`).

    `read_from`: the earliest evaluation time whose state the caller reads. Slots that state
    does not depend on are then scored by the weekly profile only (see `detect`); the states
    read are the same either way."""
    groups: dict[AnomalyParams, list[AnomalySeries]] = {}
    for item in series:
        groups.setdefault(item.params, []).append(item)
    times = np.asarray(times, dtype=np.float64)
    out = []
    for params, members in groups.items():
        index = [rows[m.slo.id] for m in members]
        # A step interval (t − step, t] belongs to the slot its start falls in.
        interval_start = float(times[0] - step) if times.size else 0.0
        step_bad, step_total = normalize_step_counts(bad[index], total[index])
        first_slot, bad_slots = to_slots(interval_start, step, step_bad, params.resolution)
        _, total_slots = to_slots(interval_start, step, step_total, params.resolution)
        is_traffic = np.array([m.signal == "traffic" for m in members])[:, None]
        y = np.where(
            is_traffic,
            signal_values("traffic", bad_slots, total_slots, params.resolution),
            signal_values("errors", bad_slots, total_slots, params.resolution),
        )
        score_from = 0
        if read_from is not None:
            # The state at `read_from` is that of the slot completed by then, and its
            # `active`/`sustained` flags read the breaches of the slots before it.
            reads = max(m.history_slots for m in members) - params.lookback_slots
            score_from = int(read_from // params.resolution) - first_slot - reads
        scores = detect(
            y,
            first_slot,
            [m.direction for m in members],
            [m.floor for m in members],
            params,
            score_from,
            counts=[m.signal == "traffic" for m in members],
        )
        out.append(SeriesScores(tuple(members), params, scores))
    return out
