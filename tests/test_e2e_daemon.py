"""End to end: `slo-engine run` as a real process against a real Prometheus, notifying a real
webhook receiver on loopback.

Prometheus serves one day of backfilled history that ends with an ongoing complete outage of
the critical `api`, and keeps scraping the traffic simulator (same scenario, same outage) so
the outage stays visible at "now". One story, in order:

1. the outage yields exactly one `triggered` event, SEV1;
2. `kill -9` of the daemon and a restart: no second `triggered`;
3. the unacknowledged SEV1 escalates to level 1; POST without a token → 401; an ack with a
   token shows in the API and no further level is notified;
4. Prometheus stopped: no `resolved`, /readyz 503, SLOs `error`, and after 3 cycles the
   "SLO evaluation blind" incident;
5. Prometheus back: ready again, the blind incident resolves, still one api page;
6. SIGTERM: exit 0 with the outbox empty.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from engine.demo.scenario import Incident, write_openmetrics
from engine.demo.simulator import Simulator, demo_scenario, serve
from engine.demo.webhook_sink import WebhookSink
from engine.incidents.config import IncidentConfig
from engine.source.localprom import LocalPrometheus, free_port
from engine.store.sqlite import SQLiteStore

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "e2e-admin-token-0123456789abcdef"
READ_ONLY = "readonly-token-0123456789abcdef"
INTERVAL = 2.0


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


class Daemon:
    """`slo-engine run --config FILE` as a subprocess, its output in a log file."""

    def __init__(self, config: Path, log: Path, port: int) -> None:
        self.config, self.log, self.port = config, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daemon:
        binary = Path(sys.executable).parent / "slo-engine"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(binary), "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(self._healthy, 30, f"the daemon to serve /healthz\n{self.tail()}")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def get(self, path: str, **kw: Any) -> requests.Response:
        # Reads need the read role (issue 13): the read-only token unless told otherwise.
        kw.setdefault("headers", {"Authorization": f"Bearer {READ_ONLY}"})
        return requests.get(f"{self.url}{path}", timeout=5, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(f"{self.url}{path}", timeout=5, **kw)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("needs the prometheus and promtool binaries (apt-get install prometheus)")
    now = int(time.time())
    start = (now - 86_400) // 60 * 60
    # A complete api outage that began 10 minutes ago and goes on: 1h window 1/6 bad, 5m
    # window all bad — a page whose short window says "complete outage" (SEV1) at once.
    scenario = demo_scenario(start)
    api = scenario.services[0]
    outage = Incident(start=now - 600 - start, end=now - start + 86_400, error_ratio=1.0)
    scenario = dataclasses.replace(
        scenario, services=(dataclasses.replace(api, incidents=(outage,)),)
    )
    history = dataclasses.replace(scenario, duration=now - 60 - start)
    om = write_openmetrics(history, tmp_path / "history.om")
    from engine.source.localprom import backfill

    tsdb = backfill(om, tmp_path / "tsdb")

    simulator = Simulator(scenario)
    sim_server = serve(simulator, "127.0.0.1", free_port())
    threading.Thread(target=sim_server.serve_forever, daemon=True).start()
    prometheus = LocalPrometheus(
        tsdb,
        scrape_configs=[
            {
                "job_name": "simulator",
                "honor_labels": True,
                "scrape_interval": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{sim_server.server_address[1]}"]}],
            }
        ],
    ).start()

    sink = WebhookSink().start()
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "slo_specs", specs)
    tokens = tmp_path / "tokens"
    # The admin token's name is the actor of what it changes (never a body field).
    tokens.write_text(f"{TOKEN} name=alice\n{READ_ONLY} read-only\n")
    tokens.chmod(0o600)
    incidents: dict[str, Any] = {
        "resolve_after": "5s",
        "receivers": [{"name": "lead", "severities": []}],
        # SEV1 must be acknowledged within 8s here (15 min in the runbook): level 1 is told
        # 8s after the page, level 2 another 20s later.
        "response_targets": {"SEV1": "8s", "SEV2": "1h", "SEV3": "4h", "SEV4": "1d"},
        "escalation": [
            {"name": "team-lead", "after": "0s", "receivers": ["lead"]},
            {"name": "manager", "after": "20s", "receivers": ["lead"]},
        ],
    }
    if "dependency_wait" in IncidentConfig.model_fields:
        incidents["dependency_wait"] = "0s"  # api depends on database; don't hold its page
    port = free_port()
    config = {
        "specs": str(specs),
        "prometheus_url": prometheus.url,
        "state_dir": str(tmp_path / "state"),
        "listen": f"127.0.0.1:{port}",
        "interval": f"{INTERVAL:g}s",
        "delivery_interval": "1s",
        "escalation_interval": "1s",
        "blind_after_cycles": 3,
        "query_timeout": "2s",
        "query_retries": 0,
        "source_breaker": {"failures": 3, "cooldown": "3s"},
        "api_token_file": str(tokens),
        "webhooks": [sink.url],
        "notifiers": {"lead": {"type": "webhook", "url": f"http://127.0.0.1:{sink.port}/lead"}},
        "incidents": incidents,
    }
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon = Daemon(config_path, tmp_path / "daemon.log", port)
    try:
        yield {
            "daemon": daemon,
            "prometheus": prometheus,
            "sink": sink,
            "state": tmp_path / "state",
        }
    finally:
        daemon.kill()
        sink.stop()
        prometheus.cleanup()
        sim_server.shutdown()
        sim_server.server_close()


def api_pages(sink: WebhookSink) -> list[dict[str, Any]]:
    """`triggered` bodies for api, one per notification. Delivery is at-least-once: a crash
    between the send and its bookkeeping re-sends the SAME notification (same
    Idempotency-Key), which receivers fold; a second page would carry a new key."""
    seen: dict[str, dict[str, Any]] = {}
    for r in sink.events("triggered", service="api"):
        seen.setdefault(r.headers.get("Idempotency-Key", ""), r.incident)
    return list(seen.values())


def test_daemon_end_to_end(stack: dict[str, Any]) -> None:
    daemon: Daemon = stack["daemon"]
    prometheus: LocalPrometheus = stack["prometheus"]
    sink: WebhookSink = stack["sink"]
    daemon.start()

    # 1. One page, SEV1.
    sink.wait_for(lambda got: any(r.event == "triggered" for r in got), timeout=30)
    (page,) = api_pages(sink)
    assert page["severity"] == "SEV1"
    assert page["slos"] == ["api/availability"]
    incident_id = page["id"]
    slos = {s["id"]: s for s in daemon.get("/api/v1/slos").json()["slos"]}
    assert slos["api/availability"]["status"] == "page"
    assert slos["api/availability"]["burn_rate"]["5m"] == pytest.approx(1000, rel=0.01)

    # 2. kill -9 and restart: the incident is remembered, nobody is paged twice.
    wait_until(
        lambda: (
            'slo_engine_notifications_queued{state="pending"} 0.0' in daemon.get("/metrics").text
        ),
        10,
        "the page to be marked sent",
    )
    daemon.kill()
    daemon.start()
    cycles = _cycles(daemon)
    wait_until(lambda: _cycles(daemon) >= cycles + 3, 20, "three cycles after the restart")
    assert len(api_pages(sink)) == 1
    listed = daemon.get("/api/v1/incidents", params={"status": "open"}).json()["incidents"]
    assert [i["id"] for i in listed if i["service"] == "api"] == [incident_id]

    # 3. Unacknowledged past its response target: level 1 escalation. Then the ack.
    sink.wait_for(lambda got: any(r.path == "/lead" for r in got), timeout=30)
    assert [r.body["event"] for r in sink.received if r.path == "/lead"] == ["escalated"]
    anonymous = daemon.post(f"/api/v1/incidents/{incident_id}/ack", json={})
    assert anonymous.status_code == 401
    read_only = daemon.post(
        f"/api/v1/incidents/{incident_id}/ack",
        json={},
        headers={"Authorization": f"Bearer {READ_ONLY}"},
    )
    assert read_only.status_code == 403
    acked = daemon.post(
        f"/api/v1/incidents/{incident_id}/ack",
        json={},
        headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "ack-1"},
    )
    assert acked.status_code == 200, acked.text
    shown = daemon.get(f"/api/v1/incidents/{incident_id}").json()
    assert shown["acknowledged_by"] == "alice"
    assert "acknowledged" in [e["kind"] for e in shown["timeline"]]
    sink.wait_for(lambda got: any(r.event == "acknowledged" for r in got), timeout=15)
    opened_at = shown["opened_at"]

    # 4. Prometheus goes away: error, not resolved; not ready; blind after 3 cycles.
    prometheus.stop()
    ready = wait_until(
        lambda: (r := daemon.get("/readyz")).status_code == 503 and r.json(),
        15,
        "/readyz to report 503",
    )
    assert any("source unreachable" in reason for reason in ready["reasons"])
    sink.wait_for(
        lambda got: any(r.incident.get("service") == "slo-engine" for r in got), timeout=30
    )
    (blind,) = [r for r in sink.events("triggered") if r.incident["service"] == "slo-engine"]
    assert "SLO evaluation blind" in blind.incident["summary"]
    statuses = {s["status"] for s in daemon.get("/api/v1/slos").json()["slos"]}
    assert statuses == {"error"}
    assert sink.events("resolved", service="api") == []
    assert daemon.get(f"/api/v1/incidents/{incident_id}").json()["status"] != "resolved"

    # 5. Prometheus back: ready again, "blind" resolves, the api incident stays one page.
    prometheus.start()
    wait_until(lambda: daemon.get("/readyz").status_code == 200, 30, "/readyz 200 again")
    sink.wait_for(
        lambda got: any(
            r.event == "resolved" and r.incident.get("service") == "slo-engine" for r in got
        ),
        timeout=30,
    )
    slos = {s["id"]: s for s in daemon.get("/api/v1/slos").json()["slos"]}
    assert slos["api/availability"]["status"] == "page"
    # Past level 2's time (opened + 8s + 20s): acknowledged, so nobody else was told.
    wait_until(lambda: time.time() > opened_at + 32, 40, "level 2's escalation time")
    lead = [r.body["event"] for r in sink.received if r.path == "/lead"]
    assert lead == ["escalated", "acknowledged"]  # the ack is told to everyone who was paged
    assert len(api_pages(sink)) == 1
    assert sink.events("resolved", service="api") == []
    metrics = daemon.get("/metrics").text
    assert 'slo_engine_open_incidents{severity="SEV1"} 1.0' in metrics
    assert "slo_engine_evaluation_blind 0.0" in metrics

    # 6. SIGTERM: finishes, flushes, exits 0; nothing left in the outbox.
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.tail()
    log = daemon.log.read_text()
    assert "outbox flushed" in log
    # Log lines inside a cycle carry its trace id (and span id) for log ↔ trace lookups.
    opened = [line for line in log.splitlines() if f"incident {incident_id} opened" in line]
    assert opened and re.search(r"\[trace=[0-9a-f]{32} span=[0-9a-f]{16}\]", opened[0])
    with SQLiteStore.in_state_dir(stack["state"]) as store:
        assert store.counts()["pending"] == 0


def _cycles(daemon: Daemon) -> int:
    text = daemon.get("/metrics").text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("slo_engine_cycles_total{")
        )
    )
