"""The backtest corpus measured: every case of tests/corpus/scenarios.py replayed through a
real Prometheus, with the SRE Workbook's four measures per case.

    python bench/bench_corpus.py [--json FILE] [--markdown FILE]

Backfills the corpus (noisy counters, 15 s scrapes, three days of history and 36 replayed
hours) into a throwaway Prometheus, runs `backtest`'s own path (`fetch_history` → `replay`,
1m steps, the default incident config), and prints one JSON object — per case the incidents,
notifications, alerts and the four measures per policy — then the markdown table of
docs/backtest.md ("The corpus"). tests/test_backtest_corpus.py asserts the same figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The corpus lives with the tests (tests/corpus/); this runs as a script from the root.
sys.path.insert(0, str(ROOT / "tests"))

from corpus.counters import write_corpus  # noqa: E402
from corpus.measure import markdown, measure  # noqa: E402
from corpus.scenarios import END, HISTORY, START, cases, corpus, specs  # noqa: E402

from engine.backtest.replay import ReplayResult, fetch_history, make_plan, replay  # noqa: E402
from engine.demo.openmetrics import open_openmetrics  # noqa: E402
from engine.source.localprom import LocalPrometheus, backfill  # noqa: E402
from engine.source.prometheus import PrometheusSource  # noqa: E402
from engine.spec.durations import Duration  # noqa: E402
from engine.spec.loader import load_specs  # noqa: E402


def run_corpus(workdir: Path) -> tuple[ReplayResult, dict[str, float]]:
    """Backfill, serve and replay the whole corpus; (result, seconds per phase)."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    with open_openmetrics(workdir / "corpus.om") as writer:
        write_corpus(writer, corpus())
    tsdb = backfill(workdir / "corpus.om", workdir / "tsdb")
    timings["write_and_backfill"] = time.perf_counter() - t
    spec_dir = workdir / "specs"
    spec_dir.mkdir()
    for name, text in specs(cases()).items():
        (spec_dir / name).write_text(text)
    loaded = load_specs([spec_dir])
    if loaded.errors:
        raise SystemExit(f"corpus specs invalid: {loaded.errors}")
    server = LocalPrometheus(tsdb).start()
    try:
        t = time.perf_counter()
        plan = make_plan(loaded.slos, START, END, Duration.parse("1m"), Duration(HISTORY * 1000))
        rates = fetch_history(PrometheusSource(server.url, timeout=60), loaded.slos, plan)
        timings["fetch"] = time.perf_counter() - t
        t = time.perf_counter()
        result = replay(loaded.slos, rates, plan)
        timings["replay"] = time.perf_counter() - t
    finally:
        server.cleanup()
    return result, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slo-corpus-") as tmp:
        result, timings = run_corpus(Path(tmp))
    rows = [measure(result, case) for case in cases()]
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": platform.machine()},
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "cases": rows,
    }
    text = json.dumps(report, indent=2)
    table = markdown(rows)
    print(text)
    print(table)
    if args.json:
        args.json.write_text(text + "\n")
    if args.markdown:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
