"""Secrets never leave: a URL with credentials in it is refused wherever the config takes
one; whatever text does carry a credential (a source's error quoting its URL, a client
sending `?token=` in a query string) is redacted before it reaches a log line, `/readyz`,
the API or a span; a configured secret file that is missing stops `run` (exit 2) instead
of starting a blind daemon."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from fastapi.testclient import TestClient
from harness.api_runtime import (
    FakeClock,
    SampleSource,
    Shape,
    sample_runtime,
    serve,
    shapes_for,
)
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.deps import Access
from engine.daemon.config import ConfigError, load_config
from engine.source.localprom import free_port
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(sys.executable).parent / "slo-engine"
PASSWORD = "Hunter2-PASS"
TOKEN = "tok-3f9a7c1e55"

OPEN_READS = Access(anonymous_reads=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"http://user:{PASSWORD}@prom:9090/api", "http://***@prom:9090/api"),
        ("cannot connect to https://bob:p@ss@host/x: refused", "https://***@host/x: refused"),
        (f"GET /api/v1/slos?token={TOKEN}&limit=5 HTTP/1.1", "/api/v1/slos?token=***&limit=5"),
        (f"https://h/p?a=1&access_token={TOKEN}#top", "https://h/p?a=1&access_token=***#top"),
        (f"/hook?X-Amz-Signature={TOKEN}", "/hook?X-Amz-Signature=***"),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
    ],
)
def test_redact_strips_url_credentials(text: str, expected: str) -> None:
    from engine.redact import redact

    cleaned = redact(text)
    assert expected in cleaned
    assert PASSWORD not in cleaned and TOKEN not in cleaned and "p@ss" not in cleaned


def test_redact_leaves_ordinary_text_alone() -> None:
    from engine.redact import redact

    text = "alice@example.com acked INC-2024-0001 at http://status.example.com/?page=2"
    assert redact(text) == text
    assert redact("key rotated", secrets=["rotated"]) == "key ***"


# ------------------------------------------------------------------ the config refuses them


def test_urls_with_credentials_are_refused_with_their_place(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "specs: specs\n"
        f"prometheus_url: http://user:{PASSWORD}@127.0.0.1:9090\n"
        "state_dir: state\n"
        f"webhooks: ['https://hooks.example.com/in', 'https://ops:{PASSWORD}@hooks.example.com/x']\n"
        "notifiers:\n"
        f"  am: {{type: alertmanager, url: 'http://admin:{PASSWORD}@am:9093'}}\n"
        "datasources:\n"
        f"  thanos: {{url: 'https://t:{PASSWORD}@thanos:10902'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert PASSWORD not in text
    assert (
        f"{config}:2:17: prometheus_url: 'http://***@127.0.0.1:9090' carries credentials "
        "(user:password@) — remove them from the URL and use basic_auth: {username, "
        "password_file}"
    ) in text
    assert f"{config}:4:" in text and "webhooks.1: 'https://***@hooks.example.com/x'" in text
    assert f"{config}:6:" in text and "notifiers.am.url: 'http://***@am:9093'" in text
    assert f"{config}:8:" in text and "datasources.thanos.url: 'https://***@thanos:10902'" in text
    with pytest.raises(ConfigError) as flag:
        load_config(None, {**_flags(tmp_path), "prometheus_url": f"http://u:{PASSWORD}@h:9"})
    assert "--prometheus-url: " in str(flag.value) and PASSWORD not in str(flag.value)


def _flags(tmp_path: Path) -> dict[str, str]:
    return {"specs": str(ROOT / "slo_specs"), "state_dir": str(tmp_path / "state")}


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), "run", *args], capture_output=True, text=True, timeout=timeout
    )


def test_run_exits_2_on_a_url_with_credentials(tmp_path: Path) -> None:
    result = _run(
        [
            "--specs",
            str(ROOT / "slo_specs"),
            "--prometheus-url",
            f"http://user:{PASSWORD}@127.0.0.1:9",
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ]
    )
    assert result.returncode == 2, result.stderr
    assert "--prometheus-url: 'http://***@127.0.0.1:9' carries credentials" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_run_exits_2_on_a_missing_secret_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "specs": str(ROOT / "slo_specs"),
                "prometheus_url": "http://127.0.0.1:9",
                "state_dir": str(tmp_path / "state"),
                "listen": f"127.0.0.1:{free_port()}",
                "authorization": {"credentials_file": "secrets/prometheus-token"},
                "datasources": {
                    "thanos": {
                        "url": "http://127.0.0.1:10",
                        "tls_config": {"ca_file": str(tmp_path)},
                    }
                },
            }
        )
    )
    result = _run(["--config", str(config)])
    assert result.returncode == 2, result.stderr
    token = tmp_path / "secrets" / "prometheus-token"
    assert f"authorization.credentials_file: {token} does not exist" in result.stderr
    assert f"datasources.thanos.tls_config.ca_file: {tmp_path} is not a file" in result.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was started


# ------------------------------------------------------------------ errors are redacted


def test_a_source_error_with_credentials_is_redacted_everywhere(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret_url = f"http://user:{PASSWORD}@prom.internal:9090/api/v1/query_range?token={TOKEN}"
    source = SampleSource(T0)
    shapes = shapes_for(load_specs([ROOT / "slo_specs"]).slos)
    first = next(iter(shapes))
    shapes[first] = Shape("error", error=f"query failed at {secret_url}: HTTP 500")
    source.shapes = shapes
    clock = FakeClock(T0 + 600)
    runtime = sample_runtime(tmp_path, clock, T0, source=source)
    try:
        # Anonymous reads (a daemon setting): what any reader would see.
        client = TestClient(create_app(runtime, [], clock=clock, access=OPEN_READS))
        slos = client.get("/api/v1/slos").json()["slos"]
        (errored,) = [s for s in slos if s["id"] == first]
        assert "http://***@prom.internal:9090" in errored["error"]

        source.down = f"cannot connect to {secret_url}: ConnectionRefusedError"
        runtime.run_cycle(T0 + 60)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any(
            "source unreachable: cannot connect to http://***@" in r
            for r in ready.json()["reasons"]
        )
        answers = [ready.text, client.get("/api/v1/slos").text, client.get("/metrics").text]
    finally:
        runtime.close()
    for text in [*answers, caplog.text]:
        assert PASSWORD not in text and TOKEN not in text
    assert "metrics source failed" in caplog.text  # it was logged, redacted


def test_tokens_in_query_strings_never_reach_the_access_log(tmp_path: Path, caplog, capsys) -> None:
    runtime = sample_runtime(tmp_path, FakeClock(T0 + 600), T0)
    try:
        with (
            caplog.at_level(logging.DEBUG),
            serve(create_app(runtime, []), access_log=True, log_level="debug") as url,
        ):
            for path in (f"/healthz?token={TOKEN}", f"/api/v1/slos?limit=1&api_key={TOKEN}"):
                requests.get(url + path, timeout=5)
    finally:
        runtime.close()
    # uvicorn's default logging config prints the access log on stdout; this test's own
    # HTTP client (urllib3) logs its request line too, which is not the server's.
    server_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    printed = capsys.readouterr()
    access = printed.out + printed.err
    assert '"GET /healthz?token=*** HTTP/1.1" 200' in access, access
    assert "/api/v1/slos?limit=1&api_key=*** HTTP/1.1" in access, access
    assert TOKEN not in access and TOKEN not in "\n".join(server_logs)


def test_the_daemon_at_debug_logs_no_query_token(tmp_path: Path) -> None:
    """`run` at log_level debug: uvicorn's access log is on, and redacted."""
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "specs": str(ROOT / "slo_specs"),
                "prometheus_url": f"http://127.0.0.1:{free_port()}",
                "state_dir": str(tmp_path / "state"),
                "listen": f"127.0.0.1:{port}",
                "interval": "1h",
                "query_retries": 0,
                "log_level": "debug",
            }
        )
    )
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BINARY), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                got = requests.get(f"http://127.0.0.1:{port}/healthz?token={TOKEN}", timeout=1)
                if got.status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        requests.get(f"http://127.0.0.1:{port}/api/v1/slos?access_token={TOKEN}", timeout=5)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "GET /healthz?token=*** HTTP/1.1" in text
    assert "/api/v1/slos?access_token=***" in text
    assert TOKEN not in text
