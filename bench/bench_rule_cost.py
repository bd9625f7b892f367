"""Benchmark: what our generated rules cost Prometheus next to Sloth-style rules.

    .venv/bin/python bench/bench_rule_cost.py [--slos 200] [--days 30] [--minutes 12]

Prints one JSON document. Not a test: figures depend on the machine and its load, which is
recorded alongside them.

Same SLOs for both: `--slos` events SLOs over distinct services (`svc-<j>`), one selector
each, 99.9 % over 30 days, bad = `code="500"`, total = every request.

- Raw data: `http_requests_total{job, code}` for every service, `--days` of 60 s scrapes
  backfilled with `promtool tsdb create-blocks-from openmetrics`, then continued live: a
  small exporter in this process serves the same counters at the current time and the
  measuring Prometheus scrapes it every 60 s, so every window keeps its data however long
  the run lasts.
- Recorded history, so the period rollups are not free: `promtool tsdb create-blocks-from
  rules`, run against a Prometheus serving the raw data, records `--days` of the series
  each rollup reads — our period tiles (`slo:*_events:rate5m_every5m`, every 5 minutes)
  and Sloth's `slo:sli_error:ratio_rate5m` (every minute) — under the exact labels the
  live rules give them.
- Our rules: `service_rule_groups` (two groups per SLO: windows every minute with the
  alerts, period every 5 minutes). Sloth-style rules, written here from Sloth's documented
  rule shape: per SLO a recording group (`slo:sli_error:ratio_rate<w>` for 5m … 3d, each
  bad ÷ total straight from the raw counters, and `slo:sli_error:ratio_rate30d` as the mean
  of the 5m recording over 30 days), a meta group (objective, budget, period, current and
  period burn rate, budget remaining, info) and an alert group (page and ticket, two window
  pairs each); all every minute.
- Both sets load into one Prometheus (`evaluation_interval: 1m`) and run side by side for
  `--minutes`. Prometheus reports each group's last evaluation time
  (`prometheus_rule_group_last_duration_seconds`); /metrics is read every 15 s, and each
  group's figure is the median of its evaluations after its first. Printed: the sums per
  set (window and period groups both counted), per evaluation and per minute (a 5-minute
  group counts a fifth per minute), and ours ÷ Sloth's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_evaluate import machine  # noqa: E402
from sloth_style import sloth_groups  # noqa: E402

from engine.demo.openmetrics import open_openmetrics  # noqa: E402
from engine.evaluation.policy import policy_for  # noqa: E402
from engine.generate.pipeline import service_rule_groups  # noqa: E402
from engine.generate.range_reads import group_range_reads  # noqa: E402
from engine.generate.render import to_yaml  # noqa: E402
from engine.generate.rules import (  # noqa: E402
    PERIOD_GROUP_INTERVAL,
    bad_tile_metric,
    period_group_name,
    rolling_windows,
    slo_labels,
    tile_window,
    total_tile_metric,
)
from engine.source.localprom import LocalPrometheus, backfill, free_port  # noqa: E402
from engine.spec.models import SLO, ServiceSpec  # noqa: E402

SCRAPE = 60
DAY = 86_400
INSTANCE = "bench"
SLO_NAME = "availability"
METRIC = "http_requests_total"


# --------------------------------------------------------------------------- SLOs and data


def make_slos(n: int) -> list[SLO]:
    w = "{{window}}"
    slos: list[SLO] = []
    for j in range(n):
        sel = f'job="svc-{j}"'
        spec = {
            "apiVersion": "slo-engine/v1",
            "service": f"svc-{j}",
            "slos": [
                {
                    "name": SLO_NAME,
                    "objective": 99.9,
                    "sli": {
                        "events": {
                            "bad": f'sum(rate({METRIC}{{{sel},code="500"}}[{w}]))',
                            "total": f"sum(rate({METRIC}{{{sel}}}[{w}]))",
                        }
                    },
                }
            ],
        }
        slos.extend(ServiceSpec.model_validate(spec).slo_records())
    return slos


class Traffic:
    """Counters as closed-form functions of time, so the backfill and the live exporter
    continue each other exactly: requests at r·(1 + 0.3·sin(2πt/day)) per second, a
    fixed share of them errors, per service."""

    def __init__(self, n: int, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        self.rps = rng.uniform(1, 100, n)
        self.error_share = rng.uniform(0.0001, 0.005, n)
        self.phase = rng.uniform(0, DAY, n)

    def requests(self, j: int, t: np.ndarray) -> np.ndarray:
        """Requests since the epoch up to t (seconds): the integral of the rate."""
        k = 2 * math.pi / DAY
        x = t + self.phase[j]
        return self.rps[j] * (x - 0.3 / k * np.cos(k * x))

    def counters(self, j: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = self.requests(j, t) - self.requests(j, np.zeros(1))
        errors = np.floor(total * self.error_share[j])
        return np.floor(total) - errors, errors


def series_labels(j: int, code: str) -> dict[str, str]:
    return {"job": f"svc-{j}", "code": code, "instance": INSTANCE}


def write_raw(path: Path, traffic: Traffic, n: int, start: int, end: int) -> int:
    ts = np.arange(start, end + 1, SCRAPE, dtype=np.int64)
    with open_openmetrics(path) as writer:
        writer.family("http_requests", "counter", "Synthetic requests.")
        for j in range(n):
            ok, errors = traffic.counters(j, ts.astype(np.float64))
            writer.series(METRIC, series_labels(j, "200"), ts, ok.astype(np.int64))
            writer.series(METRIC, series_labels(j, "500"), ts, errors.astype(np.int64))
        return writer.samples


class Exporter:
    """Serves the counters at the current time on 127.0.0.1 (honour_labels keeps ours)."""

    def __init__(self, traffic: Traffic, n: int) -> None:
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server calls it by this name
                body = outer.exposition(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.traffic, self.n = traffic, n
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def exposition(self, now: float) -> str:
        lines = [f"# TYPE {METRIC} counter"]
        for j in range(self.n):
            ok, errors = self.traffic.counters(j, np.array([now]))
            for code, value in (("200", ok[0]), ("500", errors[0])):
                labels = ",".join(f'{k}="{v}"' for k, v in series_labels(j, code).items())
                lines.append(f"{METRIC}{{{labels}}} {int(value)}")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- history


def _relabel(expr: str, labels: dict[str, str]) -> str:
    """`expr` with constant labels added (label_replace from `job`, which every series
    has; `$1` is the job's name)."""
    for name, value in labels.items():
        expr = f'label_replace({expr}, "{name}", "{value}", "job", "(.*)")'
    return expr


def history_rules(path: Path, slos: list[SLO]) -> Path:
    """One rule per recorded series the rollups read, for all SLOs at once: the labels of
    each SLO's series come from its job via label_replace (every SLO here is
    `svc-<j>/availability`, so the pattern is uniform)."""
    policy = policy_for(slos[0])
    tile = tile_window(policy)
    ours = {k: v for k, v in slo_labels(slos[0]).items() if k not in ("service", "slo")}
    ours_from_job = {"service": "$1", "slo": f"$1/{SLO_NAME}"}
    sloth_from_job = {"sloth_id": f"$1-{SLO_NAME}", "sloth_service": "$1", "sloth_slo": SLO_NAME}

    def rate(code: str | None, by: dict[str, str]) -> str:
        matcher = f'{{code="{code}"}}' if code else ""
        inner = _relabel(f"rate({METRIC}{matcher}[{tile}])", by)
        return f"sum by ({', '.join(by)}) ({inner})"

    groups = [
        {
            "name": "history-ours",
            "interval": str(PERIOD_GROUP_INTERVAL),
            "rules": [
                {
                    "record": total_tile_metric(tile),
                    "expr": rate(None, ours_from_job),
                    "labels": ours,
                },
                {
                    "record": bad_tile_metric(tile),
                    "expr": rate("500", ours_from_job),
                    "labels": ours,
                },
            ],
        },
        {
            "name": "history-sloth",
            "interval": "1m",
            "rules": [
                {
                    "record": f"slo:sli_error:ratio_rate{rolling_windows(policy)[0]}",
                    "expr": f"{rate('500', sloth_from_job)}\n/\n{rate(None, sloth_from_job)}",
                    "labels": {"sloth_window": str(rolling_windows(policy)[0])},
                }
            ],
        },
    ]
    path.write_text(to_yaml({"groups": groups}))
    return path


def backfill_history(rules: Path, tsdb: Path, start: int, end: int, workdir: Path) -> float:
    """`promtool tsdb create-blocks-from rules` against a Prometheus on the raw data; the
    blocks then move into `tsdb`."""
    out = workdir / "history-blocks"
    out.mkdir()
    t0 = time.perf_counter()
    command = ["promtool", "tsdb", "create-blocks-from", "rules", "--quiet"]
    with LocalPrometheus(tsdb) as server:
        command += [
            f"--url={server.url}",
            f"--start={start}",
            f"--end={end}",
            f"--output-dir={out}",
        ]
        proc = subprocess.run([*command, str(rules)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"promtool create-blocks-from rules failed:\n{proc.stderr}{proc.stdout}")
    for block in out.iterdir():
        if block.is_dir():
            shutil.move(str(block), tsdb / block.name)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- measuring


def group_metrics(url: str) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Per rule group (name): (last evaluation timestamp, last duration); and counters."""
    groups: dict[str, list[float]] = {}
    counters: dict[str, float] = {}
    for line in requests.get(f"{url}/metrics", timeout=60).text.splitlines():
        for metric, slot in (
            ("prometheus_rule_group_last_evaluation_timestamp_seconds{", 0),
            ("prometheus_rule_group_last_duration_seconds{", 1),
        ):
            if line.startswith(metric):
                name = line.split('rule_group="', 1)[1].split('"', 1)[0].split(";", 1)[1]
                groups.setdefault(name, [0.0, 0.0])[slot] = float(line.rsplit(" ", 1)[1])
        for counter in (
            "process_cpu_seconds_total",
            "prometheus_rule_evaluation_failures_total",
            "prometheus_tsdb_compactions_total",
            "prometheus_tsdb_vertical_compactions_total",
        ):
            if line.startswith(counter + " ") or line.startswith(counter + "{"):
                counters[counter] = counters.get(counter, 0.0) + float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in groups.items()}, counters


def observe(url: str, minutes: float) -> tuple[dict[str, list[float]], dict[str, float], dict]:
    """Every distinct evaluation of every group over `minutes`: {group: [durations]}."""
    seen: dict[str, dict[float, float]] = {}
    first: dict[str, float] = {}
    last_sample: dict[str, float] = {}
    deadline = time.monotonic() + minutes * 60
    while True:
        groups, counters = group_metrics(url)
        first = first or counters
        for name, (at, duration) in groups.items():
            if at > 0:
                seen.setdefault(name, {})[at] = duration
        last_sample = {name: duration for name, (at, duration) in groups.items() if at > 0}
        if time.monotonic() > deadline:
            break
        time.sleep(15)
    delta = {k: counters.get(k, 0.0) - first.get(k, 0.0) for k in counters}
    runs = {name: [d for _, d in sorted(evals.items())] for name, evals in seen.items()}
    return runs, delta, last_sample


def summarize(runs: dict[str, list[float]], names: list[str]) -> dict[str, Any]:
    """Sum over groups of each group's median evaluation after its first."""
    medians = []
    evaluations = []
    for name in names:
        durations = runs.get(name, [])
        evaluations.append(len(durations))
        steady = durations[1:] or durations
        if steady:
            medians.append(statistics.median(steady))
    return {
        "groups": len(names),
        "groups_measured": len(medians),
        "evaluations_per_group_min": min(evaluations, default=0),
        "sum_seconds": round(sum(medians), 4),
        "median_group_ms": round(1000 * statistics.median(medians), 3) if medians else None,
        "max_group_ms": round(1000 * max(medians), 3) if medians else None,
    }


def raw_reads(groups: list[dict[str, Any]]) -> int:
    """Ranges over raw series the groups read per evaluation (engine.generate.range_reads)."""
    return sum(not r.recorded for g in groups for r in group_range_reads(g))


def compare(
    runs: dict[str, list[float]],
    last: dict[str, float],
    ours: list[dict[str, Any]],
    sloth: list[dict[str, Any]],
    period_names: set[str],
) -> dict[str, Any]:
    """Ours against Sloth's: per evaluation of every group, and per minute (a period
    group runs every 5 minutes, so it counts a fifth per minute)."""
    names = {
        "ours_window": [g["name"] for g in ours if g["name"] not in period_names],
        "ours_period": [g["name"] for g in ours if g["name"] in period_names],
        "sloth_style": [g["name"] for g in sloth],
    }
    result = {key: summarize(runs, group_names) for key, group_names in names.items()}
    window, period = result["ours_window"]["sum_seconds"], result["ours_period"]["sum_seconds"]
    ours_sum, per_minute = window + period, window + period / 5
    sloth_sum = result["sloth_style"]["sum_seconds"]
    last_ours = sum(last.get(n, 0.0) for n in names["ours_window"] + names["ours_period"])
    last_sloth = sum(last.get(n, 0.0) for n in names["sloth_style"])

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    return {
        "groups": result,
        "ours_seconds_per_evaluation": round(ours_sum, 4),
        "sloth_seconds_per_evaluation": round(sloth_sum, 4),
        "ratio_per_evaluation": ratio(ours_sum, sloth_sum),
        "ours_seconds_per_minute": round(per_minute, 4),
        "sloth_seconds_per_minute": round(sloth_sum, 4),
        "ratio_per_minute": ratio(per_minute, sloth_sum),
        "last_sample": {
            "ours_sum_seconds": round(last_ours, 4),
            "sloth_sum_seconds": round(last_sloth, 4),
            "ratio": ratio(last_ours, last_sloth),
        },
        "target_met": bool(sloth_sum) and ours_sum <= sloth_sum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=12)
    args = parser.parse_args()

    report: dict[str, Any] = {
        "machine": machine(),
        "load_before": os.getloadavg(),
        "slos": args.slos,
        "days": args.days,
    }
    slos = make_slos(args.slos)
    ours = service_rule_groups(slos)
    sloth = [g for slo in slos for g in sloth_groups(slo)]
    period_names = {period_group_name(s) for s in slos}
    report["raw_range_reads_per_slo_and_evaluation"] = {
        "ours_window": raw_reads([g for g in ours if g["name"] not in period_names]) / len(slos),
        "ours_period": raw_reads([g for g in ours if g["name"] in period_names]) / len(slos),
        "sloth_style": raw_reads(sloth) / len(slos),
    }
    report["rules_per_slo"] = {
        "ours": sum(len(g["rules"]) for g in ours) / len(slos),
        "sloth_style": sum(len(g["rules"]) for g in sloth) / len(slos),
    }
    traffic = Traffic(args.slos)
    with (
        tempfile.TemporaryDirectory(prefix="bench-rule-cost-") as tmp,
        Exporter(traffic, args.slos) as exporter,
    ):
        work = Path(tmp)
        end = int(time.time()) - 2 * SCRAPE
        start = end - args.days * DAY
        t0 = time.perf_counter()
        samples = write_raw(work / "raw.om", traffic, args.slos, start, end)
        tsdb = backfill(work / "raw.om", work / "tsdb")
        (work / "raw.om").unlink()
        report["raw"] = {"samples": samples, "seconds": round(time.perf_counter() - t0, 1)}
        history = history_rules(work / "history.yml", slos)
        seconds = backfill_history(history, tsdb, start + 3600, end, work)
        report["history_backfill_seconds"] = round(seconds, 1)

        (work / "ours.yml").write_text(to_yaml({"groups": ours}))
        (work / "sloth.yml").write_text(to_yaml({"groups": sloth}))
        scrape = {
            "job_name": "bench",
            "honor_labels": True,
            "scrape_interval": f"{SCRAPE}s",
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
        }
        server = LocalPrometheus(
            tsdb,
            rule_files=[work / "ours.yml", work / "sloth.yml"],
            evaluation_interval="1m",
            scrape_configs=[scrape],
            ready_timeout=300,
        )
        with server:
            report["load_at_start"] = os.getloadavg()
            runs, counters, last = observe(server.url, args.minutes)
    report.update(compare(runs, last, ours, sloth, period_names))
    report["prometheus_counters_during_run"] = counters
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
