"""Start-up cost of the CLI: whole-process times and what the imports cost.

    .venv/bin/python bench/bench_startup.py [--repeats 7] [--tree DIR] [--pythonpath DIR]

Prints one JSON object: the median and best wall time of `slo-engine validate one.yaml` and
of a one-shot `slo-engine evaluate` of one SLO against a local Prometheus (28 h of 30 s
scrapes), each a fresh process with Python's bytecode cached (as an installed package has
it; this workspace may set PYTHONDONTWRITEBYTECODE), plus the ten costliest imports of each
from `python -X importtime` (cumulative microseconds).

`--tree DIR` runs another checkout's `engine` (e.g. `git archive HEAD engine | tar -x -C
DIR`) and `--pythonpath` puts more packages first (e.g. prometheus-api-client 0.6 installed
with `pip install --target`), to measure a "before" on the same machine.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.demo.scenario import Scenario, ServiceLoad, write_openmetrics  # noqa: E402
from engine.source.localprom import LocalPrometheus, backfill, skip_reason  # noqa: E402

SPEC = """apiVersion: slo-engine/v1
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{job="api",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="api"}[{{window}}]))
"""


def env_for(work: Path, tree: str | None, pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    (work / "pycache").mkdir(exist_ok=True)
    paths = [p for p in (tree, pythonpath) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def timed(cmd: list[str], env: dict[str, str], repeats: int) -> dict[str, object]:
    cwd = env["PYTHONPYCACHEPREFIX"]  # not the checkout: `-m engine` would import it first
    subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=300, cwd=cwd)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=300, cwd=cwd)
        runs.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd} exited {done.returncode}: {done.stderr[-1500:]!r}")
    return {"median_s": round(statistics.median(runs), 3), "best_s": round(min(runs), 3)}


def costliest_imports(cmd: list[str], env: dict[str, str], top: int = 10) -> dict[str, int]:
    done = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]],
        env=env,
        capture_output=True,
        text=True,
        cwd=env["PYTHONPYCACHEPREFIX"],
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} exited {done.returncode}: {done.stderr[-1500:]}")
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, raw = line.split("|")
            if cumulative.strip().isdigit():
                top_level = len(raw) - len(raw.lstrip()) <= 1
                rows.append((int(cumulative), raw.strip(), top_level))
    total = sum(c for c, _, top_level in rows if top_level)
    found = {name: c for c, name, _ in sorted(rows, reverse=True)[:top]}
    return {"total_top_level_us": total, **found}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tree", default=None)
    parser.add_argument("--pythonpath", default=None)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(json.dumps({"skipped": reason}))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    (work / "one.yaml").write_text(SPEC)
    start = (int(time.time()) // 3600 - 30) * 3600
    data = Scenario(
        start=start,
        duration=28 * 3600,
        scrape_interval=30,
        services=[ServiceLoad(job="api", rps=10, error_ratio=0.001, slow_ratio=0.01)],
    )
    tsdb = backfill(write_openmetrics(data, work / "data.om"), work / "tsdb")
    env = env_for(work, args.tree, args.pythonpath)
    python = sys.executable
    load_start = os.getloadavg()
    with LocalPrometheus(tsdb) as server:
        validate = [python, "-m", "engine", "validate", str(work / "one.yaml")]
        evaluate = [
            python,
            "-m",
            "engine",
            "evaluate",
            "--specs",
            str(work / "one.yaml"),
            "--prometheus-url",
            server.url,
            "--at",
            str(start + 28 * 3600),
            "--format",
            "json",
        ]
        out = {
            "tree": args.tree or str(ROOT),
            "validate_one_file": timed(validate, env, args.repeats),
            "evaluate_one_slo": timed(evaluate, env, args.repeats),
            "imports_validate": costliest_imports(validate, env),
            "imports_evaluate": costliest_imports(evaluate, env),
        }
    out["load_average"] = {
        "start": [round(x, 2) for x in load_start],
        "end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
