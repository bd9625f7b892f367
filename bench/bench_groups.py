"""Benchmark: grouped SLOs in the daemon — 100 SLOs × 50 groups (5,000 instances).

    .venv/bin/python bench/bench_groups.py [--slos 100] [--groups 50] [--hours 12] [--cycles 30]

Prints one JSON document. Not a test: figures depend on the machine and its load, which is
recorded alongside them.

Data: `--slos` services, each with `http_requests_total{job, route, code="200"|"500"}` over
`--groups` routes (2 series per route), `--hours` of history at `--scrape` seconds, written
with the streaming OpenMetrics writer and backfilled with promtool. Each service has one SLO
with `group_by: [route]` whose queries are written `sum by (route) (rate(...))`.

A worker process (so its RSS is its own) builds the daemon's `Runtime` on a fake clock
against a real Prometheus and measures:
- the first cycle: group discovery (one instant query per grouped SLO) and the cache's cold
  fill of every instance;
- warm cycles, one per simulated minute (the daemon's cadence): time, HTTP requests and
  Prometheus' own query time per cycle. Discovery runs every `group_discovery_interval`
  (5m), so one cycle in five also asks the discovery queries: reported apart;
- memory per instance: the evaluation cache's arrays per instance, and the worker's RSS
  growth from before the Runtime was built to after the warm cycles, per instance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_evaluate import machine, pct, query_delta, query_seconds  # noqa: E402

from engine.demo.openmetrics import open_openmetrics  # noqa: E402
from engine.source.localprom import LocalPrometheus, backfill  # noqa: E402

SPEC = """apiVersion: slo-engine/v1
service: svc-{j}
slos:
  - name: availability
    objective: 99.9
    group_by: [route]
    sli:
      events:
        bad: sum by (route) (rate(http_requests_total{{job="svc-{j}",code="500"}}[{{{{window}}}}]))
        total: sum by (route) (rate(http_requests_total{{job="svc-{j}"}}[{{{{window}}}}]))
"""


# --------------------------------------------------------------------------- data


def write_data(path: Path, slos: int, groups: int, start: int, end: int, scrape: int) -> int:
    """Per service and route: steady traffic, a small error ratio; one route in a hundred
    fails at 20 % over the last hour (so some instances page)."""
    rng = np.random.default_rng(7)
    ts = np.arange(start, end + 1, scrape, dtype=np.int64)
    samples = 0
    with open_openmetrics(path) as writer:
        writer.family("http_requests", "counter", "Synthetic requests by route.")
        for j in range(slos):
            for g in range(groups):
                per_scrape = rng.uniform(0.5, 20) * scrape
                err = np.full(ts.size, rng.uniform(0.0, 0.0008))
                if (j * groups + g) % 100 == 0:
                    err[ts > end - 3600] = 0.2
                errors = np.floor(np.cumsum(per_scrape * err)).astype(np.int64)
                total = np.floor(np.arange(ts.size) * per_scrape).astype(np.int64)
                ok = np.maximum.accumulate(total - errors)
                labels = {"job": f"svc-{j}", "route": f"/r{g}"}
                writer.series("http_requests_total", {**labels, "code": "200"}, ts, ok)
                writer.series("http_requests_total", {**labels, "code": "500"}, ts, errors)
                samples += 2 * ts.size
    return samples


# --------------------------------------------------------------------------- worker


def rss_mib() -> float:
    """Resident set size now (not the peak): pages of this process in RAM."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from engine.daemon.config import load_config
    from engine.daemon.runtime import Runtime

    workdir = Path(tempfile.mkdtemp(prefix="bench-groups-worker-"))
    specs = workdir / "specs"
    specs.mkdir()
    for j in range(args.slos):
        (specs / f"svc-{j}.yaml").write_text(SPEC.format(j=j))
    config = load_config(
        None,
        {
            "specs": [str(specs)],
            "prometheus_url": args.url,
            "state_dir": str(workdir / "state"),
            "interval": "60s",
            "scrape_interval": f"{args.scrape}s",
            "query_timeout": "120s",
            "batch_size": args.batch_size,
        },
    )
    clock = {"now": float(args.end - (args.cycles + 1) * 60)}
    rss_before = rss_mib()
    runtime = Runtime(config, clock=lambda: clock["now"])
    prometheus = runtime.source.inner
    evaluator = runtime._cycle._evaluator  # the bench reads what the daemon holds

    groups = runtime._specs.groups
    assert groups is not None
    # The evaluation's share of a cycle (the rest: alerts, incidents, the store, metrics).
    evaluate_s: list[float] = []
    evaluate = evaluator.evaluate

    def timed_evaluate(at: float) -> Any:
        started = time.perf_counter()
        try:
            return evaluate(at)
        finally:
            evaluate_s.append(time.perf_counter() - started)

    evaluator.evaluate = timed_evaluate  # type: ignore[method-assign]

    def cycle() -> tuple[Any, int, float, bool]:
        discovers = min(groups._due.values(), default=0.0) <= clock["now"]
        before, q0 = prometheus.http_requests, query_seconds(args.url)
        report = runtime.run_cycle(clock["now"])
        query = query_delta(q0, query_seconds(args.url))["work"]
        return report, prometheus.http_requests - before, query, discovers

    try:
        first, first_requests, first_query, _ = cycle()
        instances = len(evaluator.slos)
        warm: list[dict[str, Any]] = []
        for _ in range(args.cycles):
            clock["now"] += 60
            report, requests, query, discovers = cycle()
            errors = sum(r.status == "error" for r in report.results)
            warm.append(
                {
                    "evaluate_s": evaluate_s[-1],
                    "s": report.duration,
                    "requests": requests,
                    "query": query,
                    "errors": errors,
                    "discovery": discovers,
                }
            )
        rss_after = rss_mib()
        statuses: dict[str, int] = {}
        for r in report.results:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        status = runtime.spec_status()["groups"]
    finally:
        runtime.close()
    plain = [w for w in warm if not w["discovery"]]
    with_discovery = [w for w in warm if w["discovery"]]
    return {
        "batch_size": args.batch_size,
        "grouped_slos": args.slos,
        "instances": instances,
        "groups_per_slo": sorted({g["groups"] for g in status.values()}),
        "first_cycle_s": round(first.duration, 2),
        "first_cycle_http_requests": first_requests,
        "first_cycle_prometheus_query_s": round(first_query, 2),
        "warm_cycles": len(warm),
        "warm_cycle_median_s": round(statistics.median(w["s"] for w in plain), 4),
        "warm_cycle_p95_s": round(pct([w["s"] for w in plain], 95), 4),
        "warm_evaluate_median_s": round(statistics.median(w["evaluate_s"] for w in plain), 4),
        "http_requests_per_cycle_median": statistics.median(w["requests"] for w in plain),
        "http_requests_per_cycle_max": max(w["requests"] for w in plain),
        "prometheus_query_s_per_cycle_median": round(
            statistics.median(w["query"] for w in plain), 4
        ),
        "discovery_cycles": len(with_discovery),
        "discovery_cycle_median_s": round(statistics.median(w["s"] for w in with_discovery), 3)
        if with_discovery
        else None,
        "discovery_cycle_http_requests": [int(w["requests"]) for w in with_discovery],
        "http_requests_per_minute_mean": round(statistics.mean(w["requests"] for w in warm), 1),
        "cache_bytes_per_instance": round(evaluator.cache.nbytes / max(1, instances)),
        "rss_growth_mib": round(rss_after - rss_before, 1),
        "rss_bytes_per_instance": round((rss_after - rss_before) * 2**20 / max(1, instances)),
        "slo_error_results": sum(w["errors"] for w in warm),
        "final_statuses": statuses,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", type=int, default=100)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--scrape", type=int, default=30)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument(
        "--batch-sizes",
        default="100,1000",
        help="daemon batch_size values to run (atoms per request; 100 is the default)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-groups-"))
    workdir.mkdir(parents=True, exist_ok=True)
    end = (int(time.time()) // 60 - 10) * 60
    start = end - int(args.hours * 3600)
    report: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}
    t0 = time.perf_counter()
    om = workdir / "data.om"
    samples = write_data(om, args.slos, args.groups, start, end, args.scrape)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    tsdb = backfill(om, workdir / "tsdb")
    t_backfill = time.perf_counter() - t0
    om.unlink()
    report["data"] = {
        "services": args.slos,
        "routes_per_service": args.groups,
        "series": 2 * args.slos * args.groups,
        "samples": samples,
        "history_hours": args.hours,
        "scrape_interval_s": args.scrape,
        "write_openmetrics_s": round(t_write, 1),
        "backfill_s": round(t_backfill, 1),
    }
    with LocalPrometheus(tsdb) as server:
        runs = []
        for size in (int(x) for x in args.batch_sizes.split(",") if x):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                f"--url={server.url}",
                f"--end={end}",
                f"--slos={args.slos}",
                f"--scrape={args.scrape}",
                f"--cycles={args.cycles}",
                f"--batch-size={size}",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"worker failed:\n{proc.stderr[-3000:]}")
            runs.append(json.loads(proc.stdout))
            print(json.dumps(runs[-1]), file=sys.stderr)
        report["daemon"] = runs
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
