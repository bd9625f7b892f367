"""Prometheus-style `authorization`, `basic_auth` and `tls_config` blocks in the daemon config:
parsing (top level and `datasources:`), the old flat keys (still read, one deprecation
warning each, never both spellings at once), inline secrets refused with a located error,
and a daemon reading a real Prometheus behind TLS + bearer auth configured with the blocks.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import ssl
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
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness.certs import TestCA

from engine.daemon.config import ConfigError, DaemonConfig, load_config
from engine.daemon.runtime import Runtime
from engine.daemon.secret_files import missing_secret_files
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.evaluation.source import SourceUnavailable
from engine.source.localprom import free_port
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.models import ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
BASE = "specs: [specs]\nstate_dir: state\nprometheus_url: https://127.0.0.1:9\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, overrides: dict[str, Any] | None = None) -> DaemonConfig:
    return load_config(write(tmp_path, text), overrides)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


# ------------------------------------------------------------------------------ parsing


def test_blocks_at_the_top_and_per_datasource_resolve_against_the_config(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        BASE
        + "authorization: {type: Token, credentials_file: secrets/token}\n"
        + "tls_config:\n  ca_file: ca.pem\n  cert_file: client.crt\n  key_file: client.key\n"
        + "  server_name: prometheus.internal\n"
        + "datasources:\n  thanos:\n    url: http://127.0.0.1:10\n"
        + "    basic_auth: {username: slo, password_file: /run/thanos-password}\n"
        + "    tls_config: {insecure_skip_verify: true}\n",
    )
    assert config.authorization is not None
    assert config.authorization.type == "Token"
    assert config.authorization.credentials_file == tmp_path / "secrets" / "token"
    assert config.tls_config is not None
    assert config.tls_config.ca_file == tmp_path / "ca.pem"
    assert config.tls_config.key_file == tmp_path / "client.key"
    assert config.tls_config.server_name == "prometheus.internal"
    default = config.all_datasources()["default"]
    assert default.authorization == config.authorization
    assert default.tls_config == config.tls_config
    thanos = config.all_datasources()["thanos"]
    assert thanos.basic_auth is not None
    assert (thanos.basic_auth.username, thanos.basic_auth.password_file) == (
        "slo",
        Path("/run/thanos-password"),
    )
    assert thanos.tls_config is not None and thanos.tls_config.insecure_skip_verify
    assert thanos.authorization is None
    # Missing files are named by the key the config uses.
    assert sorted(p.split(":")[0] for p in missing_secret_files(config)) == [
        "authorization.credentials_file",
        "datasources.thanos.basic_auth.password_file",
        "tls_config.ca_file",
        "tls_config.cert_file",
        "tls_config.key_file",
    ]


def test_old_flat_keys_read_as_the_blocks_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.daemon.config")
    old = load(
        tmp_path,
        BASE
        + "bearer_token_file: token\nca_bundle: ca.pem\nclient_cert: c.crt\nclient_key: c.key\n"
        + "datasources:\n  a:\n    url: http://127.0.0.1:10\n    bearer_token_file: /a-token\n"
        + "  b:\n    url: http://127.0.0.1:11\n    basic_auth_user: slo\n"
        + "    basic_auth_password_file: /b-password\n",
    )
    new = load(
        tmp_path,
        BASE
        + "authorization: {credentials_file: token}\n"
        + "tls_config: {ca_file: ca.pem, cert_file: c.crt, key_file: c.key}\n"
        + "datasources:\n  a:\n    url: http://127.0.0.1:10\n"
        + "    authorization: {credentials_file: /a-token}\n"
        + "  b:\n    url: http://127.0.0.1:11\n"
        + "    basic_auth: {username: slo, password_file: /b-password}\n",
    )
    assert old.all_datasources() == new.all_datasources()
    assert old.bearer_token_file == tmp_path / "token"  # the old names still answer
    warnings = [r.getMessage() for r in caplog.records]
    # Loaded twice; only the first (old) file warns: one line per old key, even when the
    # key is used at the top and in a datasource.
    assert len(warnings) == 6
    (bearer,) = [w for w in warnings if "bearer_token_file is deprecated" in w]
    assert bearer.startswith(f"{tmp_path / 'config.yml'}:4:1: ")
    assert "(and 1 more place(s))" in bearer
    assert "write authorization: {credentials_file: ...}" in bearer
    (user,) = [w for w in warnings if "basic_auth_user is deprecated" in w]
    assert user.startswith(f"{tmp_path / 'config.yml'}:14:5: ")
    assert "basic_auth: {username: ...}" in user
    assert any("ca_bundle is deprecated — write tls_config: {ca_file" in w for w in warnings)


def test_one_setting_in_both_spellings_is_a_located_error(tmp_path: Path) -> None:
    (top,) = problems(
        tmp_path,
        BASE + "bearer_token_file: a\nauthorization: {credentials_file: b}\n",
    )
    assert (
        "config.yml:4:1: bearer_token_file and authorization.credentials_file are the same" in top
    )
    assert "keep authorization.credentials_file" in top
    (nested,) = problems(
        tmp_path,
        BASE
        + "datasources:\n  eu:\n    url: http://127.0.0.1:10\n    ca_bundle: a.pem\n"
        + "    tls_config: {ca_file: b.pem}\n",
    )
    assert ":6:5: datasources.eu: ca_bundle and tls_config.ca_file are the same setting" in nested


@pytest.mark.parametrize(
    ("block", "line", "where", "use"),
    [
        (
            "authorization: {credentials: s3cr3t}",
            4,
            "authorization.credentials",
            "credentials_file",
        ),
        ("basic_auth: {username: u, password: s3cr3t}", 4, "basic_auth.password", "password_file"),
        ("tls_config: {key: s3cr3t}", 4, "tls_config.key", "key_file"),
    ],
)
def test_inline_secrets_are_refused_where_they_are(
    tmp_path: Path, block: str, line: int, where: str, use: str
) -> None:
    (found,) = problems(tmp_path, BASE + block + "\n")
    assert f"config.yml:{line}:" in found
    assert f"{where}: secrets are read from files only" in found
    assert f"set {use}" in found
    assert "s3cr3t" not in found
    (nested,) = problems(
        tmp_path, BASE + "datasources:\n  eu:\n    url: http://127.0.0.1:10\n    " + block + "\n"
    )
    assert "config.yml:7:" in nested
    assert f"datasources.eu.{where}: secrets are read from files only" in nested


def test_what_cannot_be_honoured_is_refused_by_name(tmp_path: Path) -> None:
    (version,) = problems(tmp_path, BASE + "tls_config: {min_version: TLS13}\n")
    assert "config.yml:4:14: tls_config.min_version: not supported here" in version
    (ref,) = problems(tmp_path, BASE + "basic_auth: {username: u, password_ref: vault}\n")
    assert "basic_auth.password_ref: not supported here — set password_file" in ref
    (basic,) = problems(tmp_path, BASE + "authorization: {type: Basic, credentials_file: x}\n")
    assert "use the basic_auth block" in basic
    (both,) = problems(
        tmp_path,
        BASE + "authorization: {credentials_file: a}\nbasic_auth: {username: u}\n",
    )
    assert "authorization and basic_auth both set" in both
    (orphan,) = problems(tmp_path, BASE + "tls_config: {key_file: k}\n")
    assert "tls_config.key_file needs tls_config.cert_file" in orphan
    (legacy,) = problems(tmp_path, BASE + "basic_auth_password_file: pw\n")
    assert "config.yml:4:1: basic_auth_password_file needs basic_auth_user" in legacy


def test_a_flag_wins_over_the_files_block_without_a_clash(tmp_path: Path) -> None:
    text = BASE + "authorization: {type: Token, credentials_file: file-token}\n"
    config = load(tmp_path, text, {"bearer_token_file": "/flag-token", "ca_bundle": "/ca.pem"})
    assert config.authorization is not None
    assert config.authorization.credentials_file == Path("/flag-token")
    assert config.authorization.type == "Token"  # the rest of the block stays
    assert config.tls_config is not None and config.tls_config.ca_file == Path("/ca.pem")
    # The file's old spelling of the same setting gives way to the flag too.
    old = load(tmp_path, BASE + "bearer_token_file: file-token\n", {"bearer_token_file": "/f"})
    assert old.bearer_token_file == Path("/f")


# --------------------------------------------------------------- a real backend behind TLS

HOUR = 3600
START = (int(time.time()) // HOUR - 4) * HOUR
SCENARIO = Scenario(
    start=START,
    duration=3 * HOUR,
    scrape_interval=15,
    services=[
        ServiceLoad(
            job="web",
            rps=10,
            error_ratio=0.001,
            incidents=[Incident(2 * HOUR, 3 * HOUR, error_ratio=0.3)],
        )
    ],
)
SPEC = {
    "apiVersion": "slo-engine/v1",
    "service": "web",
    "slos": [
        {
            "name": "availability",
            "objective": 99.9,
            "sli": {
                "events": {
                    "bad": 'sum(rate(http_requests_total{job="web",code="500"}[{{window}}]))',
                    "total": 'sum(rate(http_requests_total{job="web"}[{{window}}]))',
                }
            },
        }
    ],
}
TOKEN = "tls-bearer-s3cr3t"
SERVER_NAME = "prometheus.internal"


def issue_for_dns_name(ca: TestCA, name: str, directory: Path) -> tuple[Path, Path]:
    """A server certificate valid for `name` only (not for 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class GuardedPrometheus:
    """HTTPS in front of a real Prometheus: answers only requests bearing the token, and
    records the TLS server names (SNI) and Authorization headers it was sent."""

    def __init__(self, upstream: str, cert: Path, key: Path) -> None:
        self.server_names: list[str | None] = []
        self.authorizations: list[str | None] = []
        guard = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                guard.authorizations.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                # Passed through as is (remote read's snappy bodies included).
                answer = requests.request(
                    self.command,
                    upstream + self.path,
                    data=body or None,
                    headers={
                        h: v
                        for h, v in self.headers.items()
                        if h.lower() in {"content-type", "content-encoding", "accept-encoding"}
                        or h.lower().startswith("x-prometheus")
                    },
                    timeout=30,
                    stream=True,
                )
                content = answer.raw.read(decode_content=False)
                self.send_response(answer.status_code)
                for name in ("Content-Type", "Content-Encoding"):
                    if answer.headers.get(name):
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _forward

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        def sni(_socket: Any, server_name: str | None, _context: Any) -> None:
            guard.server_names.append(server_name)

        context.sni_callback = sni
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def guarded(
    module_prometheus_for: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GuardedPrometheus, TestCA]]:
    prometheus = module_prometheus_for(SCENARIO)
    directory = tmp_path_factory.mktemp("tls")
    ca = TestCA(directory)
    cert, key = issue_for_dns_name(ca, SERVER_NAME, directory)
    proxy = GuardedPrometheus(prometheus.url, cert, key)
    yield proxy, ca
    proxy.close()


@pytest.mark.prometheus
def test_the_daemon_reads_prometheus_behind_tls_and_bearer_auth_from_blocks(
    tmp_path: Path, guarded: tuple[GuardedPrometheus, TestCA]
) -> None:
    proxy, ca = guarded
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "web.yaml").write_text(yaml.safe_dump(SPEC))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(TOKEN + "\n")
    config = load(
        tmp_path,
        f"specs: [specs]\nstate_dir: state\nprometheus_url: {proxy.url}\ninterval: 60s\n"
        "authorization:\n  type: Bearer\n  credentials_file: secrets/token\n"
        f"tls_config:\n  ca_file: {ca.pem}\n  server_name: {SERVER_NAME}\n",
    )
    assert missing_secret_files(config) == []
    at = float(START + 2 * HOUR + 30 * 60)
    runtime = Runtime(config, clock=lambda: at, notifiers={})
    try:
        report = runtime.run_cycle()
    finally:
        runtime.close()
    assert report.source_error is None
    (result,) = report.results
    five = Duration.parse("5m")
    end = result.evaluated_at
    truth = SCENARIO.expected_error_ratio("web", end - 300, end)
    assert truth is not None and truth > 0.1
    assert result.windows[five].error_ratio == pytest.approx(truth, rel=1e-9)
    assert result.status == "page"
    # Every request was TLS to the configured name and carried the token from the file.
    assert proxy.server_names and set(proxy.server_names) == {SERVER_NAME}
    assert proxy.authorizations and set(proxy.authorizations) == {f"Bearer {TOKEN}"}


@pytest.mark.prometheus
def test_without_server_name_the_certificate_is_refused(
    tmp_path: Path, guarded: tuple[GuardedPrometheus, TestCA]
) -> None:
    proxy, ca = guarded
    token = tmp_path / "token"
    token.write_text(TOKEN)
    unnamed = PrometheusSource(
        proxy.url, bearer_token_file=str(token), ca_bundle=str(ca.pem), retries=0
    )
    with pytest.raises(SourceUnavailable, match=r"TLS error .*(?i:hostname|match|certificate)"):
        request_rate(unnamed)
    named = PrometheusSource(
        proxy.url, bearer_token_file=str(token), ca_bundle=str(ca.pem), server_name=SERVER_NAME
    )
    assert request_rate(named) == pytest.approx(10.0, rel=0.01)  # the scenario's rps
    # insecure_skip_verify: the same server is read without a CA or a name.
    insecure = PrometheusSource(proxy.url, bearer_token_file=str(token), insecure_skip_verify=True)
    assert request_rate(insecure) == pytest.approx(10.0, rel=0.01)


def request_rate(source: PrometheusSource) -> float:
    """web's requests per second over the 5 minutes before the incident, via `source`."""
    slos = ServiceSpec.model_validate(SPEC).slo_records()
    step, at = Duration.parse("5m"), float(START + 2 * HOUR)
    rates = source.fetch(slos, step, at, at)
    assert not rates.errors, rates.errors
    return float(rates.total[0][-1])


def test_run_logs_each_deprecation_once_in_the_chosen_format(tmp_path: Path) -> None:
    """`slo-engine run` with an old key: one warning, as a JSON line like every other."""
    token = tmp_path / "token"
    token.write_text("t\n")
    port = free_port()
    config = write(
        tmp_path,
        f"specs: [{ROOT / 'slo_specs'}]\nstate_dir: state\nprometheus_url: http://127.0.0.1:9\n"
        f"interval: 1h\nlisten: 127.0.0.1:{port}\nlog_format: json\nbearer_token_file: token\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLO_ENGINE_", "OTEL_"))}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and daemon.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    deprecated = [r for r in records if "is deprecated" in r["msg"]]
    assert [r["msg"] for r in deprecated] == [
        f"{config}:7:1: bearer_token_file is deprecated — write authorization: "
        "{credentials_file: ...} instead, as Prometheus does"
    ]
    assert deprecated[0]["level"].lower().startswith("warn")
