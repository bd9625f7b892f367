"""`slo-engine run` with the API's security keys, as an operator writes them: HTTPS from
certificate files (HSTS), OIDC tokens verified against a JWKS file, roles from a claim, the
public status page — and a missing JWKS file or a broken certificate refused at start-up
with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from harness.certs import TestCA
from harness.oidc import AUDIENCE, ISSUER, SigningKey

from engine.source.localprom import free_port

ROOT = Path(__file__).resolve().parents[1]
BINARY = Path(sys.executable).parent / "slo-engine"


def write_config(tmp_path: Path, **settings: object) -> Path:
    config = {
        "specs": str(ROOT / "slo_specs"),
        "prometheus_url": "http://127.0.0.1:9",
        "state_dir": str(tmp_path / "state"),
        "interval": "60s",
        **settings,
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_daemon_serves_https_and_verifies_oidc_tokens(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.issue("127.0.0.1", server=True)
    key = SigningKey.ec("daemon-key")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key.jwk()]}))
    port = free_port()
    config = write_config(
        tmp_path,
        listen=f"127.0.0.1:{port}",
        tls_cert_file=server.cert.name,  # relative to the config file
        tls_key_file=server.key.name,
        public_status_page=True,
        oidc={
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_file": "jwks.json",
            "algorithms": ["ES256"],
            "role_map": {"sre": ["responder"]},
        },
    )
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BINARY), "run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                health = requests.get(f"{base}/healthz", verify=str(ca.pem), timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        token = key.token(roles=["sre"], subject="alice")
        reads = requests.get(
            f"{base}/api/v1/slos",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(ca.pem),
            timeout=5,
        )
        assert reads.status_code == 200, reads.text
        assert requests.get(f"{base}/api/v1/slos", verify=str(ca.pem), timeout=5).status_code == 401
        assert requests.get(f"{base}/status", verify=str(ca.pem), timeout=5).status_code == 200
        assert "API on https://127.0.0.1" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("problem", ["no jwks file", "broken certificate"])
def test_unusable_security_files_exit_2(tmp_path: Path, problem: str) -> None:
    ca = TestCA(tmp_path)
    server = ca.issue("127.0.0.1", server=True)
    if problem == "broken certificate":
        server.cert.write_text("-----BEGIN CERTIFICATE-----\nnope\n")
        settings: dict[str, object] = {
            "tls_cert_file": str(server.cert),
            "tls_key_file": str(server.key),
        }
    else:
        settings = {"oidc": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "absent.json"}}
    config = write_config(tmp_path, listen=f"127.0.0.1:{free_port()}", **settings)
    result = subprocess.run(
        [str(BINARY), "run", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    expected = "absent.json" if problem == "no jwks file" else "cannot use the TLS certificate"
    assert expected in result.stderr
