"""Benchmark: evaluation cycles for 1,000 and 10,000 SLOs over a real, backfilled Prometheus.

    .venv/bin/python bench/bench_evaluate.py [--slos 1000,10000] [--days 2] [--cycles 30]

Prints one JSON document. Not a test: figures depend on the machine and its load, which is
recorded alongside them.

Data: `--jobs` synthetic services, each with `http_requests_total{job, code="200"|"500"}`
(2 series), `--days` of history at `--scrape` seconds, written with the harness's streaming
OpenMetrics writer and backfilled with promtool. SLOs are events SLIs over one job each
(bad = 500s, total = all); with more SLOs than jobs, several SLOs (different objectives)
read the same job, which costs Prometheus the same as distinct series would.

Per SLO count, a fresh worker process (so peak RSS is its own) measures:
- cold start: the first `Evaluator.evaluate` (fills every cache tier with range queries);
- warm cycles: the next `--cycles` evaluations, one per simulated minute (the daemon's
  cadence), each fetching only the new steps;
- HTTP requests per cycle, and Prometheus' own query time per cycle from its
  `prometheus_engine_query_duration_seconds` summary (sum over eval/prepare/sort slices);
- peak RSS.
And the naive baseline (like slo-generator): per SLO and window one instant query,
sequential, every cycle — timed over one cycle at `--naive-slos` SLOs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.demo.openmetrics import open_openmetrics  # noqa: E402
from engine.evaluation.evaluator import Evaluator  # noqa: E402
from engine.evaluation.policy import policy_for  # noqa: E402
from engine.source.localprom import LocalPrometheus, backfill  # noqa: E402
from engine.source.prometheus import PrometheusSource  # noqa: E402
from engine.spec.models import SLO, ServiceSpec  # noqa: E402
from engine.spec.sli import bad_rate, total_rate  # noqa: E402

OBJECTIVES = (99.0, 99.5, 99.9, 99.95, 99.99)


# --------------------------------------------------------------------------- data


def write_data(path: Path, jobs: int, start: int, end: int, scrape: int, seed: int = 7) -> int:
    """Counters per job with steady traffic, varied error ratios and a few incidents."""
    rng = np.random.default_rng(seed)
    ts = np.arange(start, end + 1, scrape, dtype=np.int64)
    samples = 0
    with open_openmetrics(path) as writer:
        writer.family("http_requests", "counter", "Synthetic requests.")
        for j in range(jobs):
            rps = rng.uniform(1, 100)
            err = np.full(ts.size, rng.uniform(0.0001, 0.005))
            if j % 10 == 0:  # one job in ten has an incident somewhere
                a = int(rng.integers(0, ts.size - 120))
                err[a : a + int(rng.integers(10, 120))] = rng.uniform(0.02, 0.5)
            per_scrape = rps * scrape
            errors = np.floor(np.cumsum(per_scrape * err)).astype(np.int64)
            total = np.floor(np.arange(ts.size) * per_scrape).astype(np.int64)
            ok = np.maximum.accumulate(total - errors)
            labels = {"job": f"svc-{j}"}
            writer.series("http_requests_total", {**labels, "code": "200"}, ts, ok)
            writer.series("http_requests_total", {**labels, "code": "500"}, ts, errors)
            samples += 2 * ts.size
    return samples


def make_slos(n: int, jobs: int) -> list[SLO]:
    """n distinct SLOs, round-robin over jobs (the documents of `slo_documents`)."""
    slos: list[SLO] = []
    for document in slo_documents(n, jobs):
        slos.extend(ServiceSpec.model_validate(document).slo_records())
    return slos


def slo_documents(n: int, jobs: int) -> list[dict[str, Any]]:
    """The spec documents (one per service) of n distinct SLOs, round-robin over jobs.

    No two SLOs share an expression (a `variant!="v<k>"` matcher, true for every series,
    makes the text differ), so the planner's sharing cannot flatter the figures. Mix:
    8 in 10 are `bad`/`total` events SLIs, 1 in 10 `good`/`total` (bad = total − good),
    1 in 10 written in a form the planner does not decompose (`sum without`), which goes
    through the generic `or` batches.
    """
    per_service: dict[int, list[dict[str, Any]]] = {}
    for i in range(n):
        job, variant = i % jobs, i // jobs
        sel = f'job="svc-{job}",variant!="v{variant}"'
        w = "{{window}}"
        if i % 10 == 8:
            events = {
                "good": f'sum(rate(http_requests_total{{{sel},code="200"}}[{w}]))',
                "total": f"sum(rate(http_requests_total{{{sel}}}[{w}]))",
            }
        elif i % 10 == 9:
            events = {
                "bad": f'sum without (code) (rate(http_requests_total{{{sel},code="500"}}[{w}]))',
                "total": f"sum without (code) (rate(http_requests_total{{{sel}}}[{w}]))",
            }
        else:
            events = {
                "bad": f'sum(rate(http_requests_total{{{sel},code="500"}}[{w}]))',
                "total": f"sum(rate(http_requests_total{{{sel}}}[{w}]))",
            }
        per_service.setdefault(job, []).append(
            {
                "name": f"slo-{i}",
                "objective": OBJECTIVES[variant % len(OBJECTIVES)],
                "sli": {"events": events},
            }
        )
    return [
        {"apiVersion": "slo-engine/v1", "service": f"svc-{job}", "slos": specs}
        for job, specs in per_service.items()
    ]


# --------------------------------------------------------------------------- probes


def query_seconds(url: str) -> dict[str, float]:
    """Prometheus' cumulative query time by slice, from its own /metrics."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("prometheus_engine_query_duration_seconds_sum{"):
            slice_name = line.split('slice="', 1)[1].split('"', 1)[0]
            out[slice_name] = float(line.rsplit(" ", 1)[1])
    return out


def query_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    work = sum(v for k, v in delta.items() if k != "queue_time")
    return {"work": work, "queue": delta.get("queue_time", 0.0)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --------------------------------------------------------------------------- workers


def worker_engine(args: argparse.Namespace) -> dict[str, Any]:
    slos = make_slos(args.n, args.jobs)
    source = PrometheusSource(args.url, batch_size=args.batch_size, concurrency=args.concurrency)
    evaluator = Evaluator(slos, source)
    at = args.end - args.cycles * 60

    q0 = query_seconds(args.url)
    t0 = time.perf_counter()
    results = evaluator.evaluate(at)
    cold = time.perf_counter() - t0
    cold_requests = source.http_requests
    cold_query = query_delta(q0, query_seconds(args.url))
    errors = sum(r.status == "error" for r in results)

    cycle_times, cycle_requests, cycle_query = [], [], []
    for k in range(1, args.cycles + 1):
        before_requests = source.http_requests
        q0 = query_seconds(args.url)
        t0 = time.perf_counter()
        results = evaluator.evaluate(at + 60 * k)
        cycle_times.append(time.perf_counter() - t0)
        cycle_query.append(query_delta(q0, query_seconds(args.url))["work"])
        cycle_requests.append(source.http_requests - before_requests)
        errors += sum(r.status == "error" for r in results)
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        "slos": args.n,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "cold_start_s": round(cold, 3),
        "cold_start_http_requests": cold_requests,
        "cold_start_prometheus_query_s": round(cold_query["work"], 3),
        "warm_cycles": args.cycles,
        "warm_cycle_median_s": round(statistics.median(cycle_times), 4),
        "warm_cycle_p95_s": round(pct(cycle_times, 95), 4),
        "warm_cycle_max_s": round(max(cycle_times), 4),
        "http_requests_per_cycle_median": statistics.median(cycle_requests),
        "http_requests_per_cycle_max": max(cycle_requests),
        "prometheus_query_s_per_cycle_median": round(statistics.median(cycle_query), 4),
        "prometheus_query_s_per_cycle_p95": round(pct(cycle_query, 95), 4),
        "slo_error_results": errors,
        "final_statuses": statuses,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def worker_naive(args: argparse.Namespace) -> dict[str, Any]:
    """One instant query per SLO per window (bad and total together), sequential."""
    slos = make_slos(args.n, args.jobs)
    session = requests.Session()
    at = args.end
    q0 = query_seconds(args.url)
    t0 = time.perf_counter()
    queries = 0
    for slo in slos:
        for window in policy_for(slo).windows:
            query = (
                f'label_replace(sum({bad_rate(slo.sli, window)}), "side", "bad", "", "") or '
                f'label_replace(sum({total_rate(slo.sli, window)}), "side", "total", "", "")'
            )
            response = session.get(
                f"{args.url}/api/v1/query",
                params={"query": query, "time": f"{at:.3f}"},
                timeout=30,
            )
            response.raise_for_status()
            queries += 1
    elapsed = time.perf_counter() - t0
    return {
        "slos": args.n,
        "cycle_s": round(elapsed, 3),
        "http_requests_per_cycle": queries,
        "prometheus_query_s_per_cycle": round(query_delta(q0, query_seconds(args.url))["work"], 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def run_worker(
    kind: str, url: str, n: int, end: int, opts: argparse.Namespace, **extra: Any
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        f"--worker={kind}",
        f"--url={url}",
        f"--n={n}",
        f"--end={end}",
        f"--jobs={opts.jobs}",
        f"--cycles={opts.cycles}",
        f"--batch-size={extra.get('batch_size', opts.batch_size)}",
        f"--concurrency={opts.concurrency}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} n={n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "prometheus": (version.stdout or version.stderr).splitlines()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", default="1000,10000")
    parser.add_argument("--naive-slos", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--scrape", type=int, default=60)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=PrometheusSource.DEFAULT_BATCH_SIZE)
    parser.add_argument("--batch-sweep", default="", help="also try these batch sizes, e.g. 50,200")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    # Worker mode (internal).
    parser.add_argument("--worker", default=None)
    parser.add_argument("--url", default=None)
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--end", type=int, default=0)
    args = parser.parse_args()

    if args.worker:
        result = worker_engine(args) if args.worker == "engine" else worker_naive(args)
        print(json.dumps(result))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # End 10 min ago on a whole hour boundary minus nothing in particular; data must be past.
    end = (int(time.time()) // 60 - 10) * 60
    start = end - int(args.days * 86400)
    report: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}

    t0 = time.perf_counter()
    om = workdir / "data.om"
    samples = write_data(om, args.jobs, start, end, args.scrape)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    tsdb = backfill(om, workdir / "tsdb")
    t_backfill = time.perf_counter() - t0
    om.unlink()
    report["data"] = {
        "jobs": args.jobs,
        "series": 2 * args.jobs,
        "samples": samples,
        "history_days": args.days,
        "scrape_interval_s": args.scrape,
        "write_openmetrics_s": round(t_write, 1),
        "backfill_s": round(t_backfill, 1),
    }

    with LocalPrometheus(tsdb) as server:
        runs = []
        for n in (int(x) for x in args.slos.split(",") if x):
            runs.append(run_worker("engine", server.url, n, end, args))
            print(json.dumps(runs[-1]), file=sys.stderr)
        report["engine"] = runs
        sweep = []
        for size in (int(x) for x in args.batch_sweep.split(",") if x):
            sweep.append(
                run_worker(
                    "engine",
                    server.url,
                    max(int(x) for x in args.slos.split(",")),
                    end,
                    args,
                    batch_size=size,
                )
            )
            print(json.dumps(sweep[-1]), file=sys.stderr)
        if sweep:
            report["batch_sweep"] = sweep
        if args.naive_slos:
            naive = run_worker("naive", server.url, args.naive_slos, end, args)
            report["naive"] = naive
            ours = next((r for r in runs if r["slos"] == args.naive_slos), None)
            if ours is not None:
                report["speedup_vs_naive"] = {
                    "warm_cycle_median": round(naive["cycle_s"] / ours["warm_cycle_median_s"], 1),
                    "warm_cycle_p95": round(naive["cycle_s"] / ours["warm_cycle_p95_s"], 1),
                    "http_requests": round(
                        naive["http_requests_per_cycle"]
                        / max(1, ours["http_requests_per_cycle_median"]),
                        1,
                    ),
                }
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
