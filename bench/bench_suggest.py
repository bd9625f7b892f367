"""`suggest` speed: 1,000 SLOs × 90 days at 5-minute steps, history fetch included.

    python bench/bench_suggest.py [--slos 1000] [--days 90] [--workers 2]
                                  [--fetch-slos 1000] [--fetch-days 7] [--no-fetch]
    python bench/bench_suggest.py --end-to-end /var/tmp/bench-suggest [--slos 1000] [--days 90]

Prints one JSON object. Two parts, because they cost different things:

- **analysis** runs on in-memory `StepRates` of the full size (the backtest benchmark's
  synthetic fleet: daily and weekly seasonality, background errors, one outage per SLO,
  slow burns on every tenth, anomaly detection on 10 % of the services): the reference
  replay of the current specs through the backtest (what `suggest` scores policies against
  without `--labels`), then `advise` — periods, the ladder, the alert replays of every
  candidate objective and policy alternative, the policy scores.
- **fetch** backfills `--fetch-slos` SLOs × `--fetch-days` days (two counter series per SLO,
  60 s scrape) into a real Prometheus and fetches them with `fetch_history` on the plan
  `suggest` makes (5-minute steps), through the `PrometheusSource` `suggest` uses. The
  backfill of 1,000 SLOs × 90 days (259 million samples) is too heavy to repeat here, so the
  full-size fetch is extrapolated linearly in SLO-steps from the measured one — said so in
  the output.

`--end-to-end DIR` measures the whole run instead, nothing extrapolated: the TSDB in DIR
(backfilled there first when DIR has none, then kept for the next run — 1,000 SLOs × 90 days
is 259 million samples, about 15 minutes to build) is served by a real Prometheus, and what
`suggest` does is timed on it: `fetch_history`, the reference replay of the current specs,
`advise`, the JSON. Wall and CPU seconds, ours and Prometheus'.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import DAY, T0, fleet, fleet_documents, synthetic_rates

from engine.advice.advise import advise
from engine.advice.history import history_plan
from engine.backtest.plan import fetch_history
from engine.backtest.replay import replay
from engine.spec.durations import Duration

STEP = Duration.parse("5m")
SCRAPE_S = 60


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (the forked workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def process_cpu_seconds(pid: int | None) -> float | None:
    """CPU time of a running process (the local Prometheus), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phases:
    """Seconds per progress phase (fetch, evaluate, replay, alerts)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._phase: str | None = None
        self._t = time.perf_counter()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._t
        self._phase, self._t = phase, now

    def close(self) -> dict[str, float]:
        self("", 0, 0)
        return {k: round(v, 2) for k, v in self.seconds.items()}


def bench_analysis(n_slos: int, days: int, workers: int) -> dict:
    slos = fleet(n_slos)
    plan = history_plan(slos, T0 + (days + 40) * DAY, days, STEP)
    t0 = time.perf_counter()
    rates = synthetic_rates(slos, plan)
    generated = time.perf_counter() - t0

    cpu0 = cpu_seconds()
    phases = Phases()
    t0 = time.perf_counter()
    reference = replay(slos, rates, plan, progress=phases, workers=workers)
    replay_s = time.perf_counter() - t0
    replay_phases = phases.close()

    phases = Phases()
    t0 = time.perf_counter()
    advice = advise(
        slos, rates, plan, days=days, reference=reference, workers=workers, progress=phases
    )
    advise_s = time.perf_counter() - t0
    advise_phases = phases.close()
    t0 = time.perf_counter()
    size = len(json.dumps(advice.to_json()))
    json_s = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0

    recommended = Counter(
        "none" if a.recommendation is None else str(a.recommendation.objective) for a in advice.slos
    )
    return {
        "slos": n_slos,
        "days": days,
        "step": str(STEP),
        "steps": int(rates.times.size),
        "steps_replayed": plan.steps,
        "workers": workers,
        "generate_seconds": round(generated, 2),
        "reference_replay_seconds": round(replay_s, 2),
        "reference_replay_phases": replay_phases,
        "reference_incidents": len(reference.incidents),
        "advise_seconds": round(advise_s, 2),
        # "alerts" is the variant replays; the part before it judges periods and the ladder.
        "advise_phases": advise_phases,
        "json_seconds": round(json_s, 2),
        "json_mb": round(size / 1e6, 1),
        "analysis_seconds": round(replay_s + advise_s + json_s, 2),
        # CPU time, parent and workers: what the analysis costs whatever else runs.
        "analysis_cpu_seconds": round(cpu, 1),
        "recommended_objectives": dict(sorted(recommended.items())),
        "policy_changes": sum(1 for a in advice.slos if a.policy_change),
        "fleet_policy": None if advice.fleet is None else advice.fleet.best.policy,
    }


def _write_history(path: Path, jobs: list[str], days: int, model: str = "fleet") -> int:
    """Two counters per job (code 500 and 200), 60 s scrape, integer counts.

    `fleet` (the default): the analysis fleet's behaviour (`bench_backtest.synthetic_rates`)
    at scrape resolution — daily and weekly seasonality, 0.02 % background errors, one
    10–60 min outage per job after the 3-day warm-up, a 12 h slow burn on every tenth.
    `floor`: the first end-to-end history — daily seasonality and errors at exactly 0.05 %
    (floored per scrape), the budget of every third SLO (99.95 %): their ticket rules sit on
    burn rate 1.0 for 90 days and flap all the time, a stress case for the incident engine."""
    from engine.demo.openmetrics import open_openmetrics

    ts = T0 + SCRAPE_S * np.arange(days * DAY // SCRAPE_S + 1, dtype=np.int64)
    u = (ts - T0).astype(np.float64)
    rng = np.random.default_rng(7)
    with open_openmetrics(path) as writer:
        writer.family("http_requests", "counter", "HTTP requests by job and status code.")
        for k, job in enumerate(jobs):
            if model == "floor":
                shape = u + 0.3 * DAY / (2 * np.pi) * (1 - np.cos(2 * np.pi * u / DAY))
                total = np.floor((0.5 + k % 50) * shape).astype(np.int64)
                bad = np.floor(total * 0.0005).astype(np.int64)
            else:
                total, bad = _fleet_counters(rng, k, u, days)
            writer.series("http_requests_total", {"job": job, "code": "500"}, ts, bad)
            writer.series("http_requests_total", {"job": job, "code": "200"}, ts, total - bad)
        return writer.samples


def _fleet_counters(
    rng: np.random.Generator, k: int, u: np.ndarray, days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative total and bad counts at scrape times `u` (seconds from T0) of job `k`."""
    rps = rng.uniform(0.5, 50)
    phase = rng.uniform(0, 2 * np.pi)
    rate = rps * (
        1 + 0.5 * np.sin(2 * np.pi * u / DAY + phase) + 0.2 * np.sin(2 * np.pi * u / (7 * DAY))
    )
    ratio = np.full(u.size, 0.0002)
    warm = 3 * DAY // SCRAPE_S  # outages fall in the replayed part, after the warm-up
    at = int(rng.integers(warm, u.size - 120))
    ratio[at : at + int(rng.integers(10, 61))] = rng.uniform(0.2, 1.0)
    if k % 10 == 0:
        at = int(rng.integers(warm, u.size - DAY // SCRAPE_S))
        ratio[at : at + 12 * 3600 // SCRAPE_S] = 0.004
    per_scrape = rate * SCRAPE_S
    per_scrape[0] = 0.0
    total = np.floor(np.cumsum(per_scrape)).astype(np.int64)
    bad = np.floor(np.cumsum(per_scrape * ratio)).astype(np.int64)
    return total, bad


def _query_range_fetch(url: str, slos: list, plan: object) -> float | None:
    import inspect

    from engine.source.prometheus import PrometheusSource

    if "remote_read" not in inspect.signature(PrometheusSource).parameters:
        return None  # this source only has query_range: the fetch above used it
    source = PrometheusSource(url, timeout=300, remote_read=False)  # type: ignore[call-arg]
    t0 = time.perf_counter()
    fetch_history(source, slos, plan)  # type: ignore[arg-type]
    return round(time.perf_counter() - t0, 2)


def bench_fetch(n_slos: int, days: int, full_slos: int, full_days: int) -> dict:
    from engine.source.localprom import LocalPrometheus, backfill, skip_reason
    from engine.source.prometheus import PrometheusSource

    reason = skip_reason()
    if reason:
        return {"skipped": reason}
    slos = fleet(n_slos, anomaly_share=0.0)
    jobs = [s.sli.events.total.split('job="')[1].split('"')[0] for s in slos]  # type: ignore[union-attr]
    work = Path(tempfile.mkdtemp(prefix="bench-suggest-"))
    try:
        t0 = time.perf_counter()
        samples = _write_history(work / "data.om", jobs, days)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tsdb = backfill(work / "data.om", work / "tsdb", max_block_duration="744h")
        backfill_s = time.perf_counter() - t0
        (work / "data.om").unlink()
        with LocalPrometheus(tsdb) as server:
            plan = history_plan(slos, T0 + days * DAY, days, STEP)
            source = PrometheusSource(server.url, timeout=300)
            server_cpu0 = process_cpu_seconds(server.pid)
            cpu0 = cpu_seconds()
            t0 = time.perf_counter()
            rates = fetch_history(source, slos, plan)
            fetch_s = time.perf_counter() - t0
            client_cpu = cpu_seconds() - cpu0
            server_cpu1 = process_cpu_seconds(server.pid)
            query_range_s = _query_range_fetch(server.url, slos, plan)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    points = int(rates.times.size) * n_slos
    full_points = full_slos * (full_days * DAY * 1000 // STEP.ms)
    return {
        "slos": n_slos,
        "days": days,
        "scrape_interval": f"{SCRAPE_S}s",
        "step": str(STEP),
        "samples_backfilled": samples,
        "write_seconds": round(write_s, 1),
        "backfill_seconds": round(backfill_s, 1),
        "fetch_seconds": round(fetch_s, 2),
        "fetch_cpu_seconds": {
            "client": round(client_cpu, 1),
            "prometheus": None if server_cpu is None else round(server_cpu, 1),
        },
        "http_requests": source.http_requests,
        # The same fetch with remote read switched off, where the source has it.
        "query_range_fetch_seconds": query_range_s,
        # Which method served the histories, when the source says (remote read or query_range).
        "history_method": getattr(source, "history_slos", None),
        "slo_steps": points,
        "share_with_data": round(float(np.isfinite(rates.total).mean()), 4),
        "seconds_per_million_slo_steps": round(fetch_s / points * 1e6, 3),
        f"extrapolated_fetch_seconds_{full_slos}_slos_{full_days}_days": round(
            fetch_s / points * full_points, 1
        ),
        "extrapolation": "linear in SLOs × steps from the measured set",
    }


def _tsdb(work: Path, jobs: list[str], days: int, model: str) -> tuple[Path, dict]:
    """The TSDB of `jobs` × `days` in `work`, backfilled unless it is already there."""
    from engine.source.localprom import backfill

    tsdb, marker = work / "tsdb", work / "history.json"
    wanted = {"jobs": len(jobs), "days": days, "scrape_interval": f"{SCRAPE_S}s", "model": model}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return tsdb, {"reused": True}
    shutil.rmtree(tsdb, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    samples = _write_history(work / "data.om", jobs, days, model)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    backfill(work / "data.om", tsdb, max_block_duration="744h")
    (work / "data.om").unlink()
    marker.write_text(json.dumps(wanted))
    return tsdb, {
        "reused": False,
        "samples_backfilled": samples,
        "write_seconds": round(write_s, 1),
        "backfill_seconds": round(time.perf_counter() - t0, 1),
    }


def bench_end_to_end(
    work: Path, n_slos: int, days: int, workers: int, concurrency: int, model: str = "fleet"
) -> dict:
    """`suggest`'s work on a real Prometheus holding the full history: fetch, reference
    replay, advise, JSON — each timed, nothing extrapolated."""
    from engine.source.localprom import LocalPrometheus, skip_reason
    from engine.source.prometheus import PrometheusSource

    reason = skip_reason()
    if reason:
        return {"skipped": reason}
    slos = fleet(n_slos, anomaly_share=0.0)
    jobs = [s.sli.events.total.split('job="')[1].split('"')[0] for s in slos]  # type: ignore[union-attr]
    tsdb, built = _tsdb(work, jobs, days, model)
    seconds: dict[str, float] = {}
    with LocalPrometheus(tsdb) as server:
        plan = history_plan(slos, T0 + days * DAY, days, STEP)
        source = PrometheusSource(server.url, timeout=300, concurrency=concurrency)
        load0 = [round(x, 2) for x in os.getloadavg()]
        server_cpu0, cpu0 = process_cpu_seconds(server.pid), cpu_seconds()
        t0 = time.perf_counter()
        rates = fetch_history(source, slos, plan)
        seconds["fetch"] = time.perf_counter() - t0
        server_cpu1 = process_cpu_seconds(server.pid)
        fetch_cpu = cpu_seconds() - cpu0
    # Prometheus, our child, is reaped above: from here on our CPU time is the analysis'.
    cpu1 = cpu_seconds()
    t = time.perf_counter()
    reference = replay(slos, rates, plan, workers=workers)
    seconds["reference_replay"] = time.perf_counter() - t
    t = time.perf_counter()
    advice = advise(slos, rates, plan, days=days, reference=reference, workers=workers)
    seconds["advise"] = time.perf_counter() - t
    t = time.perf_counter()
    size = len(json.dumps(advice.to_json()))
    seconds["json"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return {
        "slos": n_slos,
        "days": days,
        "step": str(STEP),
        "scrape_interval": f"{SCRAPE_S}s",
        "history": model,
        "tsdb": built,
        "steps": int(rates.times.size),
        "share_with_data": round(float(np.isfinite(rates.total).mean()), 4),
        "history_method": source.history_slos,
        "http_requests": source.http_requests,
        "fetch_concurrency": concurrency,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "total_seconds": round(total, 2),
        "cpu_seconds": {
            "fetch_client": round(fetch_cpu, 1),
            "prometheus": None if server_cpu is None else round(server_cpu, 1),
            "analysis": round(cpu_seconds() - cpu1, 1),
        },
        "load_average_at_fetch_start": load0,
        "reference_incidents": len(reference.incidents),
        "json_mb": round(size / 1e6, 1),
    }


def bench_cli(work: Path, n_slos: int, days: int, workers: int) -> dict:
    """The whole `slo-engine suggest` command, one process from start to JSON, on the TSDB
    `bench_end_to_end` built in `work`: spec loading, the fetch, discovery, the analysis."""
    import subprocess

    import yaml

    from engine.source.localprom import LocalPrometheus

    specs = work / "specs"
    shutil.rmtree(specs, ignore_errors=True)
    specs.mkdir()
    for document in fleet_documents(n_slos, anomaly_share=0.0):
        (specs / f"{document['service']}.yaml").write_text(yaml.safe_dump(document))
    command = [
        sys.executable, "-m", "engine", "suggest", "--specs", str(specs),
        "--days", str(days), "--end", str(T0 + days * DAY), "--step", str(STEP),
        "--scrape-interval", f"{SCRAPE_S}s", "--format", "json", "--workers", str(workers),
    ]  # fmt: skip
    with LocalPrometheus(work / "tsdb") as server:
        load0 = [round(x, 2) for x in os.getloadavg()]
        server_cpu0, cpu0 = process_cpu_seconds(server.pid), _children_cpu()
        t0 = time.perf_counter()
        done = subprocess.run(
            [*command, "--prometheus-url", server.url], capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        cpu, server_cpu1 = _children_cpu() - cpu0, process_cpu_seconds(server.pid)
    if done.returncode != 0:
        return {"exit_code": done.returncode, "stderr": done.stderr[-2000:]}
    advice = json.loads(done.stdout)
    recommended = Counter(
        "none" if a["recommendation"] is None else str(a["recommendation"]["objective"])
        for a in advice["slos"]
    )
    return {
        "command": " ".join(command[1:]),
        "seconds": round(wall, 2),
        "cpu_seconds": {
            "suggest": round(cpu, 1),
            "prometheus": None if server_cpu0 is None else round(server_cpu1 - server_cpu0, 1),
        },
        "load_average_at_start": load0,
        "slos_advised": len(advice["slos"]),
        "recommended_objectives": dict(sorted(recommended.items())),
        "history": advice["history"],
        "fleet_policy": (advice.get("fleet_policy") or {}).get("recommended"),
    }


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fetch-slos", type=int, default=1000)
    parser.add_argument("--fetch-days", type=int, default=7)
    parser.add_argument("--no-fetch", action="store_true")
    parser.add_argument(
        "--end-to-end",
        type=Path,
        metavar="DIR",
        help="measure fetch + analysis on a real Prometheus with the full history in DIR "
        "(backfilled once, then reused) instead of the two parts",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (--end-to-end fetch)"
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="with --end-to-end: also time the whole `slo-engine suggest` command on it",
    )
    parser.add_argument(
        "--history",
        choices=("fleet", "floor"),
        default="fleet",
        help="--end-to-end history: the analysis fleet's behaviour, or errors pinned at the "
        "99.95 %% SLOs' budget (their alerts flap for 90 days: the incident engine's stress case)",
    )
    args = parser.parse_args()
    out: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
        },
    }
    if args.end_to_end is not None:
        out["end_to_end"] = bench_end_to_end(
            args.end_to_end, args.slos, args.days, args.workers, args.concurrency, args.history
        )
        if args.cli:
            out["cli"] = bench_cli(args.end_to_end, args.slos, args.days, args.workers)
    else:
        out["analysis"] = bench_analysis(args.slos, args.days, args.workers)
    if args.end_to_end is None and not args.no_fetch:
        fetch = bench_fetch(args.fetch_slos, args.fetch_days, args.slos, args.days)
        out["fetch"] = fetch
        key = f"extrapolated_fetch_seconds_{args.slos}_slos_{args.days}_days"
        if key in fetch:
            out["total_seconds_estimate"] = round(
                fetch[key] + out["analysis"]["analysis_seconds"], 1
            )
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # The largest forked worker (evaluation and variant replays).
    out["peak_rss_worker_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
