"""How long `load_specs` takes for 100 spec files (200 SLOs), with and without promtool.

Prints one JSON object. The promtool run is one process for all 600 queries, so its cost
should stay a small constant on top of YAML parsing and model validation.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from engine.spec import promql
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    template = (ROOT / "slo_specs" / "api.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(100):
            text = template.replace("service: api", f"service: api{i}")
            Path(tmp, f"api{i}.yaml").write_text(text.replace("depends_on: [database]", ""))
        started = time.perf_counter()
        full = load_specs([Path(tmp)])
        with_promtool = time.perf_counter() - started
        original = promql.promtool_path
        promql.promtool_path = lambda: None
        try:
            started = time.perf_counter()
            load_specs([Path(tmp)])
            without_promtool = time.perf_counter() - started
        finally:
            promql.promtool_path = original
    print(
        json.dumps(
            {
                "files": 100,
                "slos": len(full.slos),
                "errors": len(full.errors),
                "promql_parsed": full.promql_parsed,
                "seconds_with_promtool": round(with_promtool, 3),
                "seconds_without_promtool": round(without_promtool, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
