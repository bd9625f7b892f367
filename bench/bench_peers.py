"""slo-engine beside slo-generator 2.6, on the same SLOs and the same real Prometheus, in one run.

    .venv/bin/python bench/bench_peers.py [--slos 1000] [--days 2] [--repeats 3]
                                          [--daemon-slos 10000] [--no-generator]

Prints one JSON document (figures, ratios, targets met, machine and load average).

Data: `--slos` services, each `http_requests_total{service, code="200"|"500"}` (2 series),
`--days` of history at `--scrape` seconds ending an hour from now — slo-generator queries
Prometheus at the wall-clock time whatever `--timestamp` says, so the history must reach
the present for the whole run (a fresh Prometheus serves backfilled future samples) —
written with the harness's OpenMetrics writer, backfilled with promtool, served by a real
Prometheus 2.42.

SLOs: one per service, one selector each, 4 windows. slo-engine: bad = the 500s, total =
all, alert policy page 1h/5m and ticket 1d/6h (it also reads the 30d period and the 1h
projection window, and the newest step). slo-generator: `good_bad_ratio` (good = the 200s,
valid = all), an error-budget policy of the same 4 windows (5m, 1h, 6h, 1d): two instant
queries per SLO and window, sent one after the other, as it does.

Measured, each as a whole process, cold (a fresh process per run; Python bytecode cached
for both tools, as an installed package has it; best and median of `--repeats`):
- `slo-generator compute` on the 1,000 SLO configs (installed by this script into its own
  venv under `$SLO_BENCH_CACHE`, default ~/.cache/slo-engine-bench, when absent:
  `python -m venv`, `pip install slo-generator[prometheus]==2.6.* "setuptools<81"`);
- `slo-engine evaluate` on the same SLOs (the one-shot instant-query path);
- `slo-engine evaluate` of one SLO, and `slo-engine validate` of the 1,000 files;
- the daemon's cache on the same data: cold start and warm cycles at 1,000 SLOs, and the cold
  start at `--daemon-slos` SLOs (10 per service, distinct selectors over the same series),
  over remote read (the default) and over query_range only.
Burn rates of the two tools are compared window by window (they must agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
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

from engine.demo.openmetrics import open_openmetrics  # noqa: E402
from engine.source.localprom import LocalPrometheus, backfill, skip_reason  # noqa: E402

WINDOWS = {"5m": 300, "1h": 3600, "6h": 21600, "1d": 86400}
OBJECTIVE = 99.9
GENERATOR = "slo-generator[prometheus]==2.6.*"
TARGETS = {
    "one_shot_speedup_vs_slo_generator": 15.0,  # at least
    "one_slo_evaluate_s": 0.8,  # under
    "validate_1000_files_s": 1.0,  # under
    "daemon_cold_start_10000_slos_s": 20.0,  # under
}


# --------------------------------------------------------------------------- data
def write_data(path: Path, services: int, end: int, days: float, scrape: int) -> int:
    rng = np.random.default_rng(11)
    ts = np.arange(end - int(days * 86400), end + 1, scrape, dtype=np.int64)
    with open_openmetrics(path) as writer:
        writer.family("http_requests", "counter", "Synthetic requests.")
        for i in range(services):
            per_scrape = rng.uniform(1, 50) * scrape
            err = np.full(ts.size, rng.uniform(0.0002, 0.003))
            if i % 10 == 0:  # an incident now and then, ended 3 h before now or earlier
                recent = ts.size - (3600 + 3 * 3600) // scrape - 120
                a = int(rng.integers(ts.size // 2, recent))
                err[a : a + int(rng.integers(10, 120))] = rng.uniform(0.02, 0.3)
            errors = np.floor(np.cumsum(per_scrape * err)).astype(np.int64)
            total = np.floor(np.arange(ts.size) * per_scrape).astype(np.int64)
            ok = np.maximum.accumulate(total - errors)
            labels = {"service": f"svc-{i}"}
            writer.series("http_requests_total", {**labels, "code": "200"}, ts, ok)
            writer.series("http_requests_total", {**labels, "code": "500"}, ts, errors)
    return 2 * services * ts.size


def engine_spec(i: int, variants: int = 1) -> str:
    """One service's spec; `variants` > 1 gives distinct SLOs over the same series."""
    slos = []
    for v in range(variants):
        sel = f'service="svc-{i}"' + (f',variant!="v{v}"' if variants > 1 else "")
        slos.append(
            f"""  - name: availability{"" if variants == 1 else f"-{v}"}
    objective: {OBJECTIVE}
    sli:
      events:
        bad: sum(rate(http_requests_total{{{sel},code="500"}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{{sel}}}[{{{{window}}}}]))
    alerting:
      burn_rates:
        - {{severity: page, long_window: 1h, short_window: 5m, factor: 14.4}}
        - {{severity: ticket, long_window: 1d, short_window: 6h, factor: 3}}
"""
        )
    return f"apiVersion: slo-engine/v1\nservice: svc-{i}\nslos:\n" + "".join(slos)


def generator_slo(i: int) -> str:
    return f"""apiVersion: sre.google.com/v2
kind: ServiceLevelObjective
metadata:
  name: svc-{i}-availability
  labels: {{service_name: svc-{i}, feature_name: http, slo_name: availability}}
spec:
  description: Availability of svc-{i}
  backend: prometheus
  method: good_bad_ratio
  exporters: []
  service_level_indicator:
    filter_good: http_requests_total{{service="svc-{i}",code="200"}}
    filter_valid: http_requests_total{{service="svc-{i}"}}
  goal: {OBJECTIVE / 100}
  error_budget_policy: default
"""


def generator_config(url: str) -> str:
    factors = {"5m": 14.4, "1h": 14.4, "6h": 3, "1d": 3}
    steps = "".join(
        f"""    - name: {name}
      window: {seconds}
      burn_rate_threshold: {factors[name]}
      alert: true
      message_alert: burning
      message_ok: fine
"""
        for name, seconds in WINDOWS.items()
    )
    return (
        f"backends:\n  prometheus:\n    url: {url}\nexporters: {{}}\n"
        f"error_budget_policies:\n  default:\n    steps:\n{steps}"
    )


def write_specs(work: Path, services: int, url: str) -> dict[str, Path]:
    engine, one, generator = work / "engine", work / "one", work / "generator"
    for d in (engine, one, generator):
        d.mkdir()
    for i in range(services):
        (engine / f"svc-{i}.yaml").write_text(engine_spec(i))
        (generator / f"svc-{i}.yaml").write_text(generator_slo(i))
    (one / "svc-0.yaml").write_text(engine_spec(0))
    (work / "generator.yaml").write_text(generator_config(url))
    return {"engine": engine, "one": one, "generator": generator}


# --------------------------------------------------------------------------- processes
def child_env(work: Path) -> dict[str, str]:
    """Bytecode cached like an installed package (this workspace may disable it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["COLORED_OUTPUT"] = "0"
    return env


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], env: dict[str, str], repeats: int, server: Any = None) -> dict:
    """Whole-process wall time of `cmd`, `repeats` times after one uncounted warm-up run
    (it compiles the bytecode once, as installing a package does), and the CPU seconds the
    run and Prometheus spent: on a shared machine wall time follows the load, CPU time
    much less (an idle 2-core machine needs at least the larger of CPU ÷ 2 and the client's
    own CPU)."""
    subprocess.run(cmd, env=env, capture_output=True, timeout=1800, check=False)
    runs, cpu, server_cpu, last = [], [], [], None
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = cpu_seconds(server.pid if server else None)
        t0 = time.perf_counter()
        last = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        runs.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        server_cpu.append(cpu_seconds(server.pid if server else None) - server_before)
    assert last is not None
    if last.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {last.returncode}: {last.stderr[-2000:]}")
    return {
        "best_s": round(min(runs), 3),
        "median_s": round(statistics.median(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
        "client_cpu_s": round(statistics.median(cpu), 3),
        "prometheus_cpu_s": round(statistics.median(server_cpu), 3),
        "_stdout": last.stdout,
        "_stderr": last.stderr,
    }


# slo-generator's venv outlives a run (installing it takes longer than the benchmark).
GENERATOR_VENV = (
    Path(os.environ.get("SLO_BENCH_CACHE", Path.home() / ".cache" / "slo-engine-bench"))
    / "slo-generator-2.6"
)


def install_generator(venv: Path = GENERATOR_VENV) -> Path:
    """slo-generator 2.6 in its own venv, installed once into the bench's cache dir."""
    program = venv / "bin" / "slo-generator"
    if program.exists():
        return program
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    # slo-generator 2.6 imports pkg_resources, which setuptools 81 dropped.
    subprocess.run([*pip, GENERATOR, "setuptools<81"], check=True, timeout=900)
    return program


def generator_burn_rates(output: str) -> dict[tuple[str, str], float]:
    """(service, window) → burn rate from slo-generator's report lines."""
    found = {}
    for line in output.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 7 or not parts[-4].startswith("BR:"):
            continue
        name = parts[0].split()[-1].removesuffix("-availability")
        found[(name, parts[1])] = float(parts[-4].split()[1])
    return found


def engine_burn_rates(output: str) -> dict[tuple[str, str], float | None]:
    found = {}
    for slo in json.loads(output)["slos"]:
        for window in WINDOWS:
            found[(slo["service"], window)] = slo["burn_rate"].get(window)
    return found


def agreement(ours: dict, theirs: dict) -> dict[str, Any]:
    """slo-generator prints burn rates to one decimal, and the tools evaluate a few seconds
    apart (ours on the 2m30s grid of 60 s scrapes, it at the wall clock)."""

    def summary(keys: list[tuple[str, str]]) -> dict[str, Any]:
        pairs = [(ours.get(k), theirs[k]) for k in keys]
        gaps = [abs(a - b) for a, b in pairs if a is not None and b is not None]
        return {
            "compared": len(gaps),
            "of": len(keys),
            "max_abs_difference": round(max(gaps), 4) if gaps else None,
            "within_its_rounding_0.05": sum(g <= 0.05 + 1e-9 for g in gaps),
            "within_0.15": sum(g <= 0.15 + 1e-9 for g in gaps),
        }

    keys = sorted(theirs)
    return {
        **summary(keys),
        "by_window": {w: summary([k for k in keys if k[1] == w]) for w in WINDOWS},
    }


# --------------------------------------------------------------------------- the daemon
def worker_daemon(args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: the daemon's Evaluator, cold start and warm cycles."""
    from engine.evaluation.evaluator import Evaluator
    from engine.source.prometheus import PrometheusSource
    from engine.spec.durations import Duration
    from engine.spec.models import ServiceSpec

    variants = max(1, args.n // args.services)
    import yaml

    slos = []
    for i in range(min(args.services, args.n)):
        document = yaml.load(engine_spec(i, variants), Loader=yaml.CSafeLoader)
        spec = ServiceSpec.model_validate(document)
        slos.extend(spec.slo_records())
    source = PrometheusSource(args.url, remote_read=bool(args.remote_read), timeout=120)
    evaluator = Evaluator(slos, source, scrape_interval=Duration.parse(f"{args.scrape}s"))
    t0 = time.perf_counter()
    evaluator.evaluate(args.end)
    cold = time.perf_counter() - t0
    cycles = []
    for k in range(1, args.cycles + 1):
        t0 = time.perf_counter()
        evaluator.evaluate(args.end + 60 * k)
        cycles.append(time.perf_counter() - t0)
    return {
        "slos": len(slos),
        "remote_read": bool(args.remote_read),
        "cold_start_s": round(cold, 3),
        "history_slos": source.history_slos,
        "warm_cycle_median_s": round(statistics.median(cycles), 4) if cycles else None,
        "warm_cycles": len(cycles),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def daemon(url: str, n: int, args: argparse.Namespace, remote_read: bool, cycles: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--url",
        url,
        "--n",
        str(n),
        "--services",
        str(args.slos),
        "--end",
        str(args.end),
        "--scrape",
        str(args.scrape),
        "--remote-read",
        str(int(remote_read)),
        "--cycles",
        str(cycles),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=True)
    return json.loads(out.stdout)


# --------------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def measure(args: argparse.Namespace, work: Path, server: LocalPrometheus) -> dict[str, Any]:
    env = child_env(work)
    specs = write_specs(work, args.slos, server.url)
    engine = [str(Path(sys.executable).with_name("slo-engine"))]
    at = ["--prometheus-url", server.url, "--scrape-interval", f"{args.scrape}s"]
    out: dict[str, Any] = {}
    if not args.no_generator:
        generator = install_generator()
        gen_cmd = [str(generator), "compute", "-f", str(specs["generator"])]
        out["slo_generator"] = timed(
            [*gen_cmd, "-c", str(work / "generator.yaml")], env, args.repeats, server
        )
    one_shot = [*engine, "evaluate", "--specs", str(specs["engine"]), *at, "--format", "json"]
    out["engine_evaluate"] = timed(one_shot, env, args.repeats, server)
    one = [*engine, "evaluate", "--specs", str(specs["one"]), *at, "--format", "json"]
    out["engine_evaluate_one_slo"] = timed(one, env, args.repeats, server)
    out["engine_validate"] = timed([*engine, "validate", str(specs["engine"])], env, args.repeats)
    out["daemon_1000"] = daemon(server.url, args.slos, args, True, args.cycles)
    if args.daemon_slos:
        out["daemon_cold_remote_read"] = daemon(server.url, args.daemon_slos, args, True, 0)
        out["daemon_cold_query_range"] = daemon(server.url, args.daemon_slos, args, False, 0)
    return out


def summarize(out: dict[str, Any]) -> dict[str, Any]:
    ours = out["engine_evaluate"]
    result: dict[str, Any] = {"ratios": {}, "targets": {}}
    if "slo_generator" in out:
        theirs = out["slo_generator"]
        speedup = theirs["best_s"] / ours["best_s"]
        result["ratios"]["one_shot_slo_generator_over_engine"] = round(speedup, 2)

        def cpu(run: dict[str, Any]) -> float:
            return run["client_cpu_s"] + run["prometheus_cpu_s"]

        result["ratios"]["one_shot_cpu_seconds_slo_generator_over_engine"] = round(
            cpu(theirs) / cpu(ours), 2
        )
        result["ratios"]["slo_generator_over_daemon_warm_cycle"] = round(
            theirs["best_s"] / out["daemon_1000"]["warm_cycle_median_s"], 1
        )
        result["burn_rate_agreement"] = agreement(
            engine_burn_rates(ours["_stdout"]),
            generator_burn_rates(theirs["_stdout"] + theirs["_stderr"]),
        )
        result["targets"]["one_shot_speedup_vs_slo_generator"] = {
            "value": round(speedup, 2),
            "target": f">= {TARGETS['one_shot_speedup_vs_slo_generator']}",
            "met": speedup >= TARGETS["one_shot_speedup_vs_slo_generator"],
        }
    for name, value in (
        ("one_slo_evaluate_s", out["engine_evaluate_one_slo"]["best_s"]),
        ("validate_1000_files_s", out["engine_validate"]["best_s"]),
        (
            "daemon_cold_start_10000_slos_s",
            out.get("daemon_cold_remote_read", {}).get("cold_start_s"),
        ),
    ):
        if value is not None:
            met = value < TARGETS[name]
            result["targets"][name] = {"value": value, "target": f"< {TARGETS[name]}", "met": met}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--scrape", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--daemon-slos", type=int, default=10_000)
    parser.add_argument("--no-generator", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--services", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--remote-read", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker_daemon(args)))
        return
    reason = skip_reason()
    if reason:
        print(json.dumps({"skipped": reason}))
        return
    load_start = os.getloadavg()
    args.end = int(time.time()) // args.scrape * args.scrape  # the daemon's first cycle
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        t0 = time.perf_counter()
        # An hour past now: both tools evaluate at the wall clock, minutes into the run.
        last = args.end + 3600
        samples = write_data(work / "data.om", args.slos, last, args.days, args.scrape)
        tsdb = backfill(work / "data.om", work / "tsdb")
        prepared = time.perf_counter() - t0
        with LocalPrometheus(tsdb) as server:
            out = measure(args, work, server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "machine": {
                    **machine(),
                    "load_average_at_start": [round(x, 2) for x in load_start],
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                },
                "data": {
                    "services": args.slos,
                    "series": 2 * args.slos,
                    "days": args.days,
                    "scrape_interval_s": args.scrape,
                    "samples": samples,
                    "write_and_backfill_s": round(prepared, 1),
                },
                **{k: public(v) for k, v in out.items()},
                **summarize(out),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
