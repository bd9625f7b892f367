"""How fast does the HTTP API answer over real HTTP (uvicorn on loopback)? Prints JSON.

Scenario: 200 SLOs on 40 services (every status represented), 40 open incidents with
comments, the real incident engine and SQLite store behind the API. Sequential requests on
one keep-alive connection; per endpoint the median and 95th percentile in milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from harness.api_runtime import FakeClock, StoreRuntime, sample_results, serve
from harness.incidents import T0

from engine.alerting.alerts import alerts_from_evaluations
from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.spec.loader import load_specs
from engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = 200
TOKEN = "bench-admin-token-0123456789"


def main() -> None:
    base = load_specs([ROOT / "slo_specs"]).slos
    slos = [
        dataclasses.replace(base[i % len(base)], service=f"svc{i // 5:02d}", name=f"slo{i % 5}")
        for i in range(200)
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    (work / "tokens").write_text(TOKEN + "\n")
    clock = FakeClock(T0 + 600)
    runtime = StoreRuntime(SQLiteStore(work / "incidents.sqlite3"), clock=clock)
    results = sample_results(slos, T0)
    runtime.set_results(results)
    runtime.observe(alerts_from_evaluations(results), now=T0)
    incidents = runtime.list_incidents("investigating", None)
    for incident in incidents:
        runtime.comment(incident.id, "bench", "update")
    app = create_app(
        runtime, load_tokens(work / "tokens"), rate_limit_per_s=1e6, burst=10**6, clock=clock
    )
    target = incidents[0].id
    out: dict[str, object] = {"slos": len(slos), "open_incidents": len(incidents)}
    with serve(app) as url, httpx.Client(base_url=url) as http:
        cases = {
            "GET /api/v1/slos": lambda i: http.get("/api/v1/slos"),
            "GET /api/v1/incidents": lambda i: http.get("/api/v1/incidents"),
            "GET /status": lambda i: http.get("/status"),
            "GET /metrics": lambda i: http.get("/metrics"),
            "POST comment (Idempotency-Key)": lambda i: http.post(
                f"/api/v1/incidents/{target}/comment",
                json={"by": "bench", "text": f"update {i}"},
                headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": f"k{i}"},
            ),
        }
        for name, call in cases.items():
            call(-1)  # warm up
            times = []
            for i in range(REQUESTS):
                started = time.perf_counter()
                response = call(i)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (name, response.status_code)
            times.sort()
            out[name] = {
                "median_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                "bytes": len(response.content),
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
