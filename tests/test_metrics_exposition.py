"""/metrics as Prometheus users expect it: which build runs, the process's own metrics, no
`_created` series, units and `_ratio`/`_total` in the names, a request-duration histogram
by route template — and promtool's own lint passes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_runtime import Clock, ScriptedSource, make_config

from engine.api.app import create_app
from engine.daemon.runtime import Runtime
from engine.demo.webhook_sink import WebhookSink
from engine.telemetry import build_info


@pytest.fixture
def exposition(tmp_path: Path) -> Iterator[str]:
    with WebhookSink() as sink:
        runtime = Runtime(make_config(tmp_path, sink), clock=Clock(), source=ScriptedSource())
        try:
            runtime.run_cycle()
            client = TestClient(create_app(runtime, []))
            assert client.get("/healthz").status_code == 200
            # Refused or not found, whatever the API's read policy: it is a request too.
            assert client.get("/api/v1/incidents/INC-2026-9999").status_code in (401, 404)
            assert client.get("/no/such/page").status_code == 404
            yield client.get("/metrics").text
        finally:
            runtime.close()


def test_build_info_and_process_metrics(exposition: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    (sample,) = families["slo_engine_build_info"].samples
    assert sample.value == 1 and sample.labels == build_info()
    assert set(sample.labels) == {"version", "python_version", "revision"}
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert "process_start_time_seconds" in families
    assert "python_info" in families


def test_no_created_series_and_prometheus_names(exposition: str) -> None:
    assert "_created" not in exposition
    families = list(text_string_to_metric_families(exposition))
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        else:
            assert not any(s.name.endswith("_total") for s in family.samples), family.name
    names = {f.name for f in families}
    # Ratios say so (the renames listed in docs/daemon.md "Metrics").
    assert "slo_engine_slo_error_budget_remaining_ratio" in names
    assert "slo_engine_slo_error_ratio" in names
    assert "slo_engine_slo_error_budget_remaining" not in names


def test_request_durations_by_route_template(exposition: str) -> None:
    (histogram,) = [
        f
        for f in text_string_to_metric_families(exposition)
        if f.name == "slo_engine_http_request_duration_seconds"
    ]
    assert histogram.type == "histogram"
    counts = {
        (s.labels["method"], s.labels["route"]): s.value
        for s in histogram.samples
        if s.name.endswith("_count")
    }
    assert counts[("GET", "/healthz")] == 1
    assert counts[("GET", "/api/v1/incidents/{incident_id}")] == 1
    assert counts[("GET", "unmatched")] == 1
    assert "INC-2026-9999" not in exposition and "/no/such/page" not in exposition


@pytest.mark.prometheus
def test_promtool_check_metrics_passes(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
