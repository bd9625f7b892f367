"""The API over the daemon's REAL Runtime: a real Prometheus with backfilled traffic (an api
outage), the real evaluator, incident engine and SQLite store — then Prometheus stops."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, daemon_config, serve
from harness.browser import chromium_binary, dump_dom
from prometheus_client.parser import text_string_to_metric_families

from engine.api.app import create_app
from engine.api.deps import Access
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime
from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad

pytestmark = pytest.mark.prometheus

ADMIN = "admin-token-Zq8w3n5v9k2m"
HOUR, DAY = 3600, 86400
START = (int(time.time()) // HOUR - 3 * 24 - 10) * HOUR
DURATION = 3 * DAY + 8 * HOUR
SCENARIO = Scenario(
    start=START,
    duration=DURATION,
    scrape_interval=15,
    services=[
        ServiceLoad(
            job="api",
            rps=20,
            error_ratio=0.0005,
            slow_ratio=0.002,
            # The last hour: 5 % of requests fail — well past the 1h/5m page threshold.
            incidents=[Incident(DURATION - HOUR, DURATION + HOUR, error_ratio=0.05)],
        )
    ],
    database=DatabaseLoad(),
)


def daemon_runtime(tmp_path: Path, prometheus_url: str, clock: FakeClock) -> Runtime:
    # The harness's daemon config (no receivers, no dependency hold-down), real Prometheus.
    config = daemon_config(tmp_path, prometheus_url=prometheus_url, interval="30s", query_retries=0)
    return Runtime(config, clock=clock, notifiers={})


def test_api_and_status_page_over_the_real_runtime(prometheus_for, tmp_path: Path):
    server = prometheus_for(SCENARIO)
    at = float(START + DURATION)
    clock = FakeClock(at)
    runtime = daemon_runtime(tmp_path, server.url, clock)
    try:
        report = runtime.run_cycle(at)
        assert report.source_error is None
        tokens_file = tmp_path / "tokens"
        # The token's name is the actor of what it changes (issue 13: never a body field).
        tokens_file.write_text(f"{ADMIN} name=alice\n")
        client = TestClient(
            create_app(runtime, load_tokens(tokens_file), clock=clock),
            headers={"Authorization": f"Bearer {ADMIN}"},
        )

        # The evaluate contract, straight from the runtime's latest cycle.
        slos = client.get("/api/v1/slos").json()
        assert slos["slos"] == [r.to_json() for r in runtime.slo_results()]
        by_id = {s["id"]: s for s in slos["slos"]}
        api = by_id["api/availability"]
        assert api["status"] == "page"
        assert api["error_ratio"]["1h"] == pytest.approx(0.05, rel=0.05)
        assert client.get("/api/v1/slos/api/availability").json() == api

        # The outage opened one incident; it is visible and can be acknowledged once.
        listed = client.get("/api/v1/incidents?status=open").json()
        assert listed["total"] == 1
        incident_id = listed["incidents"][0]["id"]
        assert listed["incidents"][0]["service"] == "api"
        url = f"/api/v1/incidents/{incident_id}/ack"
        assert client.post(url, json={}, headers={"Authorization": ""}).status_code == 401
        headers = {"Authorization": f"Bearer {ADMIN}", "Idempotency-Key": "ack-once"}
        first = client.post(url, json={}, headers=headers)
        retry = client.post(url, json={}, headers=headers)
        assert first.status_code == retry.status_code == 200
        assert retry.headers["Idempotent-Replayed"] == "true"
        detail = client.get(f"/api/v1/incidents/{incident_id}").json()
        assert detail["acknowledged_by"] == "alice"
        assert [e["kind"] for e in detail["timeline"]].count("acknowledged") == 1

        # Silences go through the runtime's engine too.
        silence = client.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "service", "value": "database"}],
                "duration": "1h",
                "comment": "maintenance",
            },
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert silence.status_code == 201, silence.text
        assert [s["id"] for s in client.get("/api/v1/silences").json()["silences"]] == [
            silence.json()["id"]
        ]

        assert client.get("/readyz").json() == {"ready": True, "reasons": []}
        families = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
        assert {"slo_engine_slo_status", "slo_engine_api_requests"} <= families

        page = client.get("/status").text
        assert "api" in page and "availability" in page and incident_id in page
        notice = runtime.customer_notice(runtime.get_incident(incident_id))
        assert html.escape(notice.splitlines()[0]) in page

        if chromium_binary() is not None:
            _browser_sees_the_page(runtime, clock, incident_id)

        # Prometheus goes away: errors, 503 readiness with the reason, incident kept open.
        server.stop()
        clock.advance(30)
        runtime.run_cycle(clock.now)
        statuses = {s["status"] for s in client.get("/api/v1/slos").json()["slos"]}
        assert statuses == {"error"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any(r.startswith("source unreachable") for r in ready.json()["reasons"])
        assert client.get(f"/api/v1/incidents/{incident_id}").json()["status"] != "resolved"
        degraded = client.get("/status").text
        assert "may be out of date" in degraded and "could not be evaluated" in degraded
        assert server.url not in degraded  # internal addresses stay off the page
    finally:
        runtime.close()


def _browser_sees_the_page(runtime: Runtime, clock: FakeClock, incident_id: str):
    public = Access(public_status_page=True)
    with serve(create_app(runtime, [], clock=clock, access=public)) as url:
        dom = dump_dom(f"{url}/status")
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    assert "Service status" in text and incident_id in text
    assert "Page" in text and "api" in text
