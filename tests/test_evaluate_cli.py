"""`slo-engine evaluate` as a user runs it: a subprocess against a real Prometheus (or an
OpenMetrics file), checking the JSON contract field by field, the table and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad, write_openmetrics
from engine.source.localprom import LocalPrometheus, backfill, free_port, skip_reason

pytestmark = pytest.mark.prometheus

HOUR, DAY = 3600, 86400
START = (int(time.time()) // HOUR - 30) * HOUR
# 28 h of 30 s scrapes; the last 40 minutes of it are a 20 % error incident.
SCENARIO = Scenario(
    start=START,
    duration=28 * HOUR,
    scrape_interval=30,
    services=[
        ServiceLoad(
            job="api",
            rps=10,
            error_ratio=0.0002,
            slow_ratio=0.001,
            incidents=[Incident(start=27 * HOUR + 20 * 60, end=28 * HOUR, error_ratio=0.2)],
        )
    ],
    database=DatabaseLoad(),
)
AT = START + 28 * HOUR  # the last scrape
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]

SPEC = """\
apiVersion: slo-engine/v1
service: checkout
tier: critical
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{job="api",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="api"}[{{window}}]))
  - name: latency
    objective: 99
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: job="api"
        threshold: 500ms
"""
DATABASE_SPEC = """\
apiVersion: slo-engine/v1
service: database
slos:
  - name: up
    objective: 99.5
    sli:
      availability:
        metric: pg_up{job="database"}
  - name: ghost
    objective: 99
    sli:
      events:
        bad: sum(rate(ghost_requests_total{code="500"}[{{window}}]))
        total: sum(rate(ghost_requests_total[{{window}}]))
  - name: broken
    objective: 99
    sli:
      events:
        bad: sum(rate(http_requests_total[{{window}}])) / on() group_left rate(http_requests_total[{{window}}])
        total: sum(rate(http_requests_total[{{window}}]))
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaluate-cli")
    specs = path / "specs"
    specs.mkdir()
    (specs / "checkout.yaml").write_text(SPEC)
    (specs / "database.yaml").write_text(DATABASE_SPEC)
    write_openmetrics(SCENARIO, path / "data.om")
    return path


@pytest.fixture(scope="module")
def prometheus(workdir: Path) -> Iterator[LocalPrometheus]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    tsdb = backfill(workdir / "data.om", workdir / "tsdb")
    with LocalPrometheus(tsdb) as server:
        yield server


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_in_process(*args: str) -> Any:
    """Quicker than a subprocess, for runs that stop before touching Prometheus."""
    _register()
    return CliRunner().invoke(app, ["evaluate", *args])


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {slo["id"]: slo for slo in document["slos"]}


@pytest.fixture(scope="module")
def json_run(prometheus: LocalPrometheus, workdir: Path) -> subprocess.CompletedProcess[str]:
    return run(
        "--specs",
        str(workdir / "specs" / "checkout.yaml"),
        "--specs",
        str(workdir / "specs" / "database.yaml"),
        "--prometheus-url",
        prometheus.url,
        "--at",
        str(AT + 17),  # floored to the minute
        "--format",
        "json",
    )


def test_json_contract_field_by_field(json_run: subprocess.CompletedProcess[str]) -> None:
    assert json_run.returncode == 0, json_run.stderr
    document = json.loads(json_run.stdout)
    assert set(document) == {"evaluated_at", "slos"}
    assert document["evaluated_at"] == AT
    assert [s["id"] for s in document["slos"]] == [
        "checkout/availability",
        "checkout/latency",
        "database/up",
        "database/ghost",
        "database/broken",
    ]
    slo = by_id(document)["checkout/availability"]
    assert set(slo) >= {
        "id",
        "service",
        "slo",
        "objective",
        "period",
        "status",
        "error_ratio",
        "burn_rate",
        "events",
        "error_budget_remaining",
        "alerts",
        "error",
    }
    assert (slo["service"], slo["slo"], slo["tier"]) == ("checkout", "availability", "critical")
    assert slo["objective"] == 0.999 and slo["period"] == "30d"
    assert list(slo["error_ratio"]) == WINDOWS
    assert list(slo["burn_rate"]) == WINDOWS
    assert list(slo["events"]) == WINDOWS
    assert slo["error"] is None

    # Values against the scenario's exact counts.
    for window, seconds in (("5m", 300), ("1h", HOUR), ("1d", DAY)):
        bad = SCENARIO.expected_increase("api", AT - seconds, AT, "errors")
        total = SCENARIO.expected_increase("api", AT - seconds, AT)
        assert slo["events"][window] == {"bad": pytest.approx(bad), "total": pytest.approx(total)}
        assert slo["error_ratio"][window] == pytest.approx(bad / total, rel=1e-9)
        assert slo["burn_rate"][window] == pytest.approx(bad / total / 0.001, rel=1e-9)
    bad = SCENARIO.expected_increase("api", START, AT, "errors")
    total = SCENARIO.expected_increase("api", START, AT)
    assert slo["error_budget_remaining"] == pytest.approx(1 - bad / total / 0.001, rel=1e-9)

    # 20 % errors for 40 minutes: both page rules fire, and so do both tickets (the data
    # holds only 28 h, so the 1d and 3d windows see the incident undiluted).
    assert slo["status"] == "page"
    assert slo["alerts"][0] == {
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
        "factor": 14.4,
        "held": None,
        "held_reason": None,
    }
    fired = {(a["severity"], a["long_window"], a["short_window"]) for a in slo["alerts"]}
    assert fired == {
        ("page", "1h", "5m"),
        ("page", "6h", "30m"),
        ("ticket", "1d", "2h"),
        ("ticket", "3d", "6h"),
    }


def test_json_no_data_and_error_are_their_own_states(
    json_run: subprocess.CompletedProcess[str],
) -> None:
    slos = by_id(json.loads(json_run.stdout))
    ghost = slos["database/ghost"]
    assert ghost["status"] == "no_data" and ghost["error"] is None
    assert set(ghost["error_ratio"].values()) == {None}
    assert set(ghost["events"].values()) == {None}
    assert ghost["error_budget_remaining"] is None and ghost["alerts"] == []

    broken = slos["database/broken"]
    assert broken["status"] == "error" and "many-to-many" in broken["error"]
    assert broken["alerts"] == []

    assert slos["database/up"]["status"] == "ok"
    assert slos["database/up"]["error_ratio"]["1h"] == 0.0
    assert slos["checkout/latency"]["status"] == "ok"


def test_table(prometheus: LocalPrometheus, workdir: Path) -> None:
    result = run("--specs", str(workdir / "specs"), "--prometheus-url", prometheus.url)
    assert result.returncode == 0, result.stderr
    # --at defaults to now, 2 h after the data: short windows are empty, long ones are not.
    for text in ("checkout/availability", "database/ghost", "no_data", "error", "1h", "30d"):
        assert text in result.stdout
    result = run(
        "--specs", str(workdir / "specs"), "--prometheus-url", prometheus.url, "--at", str(AT)
    )
    line = next(x for x in result.stdout.splitlines() if "checkout/availability" in x)
    assert "page" in line and "page 1h/5m 14.4×" in line


def test_invalid_specs_exit_1(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("objective: 99.9", "objective: 150"))
    result = run_in_process("--specs", str(bad), "--prometheus-url", prometheus.url)
    assert result.exit_code == 1
    assert "bad.yaml:" in result.stderr and "objective" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--specs", "specs"],  # no source
        ["--specs", "specs", "--prometheus-url", "http://x", "--openmetrics", "data.om"],
        ["--specs", "does-not-exist", "--prometheus-url", "http://127.0.0.1:1"],
        ["--specs", "specs", "--prometheus-url", "http://127.0.0.1:1", "--format", "yaml"],
    ],
    ids=["no-source", "two-sources", "missing-specs", "bad-format"],
)
def test_usage_errors_exit_2(workdir: Path, args: list[str]) -> None:
    args = [str(workdir / a) if a in ("specs", "data.om", "does-not-exist") else a for a in args]
    result = run_in_process(*args)
    assert result.exit_code == 2, result.output
    assert "error" in result.stderr.lower()


def test_prometheus_stopped_exit_3_and_no_false_alert(prometheus_for: Any, workdir: Path) -> None:
    server = prometheus_for(workdir / "data.om")
    url = server.url
    server.stop()
    result = run(
        "--specs",
        str(workdir / "specs"),
        "--prometheus-url",
        url,
        "--at",
        str(AT),
        "--format",
        "json",
    )
    assert result.returncode == 3  # data source unavailable (docs/cli.md)
    assert "unavailable" in result.stderr
    document = json.loads(result.stdout)
    assert {s["status"] for s in document["slos"]} == {"error"}
    assert all(s["alerts"] == [] for s in document["slos"])


def test_nothing_listening_exit_3(workdir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("--specs", str(workdir / "specs"), "--prometheus-url", url, "--at", str(AT))
    assert result.returncode == 3
    assert "cannot connect" in result.stderr


def test_openmetrics_offline_mode(workdir: Path) -> None:
    if skip_reason():
        pytest.skip(skip_reason())
    result = run(
        "--specs",
        str(workdir / "specs" / "checkout.yaml"),
        "--openmetrics",
        str(workdir / "data.om"),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    # Without --at: the file's newest sample.
    assert document["evaluated_at"] == AT
    slo = by_id(document)["checkout/availability"]
    bad = SCENARIO.expected_increase("api", AT - HOUR, AT, "errors")
    total = SCENARIO.expected_increase("api", AT - HOUR, AT)
    assert slo["error_ratio"]["1h"] == pytest.approx(bad / total, rel=1e-9)
    assert slo["status"] == "page"


def test_bearer_token_file_reaches_prometheus(
    prometheus: LocalPrometheus, workdir: Path, tmp_path: Path
) -> None:
    seen: list[str | None] = []

    class Recorder(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            upstream = requests.get(prometheus.url + self.path, timeout=30)
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("cli-secret\n")
    try:
        result = run(
            "--specs",
            str(workdir / "specs" / "checkout.yaml"),
            "--prometheus-url",
            f"http://127.0.0.1:{server.server_address[1]}",
            "--bearer-token-file",
            str(token),
            "--at",
            str(AT),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert seen and set(seen) == {"Bearer cli-secret"}
    assert "cli-secret" not in result.stdout + result.stderr
