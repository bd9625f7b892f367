"""Anomaly detection per profile: false anomalies in normal weeks, and 90 % drops caught.

    python bench/bench_anomaly_profiles.py [--seeds 8]

The calibration behind engine/anomaly/profiles.py and docs/anomaly.md, on plain arrays (no
Prometheus): noisy seasonal traffic as tests/corpus/counters.py renders it (Poisson counts,
a 10 % level wander with a one-hour correlation time, daily and weekly waves), at 30, 3 and
0.3 requests per second, five weeks per draw, scored with the recent profile only, up to the
daily one, and all three (the default).

- **false alarms**: anomalies per series and week (those less than 15 min — the incident
  engine's default `resolve_after` — apart counted once), on the smooth weekly wave of the
  scenario generator and with abrupt weekends (Saturday and Sunday at 55 % from midnight);
- **drops caught**: traffic falls to 10 % for 45 min every 5 h 28 min of the five weeks
  (so at every time of day), one drop per copy of the series; caught = an anomaly fires
  during the drop; with the delay from the drop's start.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from corpus.counters import Job, increments  # noqa: E402

from engine.anomaly.scoring import AnomalyParams, detect, intervals, signal_values  # noqa: E402

RES = 300
DAY = 86_400
WEEK = 7 * DAY
WEEKS = 5
MONDAY = 1_704_067_200
RATES = (30.0, 3.0, 0.3)
PROFILE_SETS = {"recent only": ("recent",), "up to daily": ("recent", "daily"), "all": None}
RESOLVE_AFTER = 15 * 60


def traffic(job: Job, weekends: bool, drop_at: float | None = None) -> np.ndarray:
    n = WEEKS * WEEK // RES
    offsets = RES * np.arange(n + 1, dtype=np.float64)
    requests, _ = increments(job, offsets)
    rate = requests[1:] / RES
    if weekends:
        rate = rate * np.where((offsets[1:] // DAY) % 7 >= 5, 0.55, 1.0)
    if drop_at is not None:
        rate[int(drop_at // RES) : int((drop_at + 45 * 60) // RES)] *= 0.1
    return signal_values("traffic", np.zeros_like(rate), rate, RES)


def _params(profiles: tuple[str, ...] | None) -> AnomalyParams:
    return AnomalyParams() if profiles is None else AnomalyParams(profiles=profiles)  # type: ignore[arg-type]


def _score(y: np.ndarray, params: AnomalyParams) -> Any:
    rows = y.shape[0]
    return detect(y, MONDAY // RES, ["low"] * rows, [0.05] * rows, params, counts=[True] * rows)


def false_alarms(seeds: int, weekends: bool, params: AnomalyParams) -> dict[str, float]:
    counts = []
    for seed in range(seeds):
        y = np.vstack(
            [traffic(Job("x", rps=r, seed=100 * seed + k), weekends) for k, r in enumerate(RATES)]
        )
        per = np.zeros((len(RATES), WEEKS), dtype=int)
        last: dict[int, float] = {}
        for iv in sorted(intervals(_score(y, params)), key=lambda iv: (iv.series, iv.start)):
            if iv.start - last.get(iv.series, -np.inf) > RESOLVE_AFTER:
                per[iv.series, int((iv.start - MONDAY) // WEEK)] += 1
            last[iv.series] = np.inf if iv.end is None else iv.end
        counts.append(per)
    stacked = np.stack(counts)
    return {
        "per_series_week_mean": round(float(stacked.mean()), 3),
        "series_weeks_over_one": int((stacked > 1).sum()),
        "series_weeks": int(stacked.size),
    }


def drops_caught(params: AnomalyParams) -> dict[str, Any]:
    out: dict[str, Any] = {}
    starts = np.arange(6 * 3600 + 1200, WEEKS * WEEK - DAY, 5 * 3600 + 28 * 60)
    for rate in RATES:
        y = np.vstack([traffic(Job("x", rps=rate, seed=9), False, float(s)) for s in starts])
        scores = _score(y, params)
        delays, missed = [], []
        for row, start in enumerate(starts):
            hits = [
                iv.start - (MONDAY + start)
                for iv in intervals(scores)
                if iv.series == row and MONDAY + start < iv.start <= MONDAY + start + 45 * 60
            ]
            if hits:
                delays.append(min(hits))
            else:
                missed.append(round(float(start) / DAY, 2))
        out[f"{rate:g} req/s"] = {
            "drops": len(starts),
            "caught": len(delays),
            "median_delay_min": float(np.median(delays)) / 60 if delays else None,
            "missed_at_day": missed,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    for name, profiles in PROFILE_SETS.items():
        params = _params(profiles)
        report[name] = {
            "false_alarms_smooth_week": false_alarms(args.seeds, False, params),
            "false_alarms_abrupt_weekends": false_alarms(args.seeds, True, params),
            "drops_caught": drops_caught(params),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
