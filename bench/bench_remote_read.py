"""Would Prometheus remote read fetch backtest history faster than `query_range`?

    python bench/bench_remote_read.py [--jobs 100] [--days 7] [--repeats 2]

Needs the Prometheus binaries. Prints one JSON object.

Backfills 2 × `--jobs` counter series (`bench_requests_total{job, code="200"|"500"}`, 60 s
scrape, every tenth series with counter resets) through the harness writer into a real
Prometheus, then fetches the same series over the same span three ways:

a. **remote read** (`POST /api/v1/read`, snappy-compressed protobuf, SAMPLES response):
   raw samples, decoded with the package's prompb message classes (engine.source.prompb),
   then per-step increases computed client-side with Prometheus 2.x `rate()` semantics
   (engine.source.counter_math: counter resets, extrapolation) in numpy;
b. **query_range of per-step rates** through `PrometheusSource.fetch` — what backtest does
   today (`sum by (job) (rate(x[1m]))` groups);
c. **query_range of the raw selector** (JSON) — the apples-to-apples raw comparison.

Each is chunked by day and timed `--repeats` times (best and all runs reported).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.source.counter_math import extrapolated_increase
from engine.source.prompb import prompb_classes
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 UTC, a multiple of 60 s: scrapes sit on step edges
SCRAPE = 60
METRIC = "bench_requests_total"
STEP = Duration.parse("1m")


# --------------------------------------------------------------------------- the data
def write_history(path: Path, jobs: list[str], days: int, seed: int = 11) -> tuple[Path, int]:
    from engine.demo.openmetrics import open_openmetrics

    rng = np.random.default_rng(seed)
    ts = T0 + SCRAPE * np.arange(days * DAY // SCRAPE + 1, dtype=np.int64)
    k = 0
    with open_openmetrics(path) as writer:
        writer.family("bench_requests", "counter", "Synthetic requests for the remote-read bench.")
        for job in jobs:
            rps = rng.uniform(1, 50)
            for code, share in (("200", 0.999), ("500", 0.001)):
                values = np.cumsum(rng.poisson(rps * share * SCRAPE, ts.size)).astype(np.float64)
                if k % 10 == 0:  # restarts: the counter drops to 0 and counts on
                    for at in sorted(rng.integers(ts.size // 10, ts.size, 3)):
                        values[at:] -= values[at - 1]
                writer.series(METRIC, {"job": job, "code": code}, ts, values)
                k += 1
        samples = writer.samples
    return path, samples


def slos_for(jobs: list[str]) -> list[SLO]:
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "bench",
            "tier": "standard",
            "slos": [
                {
                    "name": job,
                    "objective": 99.9,
                    "sli": {
                        "events": {
                            "bad": f'sum(rate({METRIC}{{job="{job}",code="500"}}[{{{{window}}}}]))',
                            "total": f'sum(rate({METRIC}{{job="{job}"}}[{{{{window}}}}]))',
                        }
                    },
                }
                for job in jobs
            ],
        }
    )
    return spec.slo_records()


# ------------------------------------------------------------------------- the fetchers
def day_chunks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end] in one-day pieces that do not overlap (seconds, both ends included)."""
    edges = [*range(start, end, DAY), end]
    return [(lo if i == 0 else lo + 1, hi) for i, (lo, hi) in enumerate(itertools.pairwise(edges))]


def remote_read(url: str, start: int, end: int, classes: dict[str, type]) -> dict:
    import cramjam

    read_request, read_response = classes["ReadRequest"], classes["ReadResponse"]
    wire = raw = 0
    t_http = t_decode = 0.0
    parts: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    session = requests.Session()
    t_all = time.perf_counter()
    for lo, hi in day_chunks(start, end):
        req = read_request()
        q = req.queries.add(start_timestamp_ms=lo * 1000, end_timestamp_ms=hi * 1000)
        q.matchers.add(type=0, name="__name__", value=METRIC)
        req.accepted_response_types.append(0)  # SAMPLES
        t0 = time.perf_counter()
        r = session.post(
            f"{url}/api/v1/read",
            data=bytes(cramjam.snappy.compress_raw(req.SerializeToString())),
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Read-Version": "0.1.0",
            },
            timeout=300,
        )
        r.raise_for_status()
        body = r.content
        t1 = time.perf_counter()
        decoded = bytes(cramjam.snappy.decompress_raw(body))
        response = read_response.FromString(decoded)
        for series in response.results[0].timeseries:
            labels = {label.name: label.value for label in series.labels}
            n = len(series.samples)
            t_ms = np.fromiter((s.timestamp for s in series.samples), np.int64, n)
            v = np.fromiter((s.value for s in series.samples), np.float64, n)
            parts.setdefault((labels["job"], labels["code"]), []).append((t_ms, v))
        t_http += t1 - t0
        t_decode += time.perf_counter() - t1
        wire += len(body)
        raw += len(decoded)
    series = {
        key: (np.concatenate([p[0] for p in chunks]), np.concatenate([p[1] for p in chunks]))
        for key, chunks in parts.items()
    }
    t_fetched = time.perf_counter()
    # Per-step rates like backtest's: each step t averages (t − 1m, t], from the raw samples.
    first = start + STEP.seconds
    eval_ms = (first + STEP.seconds * np.arange((end - first) // STEP.seconds + 1)) * 1000
    rates = {
        key: extrapolated_increase(t_ms, v, eval_ms, STEP.ms) / STEP.seconds
        for key, (t_ms, v) in series.items()
    }
    t_rates = time.perf_counter() - t_fetched
    return {
        "seconds_total": time.perf_counter() - t_all,
        "seconds_http": t_http,
        "seconds_decode": t_decode,
        "seconds_client_rate": t_rates,
        "bytes_wire": wire,
        "bytes_decoded": raw,
        "series": len(series),
        "samples": int(sum(v[0].size for v in series.values())),
        "requests": len(day_chunks(start, end)),
        "_series": series,
        "_rates": rates,
        "_eval_ms": eval_ms,
    }


def raw_query_range(url: str, start: int, end: int) -> dict:
    session = requests.Session()
    wire = raw = samples = 0
    t_http = 0.0
    n_series: set[str] = set()
    t0 = time.perf_counter()
    for lo, hi in day_chunks(start, end):
        # Each chunk starts on the scrape grid so every raw sample is one point.
        lo = -(-lo // SCRAPE) * SCRAPE
        t1 = time.perf_counter()
        r = session.get(
            f"{url}/api/v1/query_range",
            params={"query": METRIC, "start": lo, "end": hi, "step": SCRAPE},
            headers={"Accept-Encoding": "gzip"},
            stream=True,
            timeout=300,
        )
        r.raise_for_status()
        body = r.raw.read(decode_content=False)
        t_http += time.perf_counter() - t1
        if r.headers.get("Content-Encoding") == "gzip":
            text = gzip.decompress(body)
        elif r.headers.get("Content-Encoding") == "deflate":
            text = zlib.decompress(body)
        else:
            text = body
        payload = json.loads(text)
        for s in payload["data"]["result"]:
            points = np.asarray(s["values"], dtype=np.float64).reshape(-1, 2)
            samples += points.shape[0]
            n_series.add(json.dumps(s["metric"], sort_keys=True))
        wire += len(body)
        raw += len(text)
    total = time.perf_counter() - t0
    return {
        "seconds_total": total,
        "seconds_http": t_http,
        "seconds_decode": total - t_http,
        "bytes_wire": wire,
        "bytes_decoded": raw,
        "series": len(n_series),
        "samples": samples,
        "requests": len(day_chunks(start, end)),
    }


def rates_query_range(
    url: str, slos: list[SLO], start: int, end: int, remote_read: bool = False
) -> dict:
    from engine.source.prometheus import PrometheusSource

    source = PrometheusSource(url, timeout=300, remote_read=remote_read)
    counted = {"wire": 0}

    # Count the bytes from outside: a response hook on the source's own session.
    def hook(response: requests.Response, *args: object, **kwargs: object) -> None:
        # Content-Length is the wire size when sent; else requests' decoded body length.
        length = response.headers.get("Content-Length")
        counted["wire"] += int(length) if length else len(response.content)

    session = getattr(source._client, "_session", None)
    if session is not None:
        session.hooks["response"].append(hook)
    t0 = time.perf_counter()
    rates = source.fetch(slos, STEP, start + STEP.seconds, end)
    seconds = time.perf_counter() - t0
    return {
        "seconds_total": seconds,
        "bytes_body": counted["wire"] if session is not None else None,
        "slos": len(slos),
        "steps": int(rates.times.size),
        "slo_steps": int(rates.times.size * len(slos)),
        "result_points": int(2 * rates.times.size * len(slos)),
        "requests": source.http_requests,
        "_rates": rates,
    }


# --------------------------------------------------------------------------- checks
def check_against_increase(server, series: dict, start: int, end: int) -> dict:
    """One series with resets: client-side increase vs Prometheus `increase()`."""
    key = next(k for k, (_, v) in series.items() if np.any(np.diff(v) < 0))
    t_ms, v = series[key]
    selector = f'{METRIC}{{job="{key[0]}",code="{key[1]}"}}'
    rng = np.random.default_rng(3)
    # On the step grid and off it (17 s past a scrape), so extrapolation is exercised.
    resets = t_ms[1:][np.diff(v) < 0] // 1000
    at = sorted(
        [int(x) for x in rng.integers(start + DAY, end - 3600, 4) // 60 * 60]
        + [int(x) + 17 for x in rng.integers(start + DAY, end - 3600, 4) // 60 * 60]
        + [int(r) + d for r in resets[:2] for d in (0, 17)]  # windows holding a reset
    )
    worst = 0.0
    rows = []
    for window in ("1m", "5m", "1h"):
        range_ms = Duration.parse(window).ms
        ours = extrapolated_increase(t_ms, v, np.asarray(at, dtype=np.int64) * 1000, range_ms)
        for when, mine in zip(at, ours, strict=True):
            theirs = server.query_value(f"increase({selector}[{window}])", when)
            if theirs is None or np.isnan(mine):
                agree = theirs is None and np.isnan(mine)
                rel = 0.0 if agree else float("inf")
            else:
                rel = abs(mine - theirs) / max(abs(theirs), 1e-12)
            worst = max(worst, rel)
            rows.append(
                {
                    "at": when,
                    "window": window,
                    "client": None if np.isnan(mine) else round(float(mine), 6),
                    "prometheus": None if theirs is None else round(theirs, 6),
                }
            )
    return {"series": selector, "checks": len(rows), "max_relative_difference": worst, "rows": rows}


def compare_with_source(remote: dict, fetched: dict, jobs: list[str]) -> dict:
    """Client-side per-step rates, summed by job, vs the source's StepRates."""
    rates = fetched["_rates"]
    eval_s = remote["_eval_ms"] / 1000
    if eval_s.shape != rates.times.shape or not np.allclose(eval_s, rates.times):
        return {"comparable": False}
    worst = 0.0
    mismatched_nan = 0
    for row, job in enumerate(jobs):
        bad = remote["_rates"][(job, "500")]
        total = bad + remote["_rates"][(job, "200")]
        for mine, theirs in ((bad, rates.bad[row]), (total, rates.total[row])):
            both = np.isfinite(mine) & np.isfinite(theirs)
            mismatched_nan += int(np.sum(np.isfinite(mine) != np.isfinite(theirs)))
            denom = np.maximum(np.abs(theirs[both]), 1e-12)
            if both.any():
                worst = max(worst, float(np.max(np.abs(mine[both] - theirs[both]) / denom)))
    return {"max_relative_difference": worst, "steps_where_only_one_has_data": mismatched_nan}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds_total"])


def public(run: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items() if k[0] != "_"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100, help="two counter series per job")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from engine.source.localprom import LocalPrometheus, backfill, skip_reason

    reason = skip_reason()
    try:
        import cramjam  # noqa: F401
    except ImportError:
        reason = (
            reason
            or "cramjam is not installed (it is a dependency of slo-engine: pip install -e .)"
        )
    if reason:
        print(json.dumps({"skipped": reason}))
        return

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    jobs = [f"job{i:04d}" for i in range(args.jobs)]
    start, end = T0, T0 + args.days * DAY
    classes = prompb_classes()
    work = Path(tempfile.mkdtemp(prefix="bench-remote-read-"))
    try:
        t0 = time.perf_counter()
        om, written = write_history(work / "data.om", jobs, args.days)
        tsdb = backfill(om, work / "tsdb")
        backfill_s = time.perf_counter() - t0
        with LocalPrometheus(tsdb) as server:
            # Warm the block index and page cache once so the first method is not penalised.
            raw_query_range(server.url, start, end)
            remote_runs, raw_runs, rate_runs, package_runs = [], [], [], []
            for _ in range(args.repeats):
                remote_runs.append(remote_read(server.url, start, end, classes))
                raw_runs.append(raw_query_range(server.url, start, end))
                rate_runs.append(rates_query_range(server.url, slos_for(jobs), start, end))
                package_runs.append(
                    rates_query_range(server.url, slos_for(jobs), start, end, remote_read=True)
                )
            remote, raw, rates = best(remote_runs), best(raw_runs), best(rate_runs)
            package = best(package_runs)
            package_check = compare_with_source(remote, package, jobs)
            increase_check = check_against_increase(server, remote["_series"], start, end)
            source_check = compare_with_source(remote, rates, jobs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for run in (remote, raw):
        run["samples_per_second"] = round(run["samples"] / run["seconds_total"])
    slo_steps = rates["slo_steps"]
    out = {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "data": {
            "series": 2 * args.jobs,
            "days": args.days,
            "scrape_interval": f"{SCRAPE}s",
            "samples_written": written,
            "backfill_seconds": round(backfill_s, 1),
            "series_with_counter_resets": sum(
                1 for _, v in remote["_series"].values() if np.any(np.diff(v) < 0)
            ),
        },
        "a_remote_read_raw_samples_plus_client_rate": {
            **public(remote),
            "seconds_per_million_slo_steps": round(remote["seconds_total"] / slo_steps * 1e6, 3),
            "runs_seconds": [round(r["seconds_total"], 3) for r in remote_runs],
        },
        "b_query_range_per_step_rates_prometheus_source": {
            **public(rates),
            "seconds_per_million_slo_steps": round(rates["seconds_total"] / slo_steps * 1e6, 3),
            "runs_seconds": [round(r["seconds_total"], 3) for r in rate_runs],
        },
        "c_query_range_raw_selector_json": {
            **public(raw),
            "runs_seconds": [round(r["seconds_total"], 3) for r in raw_runs],
        },
        "d_prometheus_source_remote_read_the_package_path": {
            **public(package),
            "seconds_per_million_slo_steps": round(package["seconds_total"] / slo_steps * 1e6, 3),
            "runs_seconds": [round(r["seconds_total"], 3) for r in package_runs],
        },
        "ratios": {
            "per_step_rates_query_range_over_package_remote_read": round(
                rates["seconds_total"] / package["seconds_total"], 2
            ),
            "raw_json_over_remote_read_http_plus_decode": round(
                raw["seconds_total"] / (remote["seconds_http"] + remote["seconds_decode"]), 2
            ),
            "per_step_rates_query_range_over_remote_read_incl_client_rate": round(
                rates["seconds_total"] / remote["seconds_total"], 2
            ),
            "wire_bytes_raw_json_over_remote_read": round(
                raw["bytes_wire"] / remote["bytes_wire"], 2
            ),
        },
        "semantics": {
            "client_increase_vs_prometheus_increase": increase_check,
            "client_per_step_rates_vs_prometheus_source": source_check,
            "client_per_step_rates_vs_package_remote_read": package_check,
        },
        "notes": [
            "(a) and (c) run one request per day, sequentially; (b) is PrometheusSource as "
            "configured by default (its own batching, 4 worker threads).",
            "(a) seconds_total includes HTTP, snappy + protobuf decode (pure-Python access to "
            "upb messages) and the client-side per-step rates; (c) includes gzip + JSON decode.",
            "(b) gets sum by (job) from the server: one point per SLO side per step; (a) ships "
            "every matching raw series (here exactly two per SLO; a real metric with instance, "
            "method or route labels ships many more).",
            "Wire bytes: query_range answers are gzip-compressed, remote read is snappy, which "
            "compresses less.",
        ],
        "what_remote_read_can_and_cannot_replace": [
            "It returns raw samples for plain label-matcher selectors only: no PromQL, no "
            "aggregation, no functions on the server.",
            "It can replace query_range only for SLIs whose atoms are sum(rate|increase("
            "metric{matchers}[w])) — the planner's grouped atoms — by matching the series and "
            "summing client-side; regex matchers translate, but every matching series is "
            "shipped (no server-side sum by), so many-label metrics cost more bytes.",
            "Arbitrary PromQL SLIs (opaque expressions, subqueries, recording-rule math, "
            "histogram_quantile, *_over_time on expressions) still need query_range.",
            "Client-side rate must reproduce Prometheus 2.x extrapolatedRate (inclusive range "
            "ends, resets, extrapolation threshold 1.1 × average gap, no extrapolation below "
            "zero); the checks above measure the difference. Prometheus 3 changed range "
            "boundaries (left-open), so the client must follow the server's version.",
            "SAMPLES responses are built in server memory (remote_read_sample_limit, "
            "default 5e7 samples per query), so it must be chunked; STREAMED_XOR_CHUNKS "
            "avoids that but needs a Gorilla/XOR chunk decoder on the client.",
        ],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
