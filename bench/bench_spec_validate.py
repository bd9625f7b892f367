"""How long `load_specs` takes for `--files` spec files (2 SLOs each), with and without
promtool, and with libyaml's parser or the pure-Python one; and, as `one_slo_files`, for
`--files` one-SLO files like the peers benchmark's (bench/bench_peers.py), loaded the way a
one-shot `evaluate` loads them: the CLI's GC threshold, promtool's parse left running
(`defer_promql`, its own process), best of `--repeats` (#18: 1,000 files under 0.3 s).

    .venv/bin/python bench/bench_spec_validate.py [--files 100] [--repeats 3]

Prints one JSON object (best of `--repeats`, in-process, after one warm-up load). The
promtool run is one process for all the queries, so its cost should stay a small constant
on top of YAML parsing and model validation.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from engine.spec import promql, yaml_lines
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent


def best_of(paths: list[Path], repeats: int) -> tuple[float, object]:
    result = load_specs(paths)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = load_specs(paths)
        runs.append(time.perf_counter() - started)
    return min(runs), result


def one_slo_files(count: int, repeats: int) -> dict[str, object]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_peers import engine_spec

    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)  # as engine.cli.main sets it
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(count):
                Path(tmp, f"svc-{i}.yaml").write_text(engine_spec(i))
            load_specs([Path(tmp)], defer_promql=True).settle()  # warm-up
            runs = []
            for _ in range(repeats):
                started = time.perf_counter()
                loaded = load_specs([Path(tmp)], defer_promql=True)
                runs.append(time.perf_counter() - started)
                loaded.settle()
    finally:
        gc.set_threshold(*thresholds)
    return {
        "files": count,
        "slos": len(loaded.slos),
        "errors": len(loaded.errors),
        "seconds_best": round(min(runs), 3),
        "seconds_median": round(sorted(runs)[len(runs) // 2], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    template = (ROOT / "slo_specs" / "api.yaml").read_text()
    out: dict[str, object] = {"files": args.files, "libyaml_available": yaml_lines.LIBYAML}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.files):
            text = template.replace("service: api", f"service: api{i}")
            Path(tmp, f"api{i}.yaml").write_text(text.replace("depends_on: [database]", ""))
        paths = [Path(tmp)]
        with_promtool, full = best_of(paths, args.repeats)
        original = promql.promtool_path
        promql.promtool_path = lambda: None
        try:
            without_promtool, _ = best_of(paths, args.repeats)
            libyaml = yaml_lines.LIBYAML
            yaml_lines.LIBYAML = False
            try:
                pure_python, _ = best_of(paths, args.repeats)
            finally:
                yaml_lines.LIBYAML = libyaml
        finally:
            promql.promtool_path = original
    out.update(
        {
            "slos": len(full.slos),  # type: ignore[attr-defined]
            "errors": len(full.errors),  # type: ignore[attr-defined]
            "promql_parsed": full.promql_parsed,  # type: ignore[attr-defined]
            "seconds_with_promtool": round(with_promtool, 3),
            "seconds_without_promtool": round(without_promtool, 3),
            "seconds_without_promtool_pure_python_yaml": round(pure_python, 3),
            "one_slo_files": one_slo_files(args.files, max(args.repeats, 7)),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
