"""`slo-engine run` as a process: SIGTERM flushes the outbox and exits 0; start-up refusals
have their exit codes and say why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from harness.incidents import make_alert
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.daemon.config import load_config
from engine.demo.webhook_sink import WebhookSink
from engine.incidents.engine import IncidentEngine
from engine.source.localprom import free_port
from engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "shutdown-test-token-0123456789"
BINARY = Path(sys.executable).parent / "slo-engine"


def _wait(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_flushes_the_outbox_and_exits_zero(tmp_path: Path) -> None:
    with WebhookSink() as sink:
        tokens = tmp_path / "tokens"
        tokens.write_text(TOKEN + " name=alice\n")  # the actor of what it changes
        port = free_port()
        settings = {
            "specs": str(ROOT / "slo_specs"),
            # Nothing listens there: the daemon runs blind, which is fine for this test.
            "prometheus_url": f"http://127.0.0.1:{free_port()}",
            "state_dir": str(tmp_path / "state"),
            "listen": f"127.0.0.1:{port}",
            # One cycle at start, then nothing delivers until shutdown.
            "interval": "1h",
            "delivery_interval": "1h",
            "escalation_interval": "1h",
            "query_retries": 0,
            "api_token_file": str(tokens),
            "webhooks": [sink.url],
        }
        config_file = tmp_path / "config.yml"
        config_file.write_text(yaml.safe_dump(settings))

        # An open incident from a previous run, its page still queued.
        config = load_config(config_file)
        with SQLiteStore.in_state_dir(config.state_dir) as store:
            engine = IncidentEngine(config.incident_config(), store.load_state())
            store.apply(engine.observe(time.time(), [make_alert(starts_at=time.time())]))
            (incident,) = store.list_incidents()

        log = tmp_path / "daemon.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BINARY), "run", "--config", str(config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # The first cycle delivers the queued page (the source being down changes nothing).
            sink.wait_for(lambda got: [r.event for r in got] == ["triggered"], timeout=30)
            url = f"http://127.0.0.1:{port}/api/v1/incidents/{incident.id}/ack"
            response = _wait(
                lambda: _post(url, {}, {"Authorization": f"Bearer {TOKEN}"}),
                20,
                "the API",
            )
            assert response.status_code == 200, response.text
            time.sleep(1)
            assert [r.event for r in sink.received] == ["triggered"]  # ack still queued

            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert [r.event for r in sink.received] == ["triggered", "acknowledged"]
        assert sink.received[1].incident["acknowledged_by"] == "alice"
        text = log.read_text()
        assert "SIGTERM: stopping the scheduler" in text
        assert "outbox flushed: 1 sent, 0 failed, 0 still pending" in text
        with SQLiteStore.in_state_dir(config.state_dir) as store:
            assert store.counts() == {"pending": 0, "sent": 2, "dead": 0}


def _post(url: str, body: dict, headers: dict) -> requests.Response | None:
    try:
        return requests.post(url, json=body, headers=headers, timeout=5)
    except requests.RequestException:
        return None


def test_run_refuses_a_bad_config_with_its_position(tmp_path: Path) -> None:
    _register()
    config = tmp_path / "config.yml"
    config.write_text(
        "specs: specs\nprometheus_url: http://127.0.0.1:9090\nstate_dir: state\ninterval: soon\n"
    )
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:4:11: interval: 'soon' is not a duration" in result.output


def test_run_refuses_invalid_specs_with_exit_1(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "api.yaml").write_text("apiVersion: slo-engine/v1\nservice: api\ntier: critical\n")
    result = subprocess.run(
        [
            str(BINARY),
            "run",
            "--specs",
            str(specs),
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "api.yaml:" in result.stderr
    assert "the specs are invalid" in result.stderr


def test_run_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                str(BINARY),
                "run",
                "--specs",
                str(ROOT / "slo_specs"),
                "--prometheus-url",
                "http://127.0.0.1:9",
                "--state-dir",
                str(tmp_path / "state"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
