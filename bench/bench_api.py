"""How fast does the HTTP API answer over real HTTP (uvicorn on loopback)? Prints JSON.

Scenario: 200 SLOs on 40 services (every status represented), 40 open incidents with
comments, the daemon's real Runtime (evaluator, incident engine, SQLite store) behind the
API after one cycle on a scripted source (tests/harness/api_runtime.py). Sequential requests
on one keep-alive connection; per endpoint the median and 95th percentile in milliseconds.

    python bench/bench_api.py [--requests N]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The test harness (harness.api_runtime) lives in tests/; this runs as a script from the root.
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from harness.api_runtime import (  # noqa: E402
    FakeClock,
    sample_runtime,
    serve,
    spec_documents,
    write_specs,
)
from harness.incidents import T0  # noqa: E402

from engine.api.app import create_app  # noqa: E402
from engine.api.security import load_tokens  # noqa: E402

SERVICES = 40
TOKEN = "bench-admin-token-0123456789"


def many_services(directory: Path, services: int) -> Path:
    """Spec files for `services` services svc00, svc01, ... each with the five SLO bodies of
    slo_specs/ renamed slo0…slo4 (service-level settings from the first spec file)."""
    documents = list(spec_documents().values())
    bodies = [slo for document in documents for slo in document["slos"]]
    header = {k: v for k, v in documents[0].items() if k not in ("slos", "depends_on")}
    generated: dict[str, dict[str, Any]] = {}
    for n in range(services):
        slos = [{**copy.deepcopy(body), "name": f"slo{i}"} for i, body in enumerate(bodies)]
        generated[f"svc{n:02d}.yaml"] = {**header, "service": f"svc{n:02d}", "slos": slos}
    return write_specs(directory, generated)


def measure(name: str, call: Any, requests: int) -> dict[str, float]:
    """Median and 95th percentile of `requests` sequential calls, in milliseconds."""
    call(-1)  # warm up
    times = []
    for i in range(requests):
        started = time.perf_counter()
        response = call(i)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (name, response.status_code)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 2),
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per endpoint (default 200)")
    args = parser.parse_args()
    # The runtime logs every incident it opens (40 here); keep the output to the numbers.
    logging.getLogger("engine").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    (work / "tokens").write_text(TOKEN + "\n")
    specs = many_services(work / "specs", SERVICES)
    clock = FakeClock(T0 + 600)
    runtime = sample_runtime(work, clock, T0, specs=specs)
    try:
        incidents = runtime.list_incidents("investigating", None)
        for incident in incidents:
            runtime.comment(incident.id, "bench", "update")
        app = create_app(
            runtime, load_tokens(work / "tokens"), rate_limit_per_s=1e6, burst=10**6, clock=clock
        )
        target = incidents[0].id
        out: dict[str, object] = {
            "slos": len(runtime.slo_results()),
            "open_incidents": len(incidents),
        }
        # Every read needs the read role: the client sends the token on every request.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with serve(app) as url, httpx.Client(base_url=url, headers=auth) as http:
            cases = {
                "GET /api/v1/slos": lambda i: http.get("/api/v1/slos"),
                "GET /api/v1/incidents": lambda i: http.get("/api/v1/incidents"),
                "GET /status": lambda i: http.get("/status"),
                "GET /metrics": lambda i: http.get("/metrics"),
                "POST comment (Idempotency-Key)": lambda i: http.post(
                    f"/api/v1/incidents/{target}/comment",
                    json={"text": f"update {i}"},
                    headers={"Idempotency-Key": f"k{i}"},
                ),
            }
            for name, call in cases.items():
                out[name] = measure(name, call, args.requests)
    finally:
        runtime.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
