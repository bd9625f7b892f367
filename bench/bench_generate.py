"""Benchmark: `generate` for 1,000 SLOs, and what their rules cost a real Prometheus.

    .venv/bin/python bench/bench_generate.py [--slos 1000] [--jobs 100] [--days 3]
        [--history-slos 40] [--skip-prometheus]

Prints one JSON document. Not a test: figures depend on the machine and its load, which is
recorded alongside them.

1. Generation: `generate()` (rules, Alertmanager config, dashboards, provisioning) for
   `--slos` synthetic events SLOs (the same shape as bench_evaluate.py: round-robin over
   `--jobs` services), best of 3, plus the size of what it produced.
2. Rule evaluation in Prometheus: the generated rule files are loaded into a real
   Prometheus (evaluation_interval 1m) over `--days` of backfilled raw counters. Prometheus
   reports each group's last evaluation time (`prometheus_rule_group_last_duration_seconds`);
   we sum them over the per-SLO window groups (every minute) and the period groups (every
   5 minutes). A fresh server has no history of its own recorded series, which would make
   the 30-day period rollup look free; so `--history-slos` SLOs get 30 days of backfilled
   history of the 5m tiles their period groups average (`slo:*_events:rate5m_every5m`, one
   sample per 5 minutes), and their period groups' cost is extrapolated to all SLOs.
3. Baseline, same server, same SLOs: the previous rollup, which averaged the window
   group's 5m rates (one sample per minute) over 30 days. Those SLOs also get 30 days of
   `slo:*_events:rate5m` at 1-minute resolution, and an extra group per SLO records
   `avg_over_time(...[30d])` of them every 5 minutes, so both rollups are timed side by side.
   History values vary from sample to sample (daily cycle plus noise), as real rates do:
   constant values would compress to almost nothing and flatter both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_evaluate import machine, make_slos, write_data  # noqa: E402

from engine.demo.openmetrics import open_openmetrics  # noqa: E402
from engine.generate.pipeline import generate, service_rule_groups  # noqa: E402
from engine.generate.render import to_yaml  # noqa: E402
from engine.generate.rules import (  # noqa: E402
    PERIOD_GROUP_INTERVAL,
    period_group_name,
    selector,
    sli_group_name,
    slo_labels,
)
from engine.source.localprom import LocalPrometheus, backfill  # noqa: E402
from engine.spec.models import SLO  # noqa: E402

MINUTE = 60


def time_generation(slos: list[SLO]) -> dict[str, Any]:
    best = float("inf")
    files = []
    for _ in range(3):
        t0 = time.perf_counter()
        files = generate(slos)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    groups = service_rule_groups(slos)
    rules_only = time.perf_counter() - t0
    rule_files = [f for f in files if f.path.endswith(".rules.yml")]
    return {
        "seconds": round(best, 3),
        "rule_groups_seconds": round(rules_only, 3),
        "files": len(files),
        "rule_files": len(rule_files),
        "rules_per_slo": round(sum(len(g["rules"]) for g in groups) / len(slos), 1),
        "rule_bytes": sum(len(f.text) for f in rule_files),
        "dashboard_bytes": sum(len(f.text) for f in files if f.path.endswith(".json")),
        "under_5s": best < 5,
    }


def write_history(path: Path, slos: list[SLO], end: int) -> int:
    """30 days of recorded-rule history for the given SLOs: the period tiles (one sample per
    5 minutes) and, for the baseline, the window group's 5m rates (one per minute)."""
    rng = np.random.default_rng(11)
    levels = [(rng.uniform(1, 100), rng.uniform(0.0001, 0.005)) for _ in slos]
    with open_openmetrics(path) as writer:
        for step, suffix in ((5 * MINUTE, f"_every{PERIOD_GROUP_INTERVAL}"), (MINUTE, "")):
            ts = np.arange(end - 30 * 86_400, end + 1, step, dtype=np.int64)
            daily = 1 + 0.3 * np.sin(2 * np.pi * ts / 86_400)
            for kind in ("bad", "total"):
                name = f"slo:{kind}_events:rate5m{suffix}"
                writer.family(name, "gauge", "Backfilled recording-rule history.")
                for slo, (total, ratio) in zip(slos, levels, strict=True):
                    noise = rng.normal(1, 0.05, ts.size)
                    rate = total * daily * noise * (ratio if kind == "bad" else 1)
                    writer.series(name, slo_labels(slo), ts, np.round(rate, 6))
        return writer.samples


def baseline_rule_file(path: Path, slos: list[SLO]) -> Path:
    """The previous period rollup for `slos`, one group each, under its own metric names."""
    groups = [
        {
            "name": f"baseline:{slo.id}",
            "interval": str(PERIOD_GROUP_INTERVAL),
            "rules": [
                {
                    "record": f"bench:{kind}_events:rate30d_from_minutely",
                    "expr": f"avg_over_time(slo:{kind}_events:rate5m{selector(slo)}[30d])",
                }
                for kind in ("bad", "total")
            ],
        }
        for slo in slos
    ]
    path.write_text(to_yaml({"groups": groups}))
    return path


def group_metrics(url: str) -> dict[str, dict[str, float]]:
    """Per rule group: last evaluation duration and timestamp, from Prometheus' /metrics."""
    out: dict[str, dict[str, float]] = {}
    text = requests.get(f"{url}/metrics", timeout=60).text
    for line in text.splitlines():
        for metric, key in (
            ("prometheus_rule_group_last_duration_seconds{", "duration"),
            ("prometheus_rule_group_last_evaluation_timestamp_seconds{", "evaluated_at"),
        ):
            if line.startswith(metric):
                group = line.split('rule_group="', 1)[1].split('"', 1)[0].split(";", 1)[1]
                out.setdefault(group, {})[key] = float(line.rsplit(" ", 1)[1])
        if line.startswith("process_cpu_seconds_total "):
            out.setdefault("_process", {})["cpu"] = float(line.rsplit(" ", 1)[1])
        if line.startswith("prometheus_rule_evaluation_failures_total"):
            out.setdefault("_process", {})
            out["_process"]["failures"] = out["_process"].get("failures", 0.0) + float(
                line.rsplit(" ", 1)[1]
            )
    return out


def wait_for(url: str, groups: list[str], started: float, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        metrics = group_metrics(url)
        done = [g for g in groups if metrics.get(g, {}).get("evaluated_at", 0) > started]
        if len(done) == len(groups) or time.monotonic() > deadline:
            return metrics
        time.sleep(5)


def measure_prometheus(
    slos: list[SLO], history: list[SLO], jobs: int, days: int, workdir: Path
) -> dict[str, Any]:
    files = generate(slos)
    rules_dir = workdir / "rules"
    rules_dir.mkdir()
    rule_files = []
    for f in files:
        if f.path.endswith(".rules.yml"):
            (rules_dir / f.path).write_text(f.text)
            rule_files.append(rules_dir / f.path)
    end = int(time.time()) - 60
    t0 = time.perf_counter()
    raw = write_data(workdir / "raw.om", jobs, end - days * 86_400, end, 60)
    hist = write_history(workdir / "history.om", history, end)
    tsdb = backfill(workdir / "raw.om", workdir / "tsdb")
    backfill(workdir / "history.om", tsdb)
    prepare = time.perf_counter() - t0
    rule_files.append(baseline_rule_file(rules_dir / "baseline.yml", history))

    server = LocalPrometheus(tsdb, rule_files=rule_files, evaluation_interval="1m")
    t0 = time.perf_counter()
    server.start()
    try:
        ready = time.perf_counter() - t0
        started = time.time()
        cpu0 = group_metrics(server.url).get("_process", {}).get("cpu", 0.0)
        sli_groups = [sli_group_name(s) for s in slos]
        period_groups = [period_group_name(s) for s in slos]
        # Window groups run every minute: all have run once within ~70 s, while the
        # backfilled raw data is still inside their 5m windows.
        metrics = wait_for(server.url, sli_groups, started, 150)
        sli = [metrics[g]["duration"] for g in sli_groups if g in metrics]
        cpu1 = metrics.get("_process", {}).get("cpu", 0.0)
        window = time.time() - started
        baseline_groups = [f"baseline:{s.id}" for s in history]
        metrics = wait_for(server.url, period_groups + baseline_groups, started, 420)
        with_history = {period_group_name(s) for s in history}
        period_hist = [metrics[g]["duration"] for g in with_history if g in metrics]
        baseline = [metrics[g]["duration"] for g in baseline_groups if g in metrics]
        period_fresh = [
            metrics[g]["duration"] for g in period_groups if g in metrics and g not in with_history
        ]
        failures = metrics.get("_process", {}).get("failures", 0.0)
    finally:
        server.stop()
    per_slo_period = float(np.mean(period_hist)) if period_hist else 0.0
    per_slo_baseline = float(np.mean(baseline)) if baseline else 0.0
    return {
        "raw_samples": raw,
        "history_samples": hist,
        "prepare_seconds": round(prepare, 1),
        "ready_seconds": round(ready, 1),
        "rule_groups": len(sli_groups) + len(period_groups),
        "rule_evaluation_failures": failures,
        "window_groups": {
            "evaluated": len(sli),
            "sum_last_duration_seconds": round(sum(sli), 3),
            "p50_ms": round(1000 * float(np.median(sli)), 2) if sli else None,
            "max_ms": round(1000 * max(sli), 2) if sli else None,
            "interval": "1m",
        },
        "period_groups": {
            "evaluated_with_30d_history": len(period_hist),
            "per_slo_ms_with_30d_history": round(1000 * per_slo_period, 2),
            "extrapolated_sum_seconds_all_slos": round(per_slo_period * len(slos), 3),
            "p50_ms_with_30d_history": round(1000 * float(np.median(period_hist)), 2)
            if period_hist
            else None,
            "evaluated_without_history": len(period_fresh),
            "interval": "5m",
        },
        "baseline_minutely_rollup": {
            "evaluated": len(baseline),
            "per_slo_ms": round(1000 * per_slo_baseline, 2),
            "p50_ms": round(1000 * float(np.median(baseline)), 2) if baseline else None,
            "extrapolated_sum_seconds_all_slos": round(per_slo_baseline * len(slos), 3),
        },
        # What the rules cost Prometheus per minute, steady state: window groups every
        # minute plus a fifth of the period groups.
        "estimated_rule_seconds_per_minute": round(sum(sli) + per_slo_period * len(slos) / 5, 3),
        "process_cpu_seconds_first_window_minute": round(cpu1 - cpu0, 2),
        "observed_seconds": round(window, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--history-slos", type=int, default=40)
    parser.add_argument("--skip-prometheus", action="store_true")
    args = parser.parse_args()

    report: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}
    slos = make_slos(args.slos, args.jobs)
    report["generate"] = {"slos": len(slos), **time_generation(slos)}
    if not args.skip_prometheus:
        history = slos[:: max(1, len(slos) // args.history_slos)][: args.history_slos]
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            report["prometheus"] = measure_prometheus(
                slos, history, args.jobs, args.days, Path(tmp)
            )
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
