"""Who the client is, and what a wrong token costs: over the daemon's real Runtime
(harness.api_runtime), served by uvicorn with the daemon's own server settings
(engine.api.server) where proxy headers matter.

- `X-Forwarded-For` is believed only from `trusted_proxies` (none by default), so a client
  cannot dodge the per-address rate limit by inventing addresses;
- failed authentications (missing or unknown token) are limited per client address: after
  10 in 60 s every authentication from that address gets 429 + Retry-After — a valid token
  too, or the refusals would tell a guesser when it guessed right;
- free text accepts CRLF (and CR) line ends and stores LF.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, daemon_config, sample_runtime, serve
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.config import ConfigError
from engine.daemon.runtime import Runtime

ADMIN = "admin-token-Zq8w3n5v9k2m"
WRONG = "wrong-token-Xy7Ak2Lm9Qp4"


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 600)


@pytest.fixture
def runtime(tmp_path: Path, clock: FakeClock) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, clock, T0)
    yield runtime
    runtime.close()


@pytest.fixture
def tokens(tmp_path: Path):
    path = tmp_path / "api-tokens"
    path.write_text(f"{ADMIN}\n")
    return load_tokens(path)


def open_incident_id(runtime: Runtime) -> str:
    return runtime.list_incidents("open", None)[0].id


# ------------------------------------------------------------------ proxy headers


def test_forged_forwarded_for_does_not_dodge_the_rate_limit(runtime, tokens, clock):
    app = create_app(runtime, tokens, rate_limit_per_s=0.01, burst=3, clock=clock)
    with serve(app) as url:
        codes = [
            requests.get(
                f"{url}/api/v1/slos", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=5
            ).status_code
            for i in range(5)
        ]
    # One client (the loopback peer) whatever it claims: its burst of 3 (anonymous reads
    # are refused, 401), then 429.
    assert codes == [401, 401, 401, 429, 429]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(runtime, tokens, clock):
    app = create_app(runtime, tokens, rate_limit_per_s=0.01, burst=2, clock=clock)
    with serve(app, trusted_proxies=["127.0.0.1"]) as url:

        def get(forwarded: str) -> int:
            headers = {"X-Forwarded-For": forwarded}
            return requests.get(f"{url}/api/v1/slos", headers=headers, timeout=5).status_code

        # Each client behind the proxy has its own bucket (anonymous: 401 until it is empty)...
        assert [get("198.51.100.7") for _ in range(3)] == [401, 401, 429]
        assert [get("198.51.100.8") for _ in range(2)] == [401, 401]
        # ...and the proxy's append is what counts: a client's own forged entry before it
        # (the left-most) is not believed.
        assert get("10.9.9.9, 198.51.100.7") == 429


def test_trusted_proxies_in_the_config(tmp_path: Path):
    config = daemon_config(tmp_path, trusted_proxies=["10.0.0.5", "10.1.0.0/16", "::1"])
    assert [str(p) for p in config.trusted_proxies] == ["10.0.0.5/32", "10.1.0.0/16", "::1/128"]
    assert daemon_config(tmp_path).trusted_proxies == []
    with pytest.raises(ConfigError) as caught:
        daemon_config(tmp_path, trusted_proxies=["proxy.internal"])
    assert "trusted_proxies.0" in str(caught.value)


# ------------------------------------------------------------------ failed authentication


def test_failed_authentications_lock_the_address_out_for_a_while(runtime, tokens, clock):
    client = TestClient(create_app(runtime, tokens, rate_limit_per_s=100, burst=100, clock=clock))
    url = f"/api/v1/incidents/{open_incident_id(runtime)}/comment"
    body = {"text": "guess"}
    failures = [
        client.post(url, json=body, headers=auth(WRONG) if i % 2 else {}).status_code
        for i in range(10)
    ]
    assert failures == [401] * 10
    locked = client.post(url, json=body, headers=auth(WRONG))
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "60"
    assert "too many failed authentications" in locked.json()["error"]
    # While locked, the right token is refused the same way: no oracle for a guesser.
    assert client.post(url, json=body, headers=auth()).status_code == 429
    # Reads authenticate too, and are refused the same way while the address is locked.
    assert client.get("/api/v1/slos", headers=auth()).status_code == 429

    clock.advance(59)
    assert client.post(url, json=body, headers=auth()).status_code == 429
    clock.advance(1)  # the first failure has left the 60 s window
    assert client.post(url, json={"text": "ok"}, headers=auth()).status_code == 200


def test_the_lockout_is_per_client_address(runtime, tokens, clock):
    app = create_app(runtime, tokens, rate_limit_per_s=100, burst=100, clock=clock)
    url_path = f"/api/v1/incidents/{open_incident_id(runtime)}/ack"
    with serve(app, trusted_proxies=["127.0.0.1"]) as url:

        def ack(client: str, token: str) -> int:
            headers = {**auth(token), "X-Forwarded-For": client}
            return requests.post(url + url_path, json={}, headers=headers, timeout=5).status_code

        assert [ack("198.51.100.66", WRONG) for _ in range(11)] == [401] * 10 + [429]
        assert ack("198.51.100.67", ADMIN) == 200


# ------------------------------------------------------------------ free text


def test_crlf_in_free_text_is_accepted_and_stored_as_lf(runtime, tokens, clock):
    client = TestClient(create_app(runtime, tokens, clock=clock))
    incident_id = open_incident_id(runtime)
    response = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        json={"text": "rolled back\r\ndeploy 42\rand 43"},
        headers=auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["timeline"][-1]["message"] == "rolled back\ndeploy 42\nand 43"
    silence = client.post(
        "/api/v1/silences",
        json={
            "matchers": [{"name": "service", "value": "api"}],
            "duration": "1h",
            "comment": "maintenance\r\nwindow",
        },
        headers=auth(),
    )
    assert silence.status_code in (200, 201), silence.text
    assert silence.json()["comment"] == "maintenance\nwindow"
    # Other control characters stay refused.
    refused = client.post(
        f"/api/v1/incidents/{incident_id}/comment",
        json={"text": "bell\x07"},
        headers=auth(),
    )
    assert refused.status_code == 422
