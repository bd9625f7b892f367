"""The live traffic simulator: served over real HTTP, parsed with prometheus_client's own
text parser, counters continuing the scenario and injected outages showing up."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from engine.demo.scenario import LE_LABELS
from engine.demo.simulator import Simulator, demo_scenario, history_start, serve
from engine.source.localprom import free_port

T0 = 1_700_000_000


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def served() -> Iterator[tuple[Simulator, FakeClock, str]]:
    clock = FakeClock(T0 + 3600)
    sim = Simulator(demo_scenario(T0), clock=clock)
    server = serve(sim, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sim, clock, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _scrape(url: str) -> dict:
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return _samples(response.text)


def test_metrics_are_the_scenario_values_at_the_current_time(served) -> None:
    sim, clock, url = served
    sc = sim.scenario
    first = _scrape(url)
    assert (
        _value(first, "http_requests_total", job="api", code="200")
        == sc.counter("api", clock.now, "ok")[0]
    )
    assert (
        _value(first, "http_requests_total", job="api", code="500")
        == sc.counter("api", clock.now, "errors")[0]
    )
    for le in LE_LABELS:
        got = _value(first, "http_request_duration_seconds_bucket", job="api", le=le)
        assert got == sc.bucket("api", le, clock.now)[0]
    assert (
        _value(first, "http_request_duration_seconds_count", job="api")
        == sc.counter("api", clock.now, "count")[0]
    )
    assert _value(first, "pg_up", job="database") == 1
    assert _value(first, "backup_verification_checks_total", job="backup", result="success") == 12
    assert _value(first, "backup_last_success_timestamp_seconds", job="backup") == T0 + 3600

    clock.now += 60
    second = _scrape(url)
    grown = _value(second, "http_requests_total", job="api", code="200") - _value(
        first, "http_requests_total", job="api", code="200"
    )
    assert grown == sc.expected_increase("api", clock.now - 60, clock.now, "ok") > 0


def test_injected_outage_shows_in_the_error_counter_then_ends(served) -> None:
    sim, clock, url = served
    before = _scrape(url)
    response = requests.post(f"{url}/inject?service=api&error_ratio=1&duration=300", timeout=5)
    assert response.status_code == 200
    assert response.json() == {
        "service": "api",
        "starts_at": clock.now,
        "ends_at": clock.now + 300,
        "error_ratio": 1.0,
    }
    clock.now += 300
    during = _scrape(url)
    ok = ("http_requests_total", (("code", "200"), ("job", "api")))
    errors = ("http_requests_total", (("code", "500"), ("job", "api")))
    assert during[ok] == before[ok]  # every request failed
    assert during[errors] - before[errors] == sim.scenario.expected_increase(
        "api", clock.now - 300, clock.now, "errors"
    )
    assert during[errors] - before[errors] > 20 * 300 * 0.6  # ~20 rps, lowest point of the wave
    clock.now += 60
    after = _scrape(url)
    assert after[ok] > during[ok]  # recovered
    assert after[errors] - during[errors] < 10


def test_database_and_backup_injections(served) -> None:
    _, clock, url = served
    assert (
        requests.post(f"{url}/inject?service=database&duration=10m", timeout=5).status_code == 200
    )
    assert (
        requests.post(f"{url}/inject?service=backup&duration=1h&after=60", timeout=5).status_code
        == 200
    )
    assert _value(_scrape(url), "pg_up", job="database") == 0
    clock.now += 3600
    samples = _scrape(url)
    assert _value(samples, "pg_up", job="database") == 1
    assert _value(samples, "backup_verification_checks_total", job="backup", result="failed") == 12
    # Backups every 5 minutes failed for the hour after the first minute.
    assert _value(samples, "backup_last_success_timestamp_seconds", job="backup") == T0 + 3600
    assert [
        i["service"] for i in json.loads(requests.get(f"{url}/injections", timeout=5).text)
    ] == [
        "database",
        "backup",
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("service=web&duration=60", "no service with job 'web'"),
        ("service=api&error_ratio=2", "error_ratio must be between 0 and 1"),
        ("service=api&duration=soon", "duration must be seconds or a duration"),
        ("service=api&duration=-5", "duration must be > 0"),
        ("service=api&rps_factor=nan", "rps_factor must be finite"),
    ],
)
def test_bad_injections_are_rejected_with_a_reason(served, query: str, message: str) -> None:
    sim, _, url = served
    response = requests.post(f"{url}/inject?{query}", timeout=5)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert sim.injections == []


def test_unknown_paths_are_404(served) -> None:
    _, _, url = served
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{url}/metrics", timeout=5).status_code == 404
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}


def test_history_start_is_a_shared_utc_midnight() -> None:
    start = history_start(T0, 30)
    assert start % 86_400 == 0
    assert 30 * 86_400 <= T0 - start < 31 * 86_400
    # Two processes started minutes apart on the same day agree on it.
    assert history_start(T0 - T0 % 86_400 + 60, 30) == history_start(T0 - T0 % 86_400 + 900, 30)


def test_cli_serves_and_takes_live_injections(tmp_path) -> None:
    """The real process, as compose and `make demo` run it."""
    port = free_port()
    log = open(tmp_path / "simulator.log", "wb")  # noqa: SIM115 — closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.demo.simulator", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                before = _scrape(url)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "simulator.log").read_text()
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.1)
        assert requests.post(f"{url}/inject?service=api&error_ratio=1&duration=600", timeout=5).ok
        errors = ("http_requests_total", (("code", "500"), ("job", "api")))
        ok = ("http_requests_total", (("code", "200"), ("job", "api")))
        # Wait for events, not for a duration: ~20 errors a second once the outage runs.
        deadline = time.monotonic() + 30
        while True:
            during = _scrape(url)
            if during[errors] >= before[errors] + 5:
                break
            assert time.monotonic() < deadline, "no errors counted after the injection"
            time.sleep(0.1)
        injected_at = _scrape(url)
        time.sleep(0.3)
        later = _scrape(url)
        assert later[ok] == injected_at[ok]  # nothing succeeds during the outage
        assert later[errors] >= injected_at[errors]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
