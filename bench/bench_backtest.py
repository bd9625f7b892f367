"""Backtest speed: replay 30 days × 1,000 SLOs at 1-minute steps; fetch measured separately.

    python bench/bench_backtest.py [--slos 1000] [--days 30] [--warmup 30d]
                                   [--fetch-slos 20] [--fetch-days 7] [--no-fetch]

Prints one JSON object. Two parts, because they cost different things:

- **replay** runs on in-memory `StepRates` of the full size (synthetic: daily seasonality,
  background errors, one outage per SLO, slow burns on some, anomaly detection on 10 % of
  the services), timing evaluation, anomaly scoring and the incident engine separately.
- **fetch** backfills a smaller set (harness writer, 60 s scrape) into a real Prometheus,
  fetches it with `fetch_history` at 1-minute steps and extrapolates linearly in
  SLOs × steps to the full size — clearly labelled as an extrapolation.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.anomaly.series import anomaly_series
from engine.backtest.replay import fetch_history, make_plan, replay
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 UTC
SLOS_PER_SERVICE = 10


def fleet_documents(n_slos: int, anomaly_share: float = 0.1) -> list[dict]:
    """The fleet's spec documents, one per service of SLOS_PER_SERVICE SLOs."""
    services = max(1, n_slos // SLOS_PER_SERVICE)
    with_anomaly = max(1, int(services * anomaly_share))
    documents = []
    for k in range(services):
        tier = ("critical", "important", "standard")[k % 3]
        documents.append(
            {
                "apiVersion": "slo-engine/v1",
                "service": f"svc{k:04d}",
                "tier": tier,
                "depends_on": [f"svc{k - 1:04d}"] if k % 10 else [],
                "anomaly": {"enabled": k < with_anomaly, "signals": ["traffic", "errors"]},
                "slos": [
                    {
                        "name": f"slo{j}",
                        "objective": (99.9, 99.5, 99.95)[j % 3],
                        "sli": {
                            "events": {
                                "bad": f'sum(rate(http_requests_total{{job="svc{k:04d}-{j}",code="500"}}[{{{{window}}}}]))',
                                "total": f'sum(rate(http_requests_total{{job="svc{k:04d}-{j}"}}[{{{{window}}}}]))',
                            }
                        },
                    }
                    for j in range(SLOS_PER_SERVICE)
                ],
            }
        )
    return documents


def fleet(n_slos: int, anomaly_share: float = 0.1) -> list[SLO]:
    slos: list[SLO] = []
    for document in fleet_documents(n_slos, anomaly_share):
        slos.extend(ServiceSpec.model_validate(document).slo_records())
    return slos[:n_slos]


def synthetic_rates(slos: list[SLO], plan, seed: int = 7) -> StepRates:
    """Daily and weekly seasonal traffic, 0.02 % background errors, one outage per SLO
    (10–60 min at 20–100 % errors) and a 12 h slow burn on every tenth SLO."""
    rng = np.random.default_rng(seed)
    step = plan.step.seconds
    first = plan.fetch_start + step
    n = round((plan.end - first) / step) + 1
    times = first + step * np.arange(n)
    phase = rng.uniform(0, 2 * np.pi, len(slos))[:, None]
    t = times[None, :]
    rps = rng.uniform(0.5, 50, len(slos))[:, None]
    total = rps * (
        1 + 0.5 * np.sin(2 * np.pi * t / DAY + phase) + 0.2 * np.sin(2 * np.pi * t / (7 * DAY))
    )
    bad = total * 0.0002
    replay_steps = np.flatnonzero(times > plan.start)
    for s in range(len(slos)):
        at = int(rng.choice(replay_steps[:-120]))
        length = int(rng.integers(10, 61) * 60 // step)
        bad[s, at : at + length] = total[s, at : at + length] * rng.uniform(0.2, 1.0)
        if s % 10 == 0:
            at = int(rng.choice(replay_steps[: -int(DAY // step)]))
            burn = slice(at, at + int(12 * 3600 // step))
            bad[s, burn] = total[s, burn] * 0.004
    return StepRates(step=plan.step, times=times, bad=bad, total=total)


def bench_replay(n_slos: int, days: int, warmup: str | None, workers: int) -> dict:
    slos = fleet(n_slos)
    start = T0 + 40 * DAY
    plan = make_plan(
        slos,
        start,
        start + days * DAY,
        Duration.parse("1m"),
        None if warmup is None else Duration.parse(warmup),
    )
    t0 = time.perf_counter()
    rates = synthetic_rates(slos, plan)
    generated = time.perf_counter() - t0
    phases: dict[str, float] = {}
    last = {"phase": None, "t": time.perf_counter()}

    def progress(phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if last["phase"] is not None and last["phase"] != phase:
            phases[last["phase"]] = phases.get(last["phase"], 0.0) + now - last["t"]
            last["t"] = now
        if last["phase"] is None:
            last["t"] = now
        last["phase"] = phase

    t0 = time.perf_counter()
    result = replay(slos, rates, plan, progress=progress, workers=workers)
    total_s = time.perf_counter() - t0
    phases[last["phase"]] = phases.get(last["phase"], 0.0) + time.perf_counter() - last["t"]
    summary = result.summary()
    return {
        "slos": n_slos,
        "days": days,
        "step": "1m",
        "warmup": str(plan.warmup),
        "workers": workers,
        "steps_replayed": plan.steps,
        "steps_with_warmup": int(rates.times.size),
        "anomaly_series": len(anomaly_series(slos)),
        "generate_seconds": round(generated, 2),
        "replay_seconds": round(total_s, 2),
        # "evaluate" includes anomaly scoring (it runs between the two progress phases).
        "phase_seconds": {k: round(v, 2) for k, v in phases.items()},
        "alerts": len(result.alerts),
        "incidents": summary["incidents"],
        "pages": summary["pages"],
        "tickets": summary["tickets"],
        "anomalies": summary["anomalies"],
    }


def bench_fetch(n_slos: int, days: int) -> dict:
    from engine.demo.scenario import Scenario, ServiceLoad, write_openmetrics
    from engine.source.localprom import LocalPrometheus, backfill, skip_reason
    from engine.source.prometheus import PrometheusSource

    reason = skip_reason()
    if reason:
        return {"skipped": reason}
    slos = fleet(n_slos, anomaly_share=0.0)
    jobs = [s.sli.events.total.split('job="')[1].split('"')[0] for s in slos]  # type: ignore[union-attr]
    scenario = Scenario(
        start=T0,
        duration=days * DAY,
        scrape_interval=60,
        services=[ServiceLoad(job=j, rps=5, error_ratio=0.001, daily_amplitude=0.4) for j in jobs],
    )
    work = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    try:
        t0 = time.perf_counter()
        tsdb = backfill(write_openmetrics(scenario, work / "data.om"), work / "tsdb")
        backfill_s = time.perf_counter() - t0
        with LocalPrometheus(tsdb) as server:
            plan = make_plan(
                slos, T0 + 3 * DAY, T0 + days * DAY, Duration.parse("1m"), Duration.parse("3d")
            )
            source = PrometheusSource(server.url, timeout=120)
            t0 = time.perf_counter()
            rates = fetch_history(source, slos, plan)
            fetch_s = time.perf_counter() - t0
            points = rates.times.size * n_slos
            covered = float(np.isfinite(rates.total).mean())
            requests = source.http_requests
    finally:
        shutil.rmtree(work, ignore_errors=True)
    full_points = 1000 * (60 * DAY // 60)
    return {
        "slos": n_slos,
        "days_fetched": days,
        "scrape_interval": "60s",
        "step": "1m",
        "backfill_seconds": round(backfill_s, 1),
        "fetch_seconds": round(fetch_s, 2),
        "http_requests": requests,
        "points_per_side": points,
        "share_with_data": round(covered, 4),
        "seconds_per_million_slo_steps": round(fetch_s / points * 1e6, 3),
        "extrapolated_fetch_seconds_1000_slos_60_days": round(fetch_s / points * full_points, 1),
        "extrapolation": "linear in SLOs × steps from the measured set; 60 days = 30 replayed + 30 warm-up",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--warmup", default=None, help="default: the SLO period (30d)")
    parser.add_argument("--fetch-slos", type=int, default=20)
    parser.add_argument("--fetch-days", type=int, default=7)
    parser.add_argument("--no-fetch", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    args = parser.parse_args()
    out = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "replay": bench_replay(args.slos, args.days, args.warmup, args.workers),
    }
    if not args.no_fetch:
        out["fetch"] = bench_fetch(args.fetch_slos, args.fetch_days)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
